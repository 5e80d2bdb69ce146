package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/valyala/fasthttp"
)

// handOff leaves an event stream for handle to send once the handler has
// returned (sendStream).
func (s *Server) handOff(ctx *fasthttp.RequestCtx, body func(w io.Writer) error) {
	ctx.SetUserValue(streamKey{}, streamBody(body))
}

type (
	streamKey  struct{}
	streamBody func(w io.Writer) error
)

// errStreamPanic ends a stream whose body panicked.
var errStreamPanic = errors.New("panic in a stream")

// sendStream sends the event stream the handler left, if any, on the
// connection's own goroutine and on the connection itself: each write of
// body is one chunk, the response's head goes with the first, and no
// response buffer is held for as long as the stream lasts. It runs after
// the handler's frames are gone, so the stream waits on the stack the
// request was read and decoded with (8 KiB: the decode and the backend's
// dial keep within it), not on a goroutine beside it. body's error means
// the connection cannot carry another response. At the end fasthttp
// writes nothing of its own: the connection goes back to the server for
// its next request (HTTP/1.1 keep-alive), or closes.
func (s *Server) sendStream(ctx *fasthttp.RequestCtx, reqID string) {
	body, ok := ctx.UserValue(streamKey{}).(streamBody)
	if !ok {
		return
	}
	ctx.RemoveUserValue(streamKey{})
	h := &ctx.Response.Header
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.SetContentType("text/event-stream")
	http11 := ctx.Request.Header.IsHTTP11()
	_, ours := ctx.Conn().(*lingerConn)
	keep := http11 && ours && !ctx.Request.Header.ConnectionClose() && !s.draining.Load()
	if http11 {
		h.SetContentLength(-1) // chunked
	} else {
		// HTTP/1.0 has no chunks: the events go out as they are, and the
		// connection closes at the end.
		h.SetProtocol([]byte("HTTP/1.0"))
		h.SetContentLength(-2)
	}
	if !keep {
		h.SetConnectionClose()
	}
	c := ctx.Conn()
	w := &chunkWriter{c: c, chunked: http11, headOnly: ctx.IsHead(), out: h.AppendBytes(nil)}
	// A client that stops reading cannot hold the stream past its
	// deadline.
	_ = c.SetWriteDeadline(time.Now().Add(s.srv.WriteTimeout))
	err := s.runStream(body, w, reqID)
	switch {
	case err == nil:
		err = w.end()
	case errors.Is(err, errHeadOnly):
		err = w.headErr
	}
	// Once the handler returns, fasthttp runs the hijack handler; only a
	// failure to set the deadline of a connection it has not closed would
	// stop it.
	s.streams.Add(1)
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer s.streams.Done()
		if err != nil || !keep || !s.resume(c) {
			_ = c.Close()
		}
	})
}

// runStream runs a stream's body; a panic in it ends the stream (and
// its connection), not the server.
func (s *Server) runStream(body streamBody, w io.Writer, reqID string) (err error) {
	defer func() {
		if p := recover(); p != nil {
			s.metrics.Panic()
			s.log.Error("panic in a stream", "request_id", reqID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
			err = errStreamPanic
		}
	}()
	return body(w)
}

// chunkWriter writes each write to the connection at once, as one chunk
// over HTTP/1.1, as it is over HTTP/1.0. The answer to a HEAD request is
// its head alone: a write then sends the head and ends the body with
// errHeadOnly.
type chunkWriter struct {
	c        net.Conn
	chunked  bool
	headOnly bool
	headErr  error  // writing the head alone failed
	out      []byte // the response's head until the first write; then reused
}

// errHeadOnly ends the body of a stream that answers a HEAD request.
var errHeadOnly = errors.New("a HEAD request is answered with the head alone")

func (w *chunkWriter) Write(p []byte) (int, error) {
	if w.headOnly {
		w.headErr = w.end()
		return 0, errHeadOnly
	}
	if len(p) == 0 {
		return 0, nil // an empty chunk would end the body
	}
	b := w.out
	if w.chunked {
		b = append(strconv.AppendInt(b, int64(len(p)), 16), "\r\n"...)
	}
	b = append(b, p...)
	if w.chunked {
		b = append(b, "\r\n"...)
	}
	w.out = b[:0]
	if _, err := w.c.Write(b); err != nil {
		return 0, err
	}
	return len(p), nil
}

// end ends the body: the last chunk, and the head if nothing was written.
func (w *chunkWriter) end() error {
	b := w.out
	if w.chunked && !w.headOnly {
		b = append(b, "0\r\n\r\n"...)
	}
	w.out = nil
	if len(b) == 0 {
		return nil
	}
	_, err := w.c.Write(b)
	return err
}

// resume gives a connection whose stream is over back to the server for
// its next request. It reports false when the connection must close
// instead: the server is shutting down, or the client is gone.
func (s *Server) resume(c net.Conn) bool {
	lc, rest, ok := unwrap(c)
	if !ok {
		return false
	}
	// Shutdown waits for the connections the server counts; one given
	// back is counted from its first read, and shutdown cannot begin in
	// between.
	s.resumeMu.RLock()
	if s.closed {
		s.resumeMu.RUnlock()
		return false
	}
	lc.pending, lc.counted = rest, s.resumeMu.RUnlock
	// fasthttp gives a connection new to it read_timeout for its first
	// request; a kept-alive one waits idle_timeout.
	idle := s.srv.IdleTimeout
	if idle == 0 {
		idle = s.srv.ReadTimeout
	}
	var until time.Time
	if idle > 0 {
		until = time.Now().Add(idle)
	}
	_ = lc.Conn.SetReadDeadline(until)
	_ = lc.Conn.SetWriteDeadline(time.Time{})
	lc.holdDeadline = s.srv.ReadTimeout > 0
	go func() {
		if err := s.srv.ServeConn(lc); errors.Is(err, fasthttp.ErrConcurrencyLimit) {
			lc.serving() // refused before its first read
		}
	}()
	return true
}

// unwrap finds the listener's connection under fasthttp's hijack wrapper,
// with the bytes the wrapper holds that were read past the stream's
// request (a pipelined request): the connection goes back to the server as
// itself, not wrapped once more by every stream it carries.
func unwrap(c net.Conn) (*lingerConn, []byte, bool) {
	u, ok := c.(interface{ UnsafeConn() net.Conn })
	if !ok {
		return nil, nil, false
	}
	lc, ok := u.UnsafeConn().(*lingerConn)
	if !ok {
		return nil, nil, false
	}
	// With its deadline passed, a read gives only what is already in
	// memory, and then the deadline's error.
	if lc.Conn.SetReadDeadline(time.Unix(1, 0)) != nil {
		return nil, nil, false
	}
	var rest []byte
	buf := make([]byte, 512)
	for {
		n, err := c.Read(buf)
		rest = append(rest, buf[:n]...)
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			return lc, rest, true
		case err != nil:
			return nil, nil, false // the client closed its side
		}
	}
}
