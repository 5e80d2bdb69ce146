package openai

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// The fasthttp client has no way to abort a request in flight, so each call
// carries a unique X-Request-Id header; the dialled connections watch what
// is written to them, learn which call runs on which connection, and a
// cancelled call closes its connection. The header doubles as a correlation
// id in the upstream's logs.

var callHeader = []byte("\r\nX-Request-Id: ")

type tracker struct {
	mu      sync.Mutex
	conns   map[string]net.Conn
	aborted map[string]bool
	next    atomic.Uint64
	prefix  string
	dials   chan struct{} // a slot for each connection being dialled
}

func newTracker() *tracker {
	return &tracker{conns: map[string]net.Conn{}, aborted: map[string]bool{}, prefix: strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
		dials: make(chan struct{}, maxDials)}
}

// maxDials bounds the connections being dialled to one backend at once. A
// burst of new streams then opens its connections this many at a time:
// no herd of connects at the backend's accept queue, and at most this many
// dial goroutines, where a thousand at once held the stacks their dials
// grew until the next collection (docs/benchmarks.md, streams opened in
// the same instant). At a millisecond a connect, a thousand take 16 ms.
const maxDials = 64

// dial dials on a goroutine of its own. The dial goes deep (resolver,
// socket, poller) and would grow the calling goroutine's stack past 8 KiB;
// the caller is a connection's goroutine that may go on to carry a stream,
// and would keep the grown stack for as long. A dial costs far more than
// the goroutine. Waiting for a dial slot counts against the timeout.
func (t *tracker) dial(timeout time.Duration) fasthttp.DialFunc {
	return func(addr string) (net.Conn, error) {
		deadline := time.Now().Add(timeout)
		if !t.dialSlot(timeout) {
			return nil, fasthttp.ErrDialTimeout
		}
		c, err := dialApart(addr, deadline)
		<-t.dials
		if err != nil {
			return nil, err
		}
		return &trackedConn{Conn: c, t: t}, nil
	}
}

// dialSlot takes one of the backend's dial slots, waiting up to timeout.
// Its frame, with the wait's, is gone before the dial.
//
//go:noinline
func (t *tracker) dialSlot(timeout time.Duration) bool {
	select {
	case t.dials <- struct{}{}:
		return true
	default:
	}
	wait := time.NewTimer(timeout)
	defer wait.Stop()
	select {
	case t.dials <- struct{}{}:
		return true
	case <-wait.C:
		return false
	}
}

// dialApart dials on a goroutine of its own and waits for it.
//
//go:noinline
func dialApart(addr string, deadline time.Time) (net.Conn, error) {
	type dialled struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialled, 1)
	go func() {
		c, err := fasthttp.DialTimeout(addr, time.Until(deadline))
		ch <- dialled{c, err}
	}()
	d := <-ch
	return d.c, d.err
}

type trackedConn struct {
	net.Conn
	t *tracker
}

func (c *trackedConn) Write(b []byte) (int, error) {
	if i := bytes.Index(b, callHeader); i >= 0 {
		rest := b[i+len(callHeader):]
		if j := bytes.IndexByte(rest, '\r'); j > 0 {
			c.t.bind(string(rest[:j]), c.Conn)
		}
	}
	return c.Conn.Write(b)
}

// retry tells the client whether to send a failed call again: only when
// it failed on a connection closed here (net.ErrClosed, before anything
// reached the server: closed while idle in the pool) and the call itself
// was not aborted. An abort closes its call's connection; if the call had
// just finished, that connection may already be back in the pool, and the
// next call to pick it finds it closed.
func (t *tracker) retry(req *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	if !errors.Is(err, net.ErrClosed) {
		return false, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return false, !t.aborted[string(req.Header.Peek("X-Request-Id"))]
}

func (t *tracker) bind(id string, c net.Conn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.aborted[id] {
		c.Close()
		return
	}
	if _, ok := t.conns[id]; ok || len(id) == 0 {
		return
	}
	t.conns[id] = c
}

// watch starts tracking a call; cancelling ctx closes its connection. The
// returned func ends the watch and must be called when the call is over.
func (t *tracker) watch(ctx context.Context, req *fasthttp.Request) func() {
	id := t.prefix + strconv.FormatUint(t.next.Add(1), 36)
	req.Header.Set("X-Request-Id", id)
	stop := context.AfterFunc(ctx, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		t.aborted[id] = true
		if c, ok := t.conns[id]; ok {
			c.Close()
		}
	})
	return func() {
		stop()
		t.mu.Lock()
		delete(t.conns, id)
		delete(t.aborted, id)
		t.mu.Unlock()
	}
}
