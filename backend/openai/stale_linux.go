package openai

import (
	"net"
	"syscall"
)

// peerClosed reports whether the server has closed c, or sent something
// unasked (a late error, a TLS alert), which makes c as unusable: it peeks
// without blocking, so an open connection costs one system call.
func peerClosed(c net.Conn) bool {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn() // TLS: the socket under it
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	closed := false
	var buf [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
		case err != nil || n >= 0:
			closed = true // a reset, end of file, or bytes nobody asked for
		}
		return true // never wait for readability
	})
	return closed || err != nil
}
