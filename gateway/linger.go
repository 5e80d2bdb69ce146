package gateway

import (
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"time"
)

// A connection closed while its client is still sending (a body over
// max_body_bytes) would answer the unread bytes with a reset, and the
// client could lose the 413 it was sent. Like nginx's lingering close, such
// a connection first shuts its writing side, so the answer arrives whole,
// then reads and drops what the client still sends, for a bounded time and
// size, and only then closes.
const (
	lingerTime  = 2 * time.Second
	lingerBytes = 64 << 20
)

type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &lingerConn{Conn: c}, nil
}

type lingerConn struct {
	net.Conn
	linger atomic.Bool
	// A connection given back to the server after a stream (resume); only
	// the goroutine serving the connection touches these.
	pending      []byte // read past the stream's request: a pipelined request
	holdDeadline bool   // the server's next read deadline is a new connection's: keep the idle one
	counted      func() // the server has counted the connection
}

func (c *lingerConn) Read(p []byte) (int, error) {
	c.serving()
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		if c.pending = c.pending[n:]; len(c.pending) == 0 {
			c.pending = nil
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

func (c *lingerConn) SetReadDeadline(t time.Time) error {
	c.serving()
	if c.holdDeadline {
		c.holdDeadline = false
		return nil
	}
	return c.Conn.SetReadDeadline(t)
}

// serving is called when the server first reads a given-back connection
// or sets its read deadline: it has counted the connection by then.
func (c *lingerConn) serving() {
	if f := c.counted; f != nil {
		c.counted = nil
		f()
	}
}

// lingerOnClose asks c to drain its input before closing.
func lingerOnClose(c net.Conn) {
	if lc, ok := c.(*lingerConn); ok {
		lc.linger.Store(true)
	}
}

func (c *lingerConn) Close() error {
	if c.linger.Load() {
		if tc, ok := c.Conn.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
			_ = c.Conn.SetReadDeadline(time.Now().Add(lingerTime))
			_, _ = io.CopyN(io.Discard, c.Conn, lingerBytes)
		}
	}
	return c.Conn.Close()
}

// SyscallConn exposes the socket, for the disconnect watch.
func (c *lingerConn) SyscallConn() (syscall.RawConn, error) {
	if sc, ok := c.Conn.(syscall.Conn); ok {
		return sc.SyscallConn()
	}
	return nil, errors.New("not a socket")
}
