package gateway

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
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
	// Only the goroutine serving the connection touches the rest.
	pending  []byte           // bytes read ahead, served before the socket
	ahead    *[aheadSize]byte // pending's pooled buffer, when it has one
	rc       syscall.RawConn  // the socket, once readAhead needed it
	readFD   func(fd uintptr) bool
	aheadErr error // why readSocket read nothing ahead
	// After a stream written to the connection itself (sendStream), the
	// empty answer fasthttp writes, a head alone, is dropped: dropHead is
	// set until the head's end, of which headEnd bytes have gone by.
	dropHead bool
	headEnd  int
}

func (c *lingerConn) Read(p []byte) (int, error) {
	if len(c.pending) == 0 && len(p) == 1 {
		if err := c.readAhead(); err != nil {
			return 0, err
		}
	}
	if len(c.pending) > 0 {
		n := copy(p, c.pending)
		if c.pending = c.pending[n:]; len(c.pending) == 0 {
			c.pending = nil
			if c.ahead != nil {
				aheadPool.Put(c.ahead)
				c.ahead = nil
			}
		}
		return n, nil
	}
	return c.Conn.Read(p)
}

// aheadSize is what readAhead takes in one read: most requests whole.
const aheadSize = 4096

var aheadPool = sync.Pool{New: func() any { return new([aheadSize]byte) }}

// readAhead serves the one-byte read with which fasthttp waits for a
// kept-alive connection's next request (ReduceMemoryUsage: no read buffer
// is held while the connection idles). It waits the same way, in the
// poller with no buffer, then reads all that has arrived into a pooled
// buffer that the reads after it drain: one read system call for the
// request where there were two. It leaves pending empty, for a plain
// read, where the connection is not a socket.
func (c *lingerConn) readAhead() error {
	if !readAheadOK {
		return nil
	}
	if c.rc == nil {
		sc, ok := c.Conn.(syscall.Conn)
		if !ok {
			return nil
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			return nil
		}
		c.rc, c.readFD = rc, c.readSocket // bound once: no allocation a request
	}
	if err := c.rc.Read(c.readFD); err != nil {
		return err // the deadline, or a closed connection
	}
	err := c.aheadErr
	c.aheadErr = nil
	return err
}

// readSocket is readAhead's read, called by the poller: it reports false,
// holding no buffer, when nothing has arrived yet. It leaves what arrived
// in pending, or why nothing will in aheadErr.
func (c *lingerConn) readSocket(fd uintptr) bool {
	b := aheadPool.Get().(*[aheadSize]byte)
	n, err := readFD(fd, b[:])
	switch {
	case err == syscall.EAGAIN:
		aheadPool.Put(b)
		return false
	case err != nil:
		aheadPool.Put(b)
		c.aheadErr = &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError("read", err)}
	case n == 0:
		aheadPool.Put(b)
		c.aheadErr = io.EOF
	default:
		c.pending, c.ahead = b[:n], b
	}
	return true
}

func (c *lingerConn) Write(p []byte) (int, error) {
	if !c.dropHead {
		return c.Conn.Write(p)
	}
	for i, b := range p {
		switch {
		case b == "\r\n\r\n"[c.headEnd]:
			c.headEnd++
		case b == '\r':
			c.headEnd = 1
		default:
			c.headEnd = 0
		}
		if c.headEnd == 4 {
			c.dropHead, c.headEnd = false, 0
			if rest := p[i+1:]; len(rest) > 0 {
				n, err := c.Conn.Write(rest)
				return i + 1 + n, err
			}
			break
		}
	}
	return len(p), nil
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
