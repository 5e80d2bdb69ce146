package gateway

import (
	"context"
	"errors"
	"net"
	"os"
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
// clock) the connection joins the clock's watcher, which waits for it to
// become readable and peeks: end of file or a reset means the client is
// gone; data means a pipelined request, which it leaves for fasthttp to
// read. stop ends the watch before fasthttp reads again; once it has
// returned, the watch cancels nothing.
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
	// has done its work; fasthttp sets it again before it reads the next
	// request.
	_ = c.SetReadDeadline(time.Time{})
	w := &watch{raw: raw, cancel: cancel}
	off := clk.after(watchDelay, func() { clk.watcher.add(w) })
	return func() {
		if !off() {
			clk.watcher.remove(w) // it rang: the watch may have begun
		}
	}
}

// watch is one request's connection in the watcher.
type watch struct {
	raw     syscall.RawConn
	cancel  context.CancelCauseFunc
	id      int32 // its key in the watcher, and its epoll data
	stopped bool  // by the request (remove) or after a peek
}

// watcher waits in one epoll instance for the connections of the requests
// that have run past watchDelay, so that a watched request costs an epoll
// registration, not a goroutine parked on its socket for as long as it
// runs. Its goroutine waits for the epoll instance in the runtime's
// poller; it starts with the first watch and ends when the clock does.
type watcher struct {
	mu      sync.Mutex
	ep      *os.File // the epoll instance
	epRaw   syscall.RawConn
	epFD    int
	next    int32
	watched map[int32]*watch
	closed  bool
	done    chan struct{} // the goroutine has returned
}

// add watches w's connection; it runs on the clock's goroutine.
func (ws *watcher) add(w *watch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if w.stopped || ws.closed || (ws.ep == nil && !ws.start()) {
		return
	}
	ws.next++
	for ws.watched[ws.next] != nil || ws.next == 0 {
		ws.next++
	}
	w.id = ws.next
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: w.id}
	var err error
	if cerr := w.raw.Control(func(fd uintptr) { err = syscall.EpollCtl(ws.epFD, syscall.EPOLL_CTL_ADD, int(fd), &ev) }); cerr != nil || err != nil {
		return // closed already: nothing to watch
	}
	ws.watched[w.id] = w
}

// remove ends w's watch, if it has one; the watch cancels nothing after.
func (ws *watcher) remove(w *watch) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	w.stopped = true
	ws.forget(w)
}

// forget takes w out of the epoll instance; ws.mu is held.
func (ws *watcher) forget(w *watch) {
	if ws.watched[w.id] != w {
		return
	}
	delete(ws.watched, w.id)
	if !ws.closed {
		_ = w.raw.Control(func(fd uintptr) { _ = syscall.EpollCtl(ws.epFD, syscall.EPOLL_CTL_DEL, int(fd), nil) })
	}
}

// start opens the epoll instance and starts the goroutine that waits on
// it; ws.mu is held. Without one, nothing is watched.
func (ws *watcher) start() bool {
	fd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false
	}
	if syscall.SetNonblock(fd, true) != nil {
		_ = syscall.Close(fd)
		return false
	}
	ep := os.NewFile(uintptr(fd), "epoll") // non-blocking: waited on in the runtime's poller
	rc, err := ep.SyscallConn()
	if err != nil {
		_ = ep.Close()
		return false
	}
	ws.ep, ws.epRaw, ws.epFD = ep, rc, fd
	ws.watched = map[int32]*watch{}
	ws.done = make(chan struct{})
	go ws.run()
	return true
}

// run waits for watched connections to become readable, and peeks at
// each, until the epoll instance is closed.
func (ws *watcher) run() {
	defer close(ws.done)
	events := make([]syscall.EpollEvent, 64)
	for {
		n := 0
		if err := ws.epRaw.Read(func(fd uintptr) bool {
			n, _ = syscall.EpollWait(int(fd), events, 0)
			return n > 0 // else park until the instance is readable
		}); err != nil {
			return // closed
		}
		ws.mu.Lock()
		for _, ev := range events[:n] {
			if w := ws.watched[ev.Fd]; w != nil {
				ws.peek(w)
			}
		}
		ws.mu.Unlock()
	}
}

// peek reads without taking: nothing yet leaves the watch on; end of file
// or an error means the client is gone; data is a pipelined request. Both
// end the watch. ws.mu is held, so the request has not stopped the watch
// and its connection is open.
func (ws *watcher) peek(w *watch) {
	var buf [1]byte
	gone, waiting := false, false
	_ = w.raw.Control(func(fd uintptr) {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		waiting = errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR)
		gone = !waiting && (n == 0 || err != nil)
	})
	if waiting {
		return
	}
	w.stopped = true
	ws.forget(w)
	if gone {
		w.cancel(errClientGone)
	}
}

// close ends the watcher with the clock; what is still watched is
// watched no more.
func (ws *watcher) close() {
	ws.mu.Lock()
	if ws.ep == nil || ws.closed {
		ws.closed = true
		ws.mu.Unlock()
		return
	}
	ws.closed = true
	_ = ws.ep.Close()
	ws.mu.Unlock()
	<-ws.done
}
