package gateway_test

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
)

func rawPost(body string, extra string) string {
	return fmt.Sprintf("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s", extra, len(body), body)
}

// dial opens a connection to the gateway, closed when the test ends.
func (e *env) dial(t *testing.T) net.Conn {
	t.Helper()
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	return conn
}

// readAnswer reads one response from br and checks that it is a 200 whose
// body ends as a stream's or an answer's does.
func readAnswer(t *testing.T, br *bufio.Reader, stream bool) *http.Response {
	t.Helper()
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%d %v %s", resp.StatusCode, err, b)
	}
	switch {
	case stream && (!strings.HasSuffix(string(b), "data: [DONE]\n\n") || strings.Contains(string(b), `"error"`) ||
		len(resp.TransferEncoding) != 1 || resp.TransferEncoding[0] != "chunked" || resp.Header.Get("Content-Type") != "text/event-stream"):
		t.Errorf("stream %v %v:\n%s", resp.TransferEncoding, resp.Header, b)
	case !stream && !strings.Contains(string(b), `"choices":[{`):
		t.Errorf("answer %s", b)
	}
	if resp.Header.Get("X-Request-Id") == "" {
		t.Errorf("no request id: %v", resp.Header)
	}
	return resp
}

// A stream is sent off the server's connection goroutine; its connection
// then goes on serving requests (keep-alive), a request pipelined behind
// the stream's included, until a request asks it to close. Relayed and
// decoded streams alike.
func TestStreamConnectionGoesOn(t *testing.T) {
	ts := backendtest.StartToolServer(t)
	for name, b := range map[string]backend.Backend{
		"relayed": upstream(t, "up", ts.URL, "vllm"),
		"decoded": reference.New("reference", reference.Options{}),
	} {
		t.Run(name, func(t *testing.T) {
			e := start(t, defaultOptions(), map[string]backend.Backend{"reference": b})
			conn := e.dial(t)
			br := bufio.NewReader(conn)
			stream := `{"model":"reference","stream":true,"max_tokens":6,"messages":[{"role":"user","content":"hi"}]}`
			answer := `{"model":"reference","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`
			// The answer is pipelined behind the stream: it is read with
			// the stream's request and must wait for the stream to end.
			io.WriteString(conn, rawPost(stream, "")+rawPost(answer, ""))
			if resp := readAnswer(t, br, true); resp.Close {
				t.Error("a kept-alive stream said it closes")
			}
			readAnswer(t, br, false)
			for range 3 {
				io.WriteString(conn, rawPost(stream, ""))
				readAnswer(t, br, true)
			}
			io.WriteString(conn, rawPost(stream, "Connection: close\r\n"))
			if resp := readAnswer(t, br, true); !resp.Close {
				t.Error("a stream asked to close did not say it closes")
			}
			if n, err := br.ReadByte(); err != io.EOF {
				t.Errorf("the connection stayed open after Connection: close (%v, %v)", n, err)
			}
		})
	}
}

// Shutdown waits for a stream sent off the connection goroutine, which
// ends whole; its connection then closes instead of serving more.
func TestShutdownWaitsForStream(t *testing.T) {
	w := newWatched(reference.New("reference", reference.Options{TokenDelay: 40 * time.Millisecond}))
	e := start(t, defaultOptions(), map[string]backend.Backend{"reference": w})
	conn := e.dial(t)
	io.WriteString(conn, rawPost(`{"model":"reference","stream":true,"max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`, ""))
	<-w.started
	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	// The stream lasts at least 8 token delays (320 ms).
	time.Sleep(100 * time.Millisecond)
	select {
	case <-stopped:
		t.Fatal("shutdown ended while a stream was running")
	default:
	}
	br := bufio.NewReader(conn)
	readAnswer(t, br, true)
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("the stream's connection stayed open during shutdown: %v", err)
	}
	select {
	case err := <-stopped:
		if err != nil {
			t.Error(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("shutdown did not end")
	}
}

// A connection that carried a stream waits idle_timeout for its next
// request, as any kept-alive connection does, not read_timeout.
func TestStreamConnectionWaitsIdleTimeout(t *testing.T) {
	opts := defaultOptions()
	opts.ReadTimeout, opts.IdleTimeout = 300*time.Millisecond, 10*time.Second
	e := start(t, opts, ref(reference.Options{}))
	conn := e.dial(t)
	br := bufio.NewReader(conn)
	io.WriteString(conn, rawPost(`{"model":"reference","stream":true,"max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`, ""))
	readAnswer(t, br, true)
	time.Sleep(3 * opts.ReadTimeout)
	io.WriteString(conn, rawPost(`{"model":"reference","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`, ""))
	readAnswer(t, br, false)
}

// One kept-alive connection carries requests however they arrive: larger
// than one read, split across writes, two in one write; and it closes
// after idle_timeout with nothing sent.
func TestKeptAliveConnectionTakesRequestsAsTheyArrive(t *testing.T) {
	opts := defaultOptions()
	opts.IdleTimeout = 300 * time.Millisecond
	e := start(t, opts, ref(reference.Options{}))
	conn := e.dial(t)
	br := bufio.NewReader(conn)
	answer := rawPost(`{"model":"reference","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`, "")
	large := rawPost(`{"model":"reference","max_tokens":3,"messages":[{"role":"user","content":"`+strings.Repeat("why ", 5000)+`"}]}`, "")
	io.WriteString(conn, answer)
	readAnswer(t, br, false)
	io.WriteString(conn, large)
	readAnswer(t, br, false)
	half := len(answer) / 2
	io.WriteString(conn, answer[:half])
	time.Sleep(50 * time.Millisecond)
	io.WriteString(conn, answer[half:])
	readAnswer(t, br, false)
	io.WriteString(conn, answer+large)
	readAnswer(t, br, false)
	readAnswer(t, br, false)
	start := time.Now()
	if _, err := br.ReadByte(); err != io.EOF {
		t.Errorf("an idle connection: %v, want it closed", err)
	}
	if waited := time.Since(start); waited < opts.IdleTimeout/2 {
		t.Errorf("closed after %v, before idle_timeout (%v)", waited, opts.IdleTimeout)
	}
}
