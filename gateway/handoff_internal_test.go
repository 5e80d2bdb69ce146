package gateway

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/valyala/fasthttp"
)

// A panic in a stream's body ends that stream and closes its connection
// without the body's last chunk, so the client sees a stream cut short,
// not one that ended well; the server goes on serving.
func TestPanicInAStreamEndsItsConnection(t *testing.T) {
	s := New(Options{RequestTimeout: time.Minute}, backend.NewRouter(), nil, slog.New(slog.DiscardHandler), nil)
	s.srv.Handler = func(ctx *fasthttp.RequestCtx) {
		bug := string(ctx.Path()) == "/bug"
		s.handOff(ctx, func(w io.Writer) error {
			if _, err := io.WriteString(w, "data: 1\n\n"); err != nil {
				return err
			}
			if bug {
				panic("a bug in a stream")
			}
			return nil
		})
		s.sendStream(ctx, "req-1")
	}
	send := serveStreams(t, s)
	get := func(path string) []byte {
		b, err := io.ReadAll(send("GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")) // to the server's close
		if err != nil {
			t.Fatalf("%s: %v after %q", path, err, b)
		}
		return b
	}
	b := get("/bug")
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 200")) || !bytes.Contains(b, []byte("data: 1")) || bytes.HasSuffix(b, []byte("0\r\n\r\n")) {
		t.Errorf("the stream that panicked: %q", b)
	}
	b = get("/ok")
	if !bytes.Contains(b, []byte("data: 1")) || !bytes.HasSuffix(b, []byte("0\r\n\r\n")) {
		t.Errorf("the stream after it: %q", b)
	}
}

// A panic in the handler after it has handed its stream off (in its
// bookkeeping) still sends the stream: the stream's end is what frees the
// request's admission slot and context.
func TestPanicAfterHandOffStillSendsTheStream(t *testing.T) {
	s := New(Options{RequestTimeout: time.Minute}, backend.NewRouter(), nil, slog.New(slog.DiscardHandler), nil)
	freed := make(chan struct{}, 1)
	s.srv.Handler = func(ctx *fasthttp.RequestCtx) {
		defer s.recoverPanic(ctx, "req-1")
		s.handOff(ctx, func(w io.Writer) error {
			defer func() { freed <- struct{}{} }()
			_, err := io.WriteString(w, "data: 1\n\n")
			return err
		})
		panic("a bug after the hand-off")
	}
	send := serveStreams(t, s)
	b, err := io.ReadAll(send("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
	if err != nil {
		t.Fatalf("%v after %q", err, b)
	}
	if !bytes.HasPrefix(b, []byte("HTTP/1.1 200")) || !bytes.Contains(b, []byte("data: 1")) || !bytes.HasSuffix(b, []byte("0\r\n\r\n")) {
		t.Errorf("%q", b)
	}
	select {
	case <-freed:
	default:
		t.Error("the stream's body did not run to its end")
	}
}

// A stream that answers a HEAD request sends its head alone, and the
// connection goes on to its next request in step.
func TestHeadOfAStreamIsItsHeadAlone(t *testing.T) {
	s := New(Options{RequestTimeout: time.Minute}, backend.NewRouter(), nil, slog.New(slog.DiscardHandler), nil)
	s.srv.Handler = func(ctx *fasthttp.RequestCtx) {
		if string(ctx.Path()) == "/plain" {
			ctx.SetBodyString("plain")
			return
		}
		s.handOff(ctx, func(w io.Writer) error {
			_, err := io.WriteString(w, "data: 1\n\n")
			return err
		})
		s.sendStream(ctx, "req-1")
	}
	send := serveStreams(t, s)
	c := send("HEAD /live HTTP/1.1\r\nHost: x\r\n\r\n")
	br := bufio.NewReader(c)
	var head fasthttp.ResponseHeader
	if err := head.Read(br); err != nil {
		t.Fatal(err)
	}
	if head.StatusCode() != 200 || string(head.ContentType()) != "text/event-stream" {
		t.Errorf("head %q", head.Header())
	}
	// The next request on the same connection reads its own answer.
	if _, err := io.WriteString(c, "GET /plain HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(br)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(rest, []byte("HTTP/1.1 200")) || !bytes.HasSuffix(rest, []byte("\r\n\r\nplain")) {
		t.Errorf("after the HEAD: %q", rest)
	}
}

// serveStreams serves s (its handler set by the test) on a loopback port
// until the test ends. It returns send, which sends a raw request on a new
// connection and returns the connection to read the answer from.
func serveStreams(t *testing.T, s *Server) (send func(req string) net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.srv.Serve(lingerListener{ln}) }()
	t.Cleanup(func() { _ = s.srv.Shutdown(); <-done })
	return func(req string) net.Conn {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.WriteString(c, req); err != nil {
			t.Fatal(err)
		}
		return c
	}
}
