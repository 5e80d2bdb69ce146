package openai

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
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
	conns   map[string]*trackedConn
	aborted map[string]bool
	next    atomic.Uint64
	prefix  string
	dials   chan struct{} // a slot for each connection being dialled
	// tls, for an https server, is what dial speaks TLS with: the watch
	// on the call header must see what is written before it is encrypted.
	tls *tls.Config
}

func newTracker() *tracker {
	return &tracker{conns: map[string]*trackedConn{}, aborted: map[string]bool{}, prefix: strconv.FormatInt(time.Now().UnixNano(), 36) + "-",
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
		c, err := dialApart(addr, deadline, t.tls)
		<-t.dials
		if err != nil {
			return nil, err
		}
		tc := &trackedConn{Conn: c, t: t}
		if t.tls != nil {
			return tlsConn{tc}, nil
		}
		return tc, nil
	}
}

// tlsConn is a tracked connection over TLS. Its Handshake method tells
// fasthttp that it speaks TLS already (the handshake was done in the dial),
// so fasthttp does not wrap it in TLS of its own.
type tlsConn struct{ *trackedConn }

func (c tlsConn) Handshake() error { return c.Conn.(*tls.Conn).Handshake() }

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

// dialApart dials on a goroutine of its own, with the TLS handshake when
// cfg is set, and waits for it.
//
//go:noinline
func dialApart(addr string, deadline time.Time, cfg *tls.Config) (net.Conn, error) {
	type dialled struct {
		c   net.Conn
		err error
	}
	ch := make(chan dialled, 1)
	go func() {
		c, err := fasthttp.DialTimeout(addr, time.Until(deadline))
		if err == nil && cfg != nil {
			tc := tls.Client(c, cfg)
			_ = tc.SetDeadline(deadline)
			if err = tc.Handshake(); err != nil {
				c.Close()
				ch <- dialled{nil, err}
				return
			}
			_ = tc.SetDeadline(time.Time{})
			c = tc
		}
		ch <- dialled{c, err}
	}()
	d := <-ch
	return d.c, d.err
}

type trackedConn struct {
	net.Conn
	t        *tracker
	lastIO   time.Time // the last read or write
	answered bool      // an answer came on it: it carried a call before
}

// lookAfter is how long a connection may sit idle before a call looks
// whether the server closed it. Servers close kept-alive connections after
// seconds (uvicorn, which serves vLLM, llama.cpp's server and Node: 5 s);
// one that closes sooner is found by the call that meets it (retry).
const lookAfter = 100 * time.Millisecond

// errStale is a pooled connection the server had closed, found before the
// call went out on it.
var errStale = fmt.Errorf("the server closed the idle connection: %w", net.ErrClosed)

func (c *trackedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.answered, c.lastIO = true, time.Now()
	}
	return n, err
}

func (c *trackedConn) Write(b []byte) (int, error) {
	now := time.Now()
	if c.answered && now.Sub(c.lastIO) >= lookAfter && peerClosed(c.Conn) {
		c.Conn.Close()
		return 0, errStale
	}
	c.lastIO = now
	if i := bytes.Index(b, callHeader); i >= 0 {
		rest := b[i+len(callHeader):]
		if j := bytes.IndexByte(rest, '\r'); j > 0 {
			c.t.bind(string(rest[:j]), c)
		}
	}
	return c.Conn.Write(b)
}

// retry tells the client whether to send a failed call again, on another
// connection, when the call itself was not aborted:
//   - when the connection was closed before anything reached the server
//     (net.ErrClosed): by the server while idle in the pool, found before
//     the call went out (errStale); or here by an abort whose call had just
//     finished, when the connection was already back in the pool;
//   - when the server closed a connection that had carried calls before
//     just as this call went out on it: end of file or a reset before any
//     byte of an answer, which is how a server's idle timeout meets a call
//     that is sent at that moment (net/http's transport retries these too).
func (t *tracker) retry(req *fasthttp.Request, attempts int, err error) (resetTimeout, retry bool) {
	closed := errors.Is(err, net.ErrClosed)
	if !closed && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		return false, false
	}
	id := req.Header.Peek("X-Request-Id")
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.aborted[string(id)] {
		return false, false
	}
	if closed {
		return false, true
	}
	c := t.conns[string(id)]
	return false, c != nil && c.answered
}

// bind records the connection a call goes out on; a call sent again
// (retry) moves to its new connection.
func (t *tracker) bind(id string, c *trackedConn) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.aborted[id] {
		c.Close()
		return
	}
	if len(id) == 0 {
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
