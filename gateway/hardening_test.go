package gateway_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/steering"
)

// Metric labels take values from closed sets only: a thousand requests
// naming random strategies add no series.
func TestMetricLabelsAreBounded(t *testing.T) {
	opts := defaultOptions()
	opts.Metrics = metrics.New(prometheus.NewRegistry())
	e := start(t, opts, ref(reference.Options{}))
	for i := range 1000 {
		body := fmt.Sprintf(`{"model":"reference","messages":[{"role":"user","content":"hi"}],"steering":{"strategy":"s%d-%s"}}`, i, strings.Repeat("x", i%50))
		if status, _, _ := post(t, e.url+"/v1/chat/completions", body); status != 400 {
			t.Fatalf("status %d", status)
		}
	}
	series := 0
	mfs, err := opts.Metrics.Gatherer().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	if series > 10 {
		t.Errorf("%d series after 1000 requests with random strategy names", series)
	}
}

// Requests wait for admission before their bodies are decoded: a request
// that finds the gateway full gets 503 even when its body is garbage.
func TestAdmissionBeforeDecoding(t *testing.T) {
	opts := defaultOptions()
	opts.MaxInflight, opts.MaxQueue = 1, 0
	w := newWatched(reference.New("reference", reference.Options{FirstTokenDelay: time.Second}))
	e := start(t, opts, map[string]backend.Backend{"reference": w})
	go func() {
		resp, err := http.Post(e.url+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`))
		if err == nil {
			resp.Body.Close()
		}
	}()
	<-w.started
	status, h, body := post(t, e.url+"/v1/chat/completions", `{"model": [[[ not json`)
	if status != 503 || h.Get("Retry-After") == "" {
		t.Errorf("%d %s", status, body)
	}
}

// One key, one meaning: a field spelt in another letter case, which
// encoding/json would read as the field, is refused, and nothing reaches
// the backend.
func TestFieldsDifferingInCaseAreRefused(t *testing.T) {
	w := newWatched(reference.New("reference", reference.Options{}))
	e := start(t, defaultOptions(), map[string]backend.Backend{"reference": w})
	for body, param := range map[string]string{
		`{"model":"reference","messages":[{"role":"user","content":"hi"}],"N":8,"MAX_TOKENS":200,"n":1,"max_tokens":5}`: "n",
		`{"model":"reference","MODEL":"other","messages":[{"role":"user","content":"hi"}]}`:                             "MODEL",
		`{"model":"reference","messages":[{"role":"user","Role":"system","content":"hi"}]}`:                             "messages[0].Role",
		`{"model":"reference","messages":[{"role":"user","content":"hi"}],"vendor":1,"VENDOR":2}`:                       "VENDOR",
	} {
		status, _, resp := post(t, e.url+"/v1/chat/completions", body)
		if status != 400 || !strings.Contains(resp, `"param":"`+param+`"`) {
			t.Errorf("%s: %d %s", body, status, resp)
		}
	}
	if len(w.started) != 0 {
		t.Error("a refused request reached the backend")
	}
}

// A client leaving never fails another asking the same: the second,
// still connected, gets its answer (steering's tests pin down that it
// joins the first one's computation).
func TestSharedComputationSurvivesALeaver(t *testing.T) {
	e, w := sharedCacheGateway(t, 20*time.Millisecond)
	params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("Tell me about the ocean."), Seed: openai.Int(3), MaxTokens: openai.Int(20)}
	first, leave := context.WithCancel(context.Background())
	go func() { _, _ = e.client.Chat.Completions.New(first, params) }()
	<-w.started // the first request's computation is running
	second := askAgain(e, params)
	leave()
	if err := <-second; err != nil {
		t.Errorf("the second client got %v after the first left", err)
	}
}

// The same with a first client that streams: once it has left, nothing is
// written to its stream while the computation goes on for the second (a
// write to the stream it left ended the whole process).
func TestSharedComputationSurvivesAStreamingLeaver(t *testing.T) {
	e, _ := sharedCacheGateway(t, 10*time.Millisecond)
	for i := range 5 {
		params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("Tell me about the ocean."), Seed: openai.Int(int64(10 + i)), MaxTokens: openai.Int(30)}
		first, leave := context.WithCancel(context.Background())
		read := make(chan struct{})
		go func() {
			st := e.client.Chat.Completions.NewStreaming(first, params)
			for n := 0; st.Next(); n++ {
				if n == 2 {
					close(read) // streaming, and the second is to join it
				}
			}
		}()
		<-read
		second := askAgain(e, params)
		time.Sleep(30 * time.Millisecond) // the second has joined
		leave()
		if err := <-second; err != nil {
			t.Errorf("round %d: the second client got %v after the first left", i, err)
		}
	}
}

// sharedCacheGateway serves the reference backend, a token every delay,
// behind an in-memory response cache; w tells when a computation starts.
func sharedCacheGateway(t *testing.T, delay time.Duration) (*env, *watched) {
	rt := backend.NewRouter()
	w := newWatched(reference.New("reference", reference.Options{TokenDelay: delay}))
	rt.Add(backend.Route{Name: "reference", Backend: w, Target: "reference"})
	eng := steering.NewEngine(steering.Options{Limits: steering.Limits{MaxSamples: 16},
		Responses: steering.NewResponseCache(cache.NewMemory(1<<20), true, time.Hour, 1<<20, nil)})
	return serveWith(t, defaultOptions(), rt, eng), w
}

// askAgain sends params as a second client; the channel gets its error,
// or nil for a whole answer.
func askAgain(e *env, params openai.ChatCompletionNewParams) chan error {
	second := make(chan error, 1)
	go func() {
		a, err := e.client.Chat.Completions.New(context.Background(), params)
		if err == nil && a.Choices[0].Message.Content == "" {
			err = fmt.Errorf("empty answer")
		}
		second <- err
	}()
	return second
}

// Cache TTLs a client asks for are bounded by the config and cannot
// overflow.
func TestCacheTTLIsBounded(t *testing.T) {
	rt := backend.NewRouter()
	rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"})
	eng := steering.NewEngine(steering.Options{Limits: steering.Limits{MaxSamples: 16, MaxCacheTTL: 3600}})
	e := serveWith(t, defaultOptions(), rt, eng)
	for _, ttl := range []string{"9223372036854775807", "18446744074", "3601", "-1", "18446744073709551616"} {
		status, _, body := post(t, e.url+"/v1/chat/completions",
			`{"model":"reference","seed":1,"messages":[{"role":"user","content":"hi"}],"steering":{"cache":{"mode":"on","ttl_s":`+ttl+`}}}`)
		if status != 400 || !strings.Contains(body, `"param":"steering.cache.ttl_s"`) {
			t.Errorf("ttl_s %s: %d %s", ttl, status, body)
		}
	}
}

// Weights so large that a utility would overflow to infinity are refused.
func TestHugeWeightsAreRefused(t *testing.T) {
	e := startSteered(t)
	status, _, body := post(t, e.url+"/v1/chat/completions",
		`{"model":"reference","messages":[{"role":"user","content":"hi"}],"steering":{"strategy":"best_of_n","weights":{"verbosity":1e308}}}`)
	if status != 400 || !strings.Contains(body, `"param":"steering.weights"`) {
		t.Errorf("%d %s", status, body)
	}
}

// Draining: /readyz answers 503 for drain_delay while requests are still
// served, then the listener closes; a stream still running when
// shutdown_timeout ends gets an error event and [DONE].
func TestDrainDelayAndCutStreams(t *testing.T) {
	opts := defaultOptions()
	opts.DrainDelay, opts.ShutdownTimeout = 400*time.Millisecond, 300*time.Millisecond
	w := newWatched(reference.New("reference", reference.Options{TokenDelay: 100 * time.Millisecond}))
	e := start(t, opts, map[string]backend.Backend{"reference": w})
	events := make(chan string, 1)
	go func() {
		resp, err := http.Post(e.url+"/v1/chat/completions", "application/json",
			// Seed 5 makes an answer of 97 tokens: ~10 s at this delay, far
			// past the cut.
			strings.NewReader(`{"model":"reference","stream":true,"max_tokens":200,"seed":5,"messages":[{"role":"user","content":"Tell me about the ocean."}]}`))
		if err != nil {
			events <- err.Error()
			return
		}
		b, _ := io.ReadAll(resp.Body)
		events <- string(b)
	}()
	<-w.started
	stopped := make(chan error, 1)
	go func() { stopped <- e.stop() }()
	// While draining: not ready, but still serving.
	deadline := time.Now().Add(2 * time.Second)
	for {
		resp, err := http.Get(e.url + "/readyz")
		if err == nil && resp.StatusCode == 503 {
			resp.Body.Close()
			break
		}
		if resp != nil {
			resp.Body.Close()
		}
		if time.Now().After(deadline) {
			t.Fatal("/readyz never turned 503")
		}
	}
	if status, _, body := post(t, e.url+"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":1}`); status != 200 {
		t.Errorf("during drain_delay: %d %s", status, body)
	}
	got := <-events
	if !strings.Contains(got, `"code":"overloaded"`) || !strings.HasSuffix(strings.TrimSpace(got), "data: [DONE]") {
		t.Errorf("cut stream ended with %q", got[max(0, len(got)-300):])
	}
	if err := <-stopped; err != nil {
		t.Error(err)
	}
}

// HTTP/1.0 has no chunked encoding: a stream goes out on the bare
// connection, which closes at its end.
func TestHTTP10Stream(t *testing.T) {
	e := start(t, defaultOptions(), ref(reference.Options{}))
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"model":"reference","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	resp, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	head, rest, _ := strings.Cut(string(resp), "\r\n\r\n")
	if !strings.HasPrefix(head, "HTTP/1.0 200") || strings.Contains(strings.ToLower(head), "chunked") || !strings.HasSuffix(rest, "data: [DONE]\n\n") {
		t.Errorf("response:\n%s", resp)
	}
}

// A malformed request is refused without echoing it back: a header a
// front proxy added stays secret. Headers over the limit get 431.
func TestMalformedRequests(t *testing.T) {
	e := start(t, defaultOptions(), ref(reference.Options{}))
	raw := func(req string) string {
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		io.WriteString(conn, req)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(bufio.NewReader(conn))
		return string(b)
	}
	got := raw("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Internal-Secret: s3cr3t\r\nContent-Length: zz\r\n\r\n")
	if !strings.Contains(got, " 400 ") || strings.Contains(got, "s3cr3t") {
		t.Errorf("malformed: %s", got)
	}
	got = raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("a", 20<<10) + "\r\n\r\n")
	if !strings.Contains(got, " 431 ") {
		t.Errorf("big headers: %.200s", got)
	}
	// Headers far over the limit, still being sent when the 431 goes out,
	// get it: the connection lingers as it does for a 413, rather than
	// close on unread bytes, which a client may see as a reset first.
	for i := range 5 {
		conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		go io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 4<<20)+"\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(conn)
		conn.Close()
		if !strings.Contains(string(b), " 431 ") {
			t.Errorf("huge headers, try %d: %.200q", i, b)
		}
	}
}

// A body shorter than its Content-Length is a 408 once read_timeout has
// passed, not a 400 for something malformed.
func TestShortBodyTimesOut(t *testing.T) {
	opts := defaultOptions()
	opts.ReadTimeout = 300 * time.Millisecond
	e := start(t, opts, ref(reference.Options{}))
	conn, err := net.Dial("tcp", strings.TrimPrefix(e.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\":")
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(conn)
	if got := string(b); !strings.HasPrefix(got, "HTTP/1.1 408 ") || !strings.Contains(got, `"code":"request_timeout"`) {
		t.Errorf("%s", got)
	}
}

// A body over max_body_bytes gets its 413 even while the client is still
// sending it: the connection lingers instead of resetting.
func TestOversizedBodyGets413(t *testing.T) {
	opts := defaultOptions()
	opts.MaxBodyBytes = 64 << 10
	e := start(t, opts, ref(reference.Options{}))
	for range 5 {
		body := `{"model":"reference","messages":[{"role":"user","content":"` + strings.Repeat("x", 8<<20) + `"}]}`
		status, _, resp := post(t, e.url+"/v1/chat/completions", body)
		if status != 413 || !strings.Contains(resp, "request_too_large") {
			t.Fatalf("%d %.200s", status, resp)
		}
	}
}

// A compressed body is refused for its encoding, not as JSON it is not;
// identity is no encoding.
func TestCompressedBodyIsRefusedByName(t *testing.T) {
	e := start(t, defaultOptions(), ref(reference.Options{}))
	body := `{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(body))
	zw.Close()
	for enc, want := range map[string]int{"gzip": 400, "identity": 200} {
		b := []byte(body)
		if enc == "gzip" {
			b = gz.Bytes()
		}
		req, _ := http.NewRequest("POST", e.url+"/v1/chat/completions", bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", enc)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || want == 400 && !strings.Contains(string(out), `Content-Encoding \"gzip\" is not supported`) {
			t.Errorf("%s: %d %s", enc, resp.StatusCode, out)
		}
	}
	// The gateway's own endpoints too.
	req, _ := http.NewRequest("POST", e.url+"/v1/feedback", bytes.NewReader(gz.Bytes()))
	req.Header.Set("Content-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 400 || !strings.Contains(string(out), `"code":"unsupported"`) {
		t.Errorf("feedback, gzip: %d %s", resp.StatusCode, out)
	}
}
