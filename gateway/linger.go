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
