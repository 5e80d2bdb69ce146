package openai

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
	"github.com/valyala/fasthttp"
)

// An abort that lands just after its call finished closes a connection
// already back in the pool; the next call that picks it must not fail
// for it: nothing of it reached the server, so it is sent again on a new
// connection. A call aborted itself is not.
func TestClosedPooledConnectionIsRetried(t *testing.T) {
	c, err := New("upstream", backendtest.StartReference(t, reference.Options{})+"/v1", "", FlavourVLLM, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dialled := recordDials(c)
	req := func(ctx context.Context) error {
		_, err := c.Generate(ctx, &backend.Request{Model: "reference", Prompt: "Hello", MaxTokens: 4, Seed: ptr(int64(1))})
		return err
	}
	ctx := context.Background()
	if err := req(ctx); err != nil {
		t.Fatal(err)
	}
	dialled()[0].Close() // idle in the pool, closed as a late abort would
	if err := req(ctx); err != nil {
		t.Fatalf("a call on a connection closed in the pool: %v", err)
	}
	if n := len(dialled()); n != 2 {
		t.Errorf("%d connections dialled, want 2", n)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := req(cancelled); err == nil {
		t.Error("a cancelled call succeeded")
	}
}

func ptr[T any](v T) *T { return &v }

// recordDials makes c note every connection it dials; the result lists
// them.
func recordDials(c *Client) func() []net.Conn {
	var mu sync.Mutex
	var conns []net.Conn
	dial := c.hc.Dial
	c.hc.Dial = func(addr string) (net.Conn, error) {
		conn, err := dial(addr)
		if err == nil {
			mu.Lock()
			conns = append(conns, conn)
			mu.Unlock()
		}
		return conn, err
	}
	return func() []net.Conn {
		mu.Lock()
		defer mu.Unlock()
		return append([]net.Conn(nil), conns...)
	}
}

// At most maxDials connections to a backend are dialled at once; a dial
// that finds no slot waits for one, within its timeout.
func TestDialsWaitForASlot(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	tr := newTracker()
	for range maxDials {
		tr.dials <- struct{}{} // every slot taken
	}
	start := time.Now()
	if _, err := tr.dial(50 * time.Millisecond)(ln.Addr().String()); !errors.Is(err, fasthttp.ErrDialTimeout) {
		t.Fatalf("a dial with no slot: %v, want a dial timeout", err)
	}
	if waited := time.Since(start); waited < 50*time.Millisecond {
		t.Errorf("gave up after %s, before its timeout", waited)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		<-tr.dials // one slot frees
	}()
	c, err := tr.dial(5 * time.Second)(ln.Addr().String())
	if err != nil {
		t.Fatalf("a dial given a slot: %v", err)
	}
	c.Close()
	if n := len(tr.dials); n != maxDials-1 {
		t.Errorf("%d slots taken after the dial, want %d", n, maxDials-1)
	}
}
