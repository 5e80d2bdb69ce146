package gateway_test

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/openai"
	"github.com/steergate/steergate/backend/reference"
)

// upstream is an OpenAI-compatible backend of the given flavour at url (a
// /v1 base).
func upstream(t testing.TB, name, url, flavour string) backend.Backend {
	t.Helper()
	c, err := openai.New(name, url, "", flavour, 64, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// An upstream answer larger than max_response_bytes is a 502, not memory.
func TestUpstreamBodyIsBounded(t *testing.T) {
	huge := `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"` +
		strings.Repeat("a", 3<<20) + `"},"finish_reason":"stop"}]}`
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, huge)
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	c, err := openai.New("big", "http://"+ln.Addr().String()+"/v1", "", openai.FlavourOpenAI, 4, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	e := start(t, defaultOptions(), map[string]backend.Backend{"m": c})
	status, _, body := post(t, e.url+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}]}`)
	if status != 502 || !strings.Contains(body, "max_response_bytes") {
		t.Errorf("%d %s", status, body[:min(len(body), 300)])
	}
}

// compatBackend is an OpenAI-flavoured backend at url with a bound on its
// answers.
func compatBackend(t testing.TB, name, url string, maxBytes int) backend.Backend {
	t.Helper()
	c, err := openai.New(name, url, "", openai.FlavourOpenAI, 64, maxBytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A stream option besides include_usage reaches an OpenAI-compatible
// backend on the passthrough, as sent; where the gateway writes the stream
// itself (here the reference model in-process) it is refused by name.
func TestStreamOptionsBeyondIncludeUsage(t *testing.T) {
	var got atomic.Value
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(string(b))
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, `data: {"id":"x","object":"chat.completion.chunk","created":1,"model":"m","choices":[{"index":0,"delta":{"content":"hi"},"finish_reason":"stop"}]}`+"\n\ndata: [DONE]\n\n")
	})}
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e := start(t, defaultOptions(), map[string]backend.Backend{"m": compatBackend(t, "up", "http://"+ln.Addr().String()+"/v1", 0),
		"reference": reference.New("reference", reference.Options{})})
	const opts = `"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}`
	status, _, body := post(t, e.url+"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],`+opts+`}`)
	if sent, _ := got.Load().(string); status != 200 || !strings.Contains(sent, `"continuous_usage_stats":true`) {
		t.Errorf("passthrough: %d %s; the backend got %s", status, body, sent)
	}
	status, _, body = post(t, e.url+"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"hi"}],`+opts+`}`)
	if status != 400 || !strings.Contains(body, `"param":"stream_options.continuous_usage_stats"`) {
		t.Errorf("a stream the gateway writes: %d %s", status, body)
	}
}
