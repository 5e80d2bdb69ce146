package gateway

import (
	"context"
	"errors"
	"net"
	"sync"
	"syscall"
	"time"

	"github.com/steergate/steergate/fault"
)

// errClientGone is the cancellation cause when the client disconnects.
var errClientGone = errors.Join(fault.ErrCanceled, errors.New("client closed the connection"))

// watchDelay is how long a request runs before its connection is watched:
// most passthrough requests finish sooner, and a client that leaves early
// costs at most this much backend work.
const watchDelay = 10 * time.Millisecond

// watchDisconnect cancels the request when the client closes its
// connection. fasthttp has no such signal, so after watchDelay (on the
// clock) it waits in
// the runtime poller for the socket to become readable and peeks: end of
// file or a reset means the client is gone; data means a pipelined request,
// which it leaves for fasthttp to read. stop ends the watch before fasthttp
// reads again.
func watchDisconnect(clk *clock, c net.Conn, cancel context.CancelCauseFunc) (stop func()) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return func() {}
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return func() {}
	}
	// The request has been read whole: the read deadline (read_timeout)
	// has done its work, and would end the watch of a request that runs
	// longer. fasthttp sets it again before it reads the next request.
	_ = c.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	watch := func() {
		defer close(done)
		var buf [1]byte
		gone := false
		err := raw.Read(func(fd uintptr) bool {
			n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				return false // nothing yet: park until readable
			}
			gone = n == 0 || err != nil
			return true
		})
		if err == nil && gone {
			cancel(errClientGone)
		}
	}
	off := clk.after(watchDelay, func() { go watch() })
	return sync.OnceFunc(func() {
		if off() {
			return // never started
		}
		_ = c.SetReadDeadline(time.Unix(1, 0)) // wakes the parked read
		<-done
		_ = c.SetReadDeadline(time.Time{})
	})
}
