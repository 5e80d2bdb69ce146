package openai

import (
	"context"
	"net"
	"sync"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
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
	var mu sync.Mutex
	var conns []net.Conn
	dial := c.hc.Dial
	c.hc.Dial = func(addr string) (net.Conn, error) {
		conn, err := dial(addr)
		mu.Lock()
		conns = append(conns, conn)
		mu.Unlock()
		return conn, err
	}
	req := func(ctx context.Context) error {
		_, err := c.Generate(ctx, &backend.Request{Model: "reference", Prompt: "Hello", MaxTokens: 4, Seed: ptr(int64(1))})
		return err
	}
	ctx := context.Background()
	if err := req(ctx); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	conns[0].Close() // idle in the pool, closed as a late abort would
	mu.Unlock()
	if err := req(ctx); err != nil {
		t.Fatalf("a call on a connection closed in the pool: %v", err)
	}
	if len(conns) != 2 {
		t.Errorf("%d connections dialled, want 2", len(conns))
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := req(cancelled); err == nil {
		t.Error("a cancelled call succeeded")
	}
}

func ptr[T any](v T) *T { return &v }
