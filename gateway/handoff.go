package gateway

import (
	"errors"
	"fmt"
	"io"
	"net"
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
// the connection cannot carry another response. At the end the same
// goroutine, in fasthttp, reads the connection's next request (HTTP/1.1
// keep-alive) or closes it; no goroutine is started and none left idle.
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
	c := ctx.Conn()
	lc, ours := c.(*lingerConn)
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
	if !ours {
		// Not the listener's connection: no answer of fasthttp's can be
		// kept off it, so fasthttp closes it with none (a hijack).
		ctx.HijackSetNoResponse(true)
		ctx.Hijack(func(net.Conn) {})
		return
	}
	// fasthttp goes on with the connection as after any answer, on this
	// goroutine: it reads the next request (keep-alive) or closes. The
	// stream was the answer; the empty one fasthttp writes now is dropped.
	ctx.Response.Reset()
	if err != nil || !keep {
		ctx.SetConnectionClose()
	}
	lc.dropHead = true
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
