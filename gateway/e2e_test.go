package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/gateway"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/test/leak"
	"github.com/steergate/steergate/wire"
	"go.uber.org/goleak"
)

func defaultOptions() gateway.Options {
	return gateway.Options{
		RequestTimeout: 30 * time.Second, MaxBodyBytes: 1 << 20, MaxInflight: 64, MaxQueue: 64,
		QueueTimeout: time.Second, ReadTimeout: 10 * time.Second, IdleTimeout: 10 * time.Second,
		ShutdownTimeout: 5 * time.Second, Limits: wire.Limits{MaxN: 16, MaxStop: 4, MaxTopLogprobs: 20},
	}
}

type env struct {
	url    string
	client openai.Client
	stop   func() error // drains and stops the server
}

// start serves a gateway routing each model name to its backend.
func start(t testing.TB, opts gateway.Options, routes map[string]backend.Backend) *env {
	t.Helper()
	rt := backend.NewRouter()
	for name, b := range routes {
		if err := rt.Add(backend.Route{Name: name, Backend: b, Target: name}); err != nil {
			t.Fatal(err)
		}
	}
	return serveWith(t, opts, rt, nil)
}

// serveWith serves a gateway over a router and engine (nil: passthrough
// only) on a loopback port until the test ends.
func serveWith(t testing.TB, opts gateway.Options, rt *backend.Router, eng gateway.Engine) *env {
	t.Helper()
	return serveLogged(t, opts, rt, eng, io.Discard)
}

// serveLogged is serveWith, its log written to w.
func serveLogged(t testing.TB, opts gateway.Options, rt *backend.Router, eng gateway.Engine, w io.Writer) *env {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(w, nil))
	srv := gateway.New(opts, rt, eng, log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	var once sync.Once
	var serr error
	stop := func() error {
		once.Do(func() { cancel(); serr = <-done })
		return serr
	}
	t.Cleanup(func() { _ = stop() })
	url := "http://" + ln.Addr().String()
	c := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("sk-none"), option.WithMaxRetries(0))
	return &env{url: url, client: c, stop: stop}
}

func ref(opts reference.Options) map[string]backend.Backend {
	return map[string]backend.Backend{"reference": reference.New("reference", opts)}
}

func userMsg(q string) []openai.ChatCompletionMessageParamUnion {
	return []openai.ChatCompletionMessageParamUnion{openai.UserMessage(q)}
}

func TestSDKModels(t *testing.T) {
	e := start(t, defaultOptions(), ref(reference.Options{}))
	page, err := e.client.Models.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != "reference" || page.Data[0].OwnedBy != "reference" {
		t.Errorf("models %+v", page.Data)
	}
	// One model, as the SDKs' models.retrieve asks for it.
	m, err := e.client.Models.Get(context.Background(), "reference")
	if err != nil || m.ID != "reference" || m.OwnedBy != "reference" || m.Object != "model" {
		t.Errorf("one model: %+v %v", m, err)
	}
	var apiErr *openai.Error
	if _, err := e.client.Models.Get(context.Background(), "nope"); !errors.As(err, &apiErr) || apiErr.StatusCode != 404 || apiErr.Code != "model_not_found" {
		t.Errorf("an unknown model: %v", err)
	}
	// Probes may ask with HEAD: GET's answer without its body.
	for _, path := range []string{"/healthz", "/readyz", "/v1/models", "/v1/models/reference"} {
		req, _ := http.NewRequest("HEAD", e.url+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(body) != 0 {
			t.Errorf("HEAD %s: %d, %d bytes of body", path, resp.StatusCode, len(body))
		}
	}
}

func TestSDKChatSeededAndStreamed(t *testing.T) {
	e := start(t, defaultOptions(), ref(reference.Options{}))
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("Why is the sky blue?"),
		Seed: openai.Int(42), MaxTokens: openai.Int(40)}
	var httpResp *http.Response
	a, err := e.client.Chat.Completions.New(ctx, params, option.WithResponseInto(&httpResp))
	if err != nil {
		t.Fatal(err)
	}
	if httpResp.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id")
	}
	if a.Object != "chat.completion" || len(a.Choices) != 1 || a.Choices[0].Message.Content == "" || a.Choices[0].Message.Role != "assistant" {
		t.Fatalf("bad completion %+v", a)
	}
	if a.Usage.PromptTokens == 0 || a.Usage.CompletionTokens == 0 || a.Usage.TotalTokens != a.Usage.PromptTokens+a.Usage.CompletionTokens {
		t.Errorf("usage %+v", a.Usage)
	}
	b, err := e.client.Chat.Completions.New(ctx, params)
	if err != nil {
		t.Fatal(err)
	}
	if a.Choices[0].Message.Content != b.Choices[0].Message.Content {
		t.Errorf("same seed, different answers: %q / %q", a.Choices[0].Message.Content, b.Choices[0].Message.Content)
	}

	params.StreamOptions = openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}
	st := e.client.Chat.Completions.NewStreaming(ctx, params)
	acc := openai.ChatCompletionAccumulator{}
	chunks, usageChunks := 0, 0
	for st.Next() {
		ch := st.Current()
		acc.AddChunk(ch)
		chunks++
		if chunks == 1 && (len(ch.Choices) != 1 || ch.Choices[0].Delta.Role != "assistant") {
			t.Errorf("first chunk has no assistant role: %+v", ch)
		}
		if len(ch.Choices) == 0 {
			usageChunks++
			if ch.Usage.TotalTokens != a.Usage.TotalTokens {
				t.Errorf("stream usage %+v, non-stream %+v", ch.Usage, a.Usage)
			}
		}
	}
	if err := st.Err(); err != nil {
		t.Fatal(err)
	}
	if usageChunks != 1 {
		t.Errorf("%d usage chunks", usageChunks)
	}
	if got := acc.Choices[0].Message.Content; got != a.Choices[0].Message.Content {
		t.Errorf("streamed %q, non-streamed %q", got, a.Choices[0].Message.Content)
	}
	if acc.Choices[0].FinishReason != a.Choices[0].FinishReason {
		t.Errorf("finish %q vs %q", acc.Choices[0].FinishReason, a.Choices[0].FinishReason)
	}
}

func TestSDKNFannedOut(t *testing.T) {
	// The llama.cpp flavour has no native n, so the gateway fans out.
	lc := upstream(t, "llamacpp", backendtest.StartReference(t, reference.Options{})+"/v1", "llamacpp")
	e := start(t, defaultOptions(), map[string]backend.Backend{"reference": lc})
	params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("Give me advice on exercise."),
		N: openai.Int(3), Seed: openai.Int(9), MaxTokens: openai.Int(30), Logprobs: openai.Bool(true), TopLogprobs: openai.Int(2)}
	c, err := e.client.Chat.Completions.New(context.Background(), params)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Choices) != 3 {
		t.Fatalf("%d choices", len(c.Choices))
	}
	distinct := map[string]bool{}
	var completion int64
	for i, ch := range c.Choices {
		if ch.Index != int64(i) {
			t.Errorf("choice %d index %d", i, ch.Index)
		}
		distinct[ch.Message.Content] = true
		completion += int64(len(ch.Logprobs.Content))
		for _, lp := range ch.Logprobs.Content {
			if len(lp.TopLogprobs) != 2 {
				t.Errorf("top_logprobs %d", len(lp.TopLogprobs))
			}
		}
	}
	if len(distinct) < 2 {
		t.Errorf("fan-out samples identical: %v", distinct)
	}
	// Each sample paid for its prompt and its tokens (plus end of text).
	if c.Usage.CompletionTokens < completion {
		t.Errorf("usage %d completion tokens < %d logprob tokens", c.Usage.CompletionTokens, completion)
	}
	// The samples are the in-process model's seeds 9, 10, 11.
	r := reference.New("x", reference.Options{})
	for i := range 3 {
		s := int64(9 + i)
		g, err := r.Generate(context.Background(), &backend.Request{Model: "reference", Messages: []backend.Message{{Role: "user", Content: "Give me advice on exercise."}}, Seed: &s, MaxTokens: 30})
		if err != nil {
			t.Fatal(err)
		}
		if g.Choices[0].Text != c.Choices[i].Message.Content {
			t.Errorf("choice %d = %q, want seed %d's %q", i, c.Choices[i].Message.Content, s, g.Choices[0].Text)
		}
	}
}

func TestSDKCompletions(t *testing.T) {
	e := start(t, defaultOptions(), ref(reference.Options{}))
	c, err := e.client.Completions.New(context.Background(), openai.CompletionNewParams{
		Model: "reference", Prompt: openai.CompletionNewParamsPromptUnion{OfString: openai.String("Light travels at")},
		MaxTokens: openai.Int(5), Temperature: openai.Float(0), Logprobs: openai.Int(2)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.Choices[0].Text, " about three") || len(c.Choices[0].Logprobs.Tokens) == 0 {
		t.Errorf("completion %+v", c.Choices[0])
	}
}

// apiErr asserts err is an OpenAI API error with the given status and param.
func apiErr(t *testing.T, err error, status int, param string) {
	t.Helper()
	var ae *openai.Error
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an API error", err)
	}
	if ae.StatusCode != status || ae.Param != param || ae.Message == "" {
		t.Errorf("status %d param %q message %q; want %d %q", ae.StatusCode, ae.Param, ae.Message, status, param)
	}
}

func TestSDKErrors(t *testing.T) {
	e := start(t, defaultOptions(), ref(reference.Options{}))
	ctx := context.Background()
	base := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("hi")}
	cases := []struct {
		name   string
		mod    func(p *openai.ChatCompletionNewParams)
		status int
		param  string
	}{
		{"unknown model", func(p *openai.ChatCompletionNewParams) { p.Model = "gpt-nope" }, 404, "model"},
		{"temperature", func(p *openai.ChatCompletionNewParams) { p.Temperature = openai.Float(3) }, 400, "temperature"},
		{"n too large", func(p *openai.ChatCompletionNewParams) { p.N = openai.Int(99) }, 400, "n"},
		{"top_logprobs without logprobs", func(p *openai.ChatCompletionNewParams) { p.TopLogprobs = openai.Int(3) }, 400, "top_logprobs"},
		{"max_tokens zero", func(p *openai.ChatCompletionNewParams) { p.MaxTokens = openai.Int(0) }, 400, "max_tokens"},
		{"max_completion_tokens", func(p *openai.ChatCompletionNewParams) { p.MaxCompletionTokens = openai.Int(-1) }, 400, "max_completion_tokens"},
		{"no messages", func(p *openai.ChatCompletionNewParams) { p.Messages = nil }, 400, "messages"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := base
			c.mod(&p)
			_, err := e.client.Chat.Completions.New(ctx, p)
			apiErr(t, err, c.status, c.param)
		})
	}
}

// post sends a raw request and returns status, headers and the decoded
// error envelope (if any).
func post(t *testing.T, url, body string) (int, http.Header, string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func TestRawErrors(t *testing.T) {
	opts := defaultOptions()
	opts.MaxBodyBytes = 2048
	e := start(t, opts, ref(reference.Options{}))
	u := e.url + "/v1/chat/completions"
	for _, c := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"bad json", `{"model":`, 400, `"type":"invalid_request_error"`},
		{"empty", ``, 400, `request body is empty`},
		{"wrong type", `{"model":"reference","messages":"hi"}`, 400, `"param":"messages"`},
		{"too large", `{"model":"reference","messages":[{"role":"user","content":"` + strings.Repeat("x", 4096) + `"}]}`, 413, `"code":"request_too_large"`},
		{"bad role", `{"model":"reference","messages":[{"role":"wizard","content":"x"}]}`, 400, `"param":"messages[0].role"`},
		// The reference model reads text only: an image is refused by name.
		{"image part", `{"model":"reference","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]}`, 400,
			`"param":"messages[0].content[0]","code":"unsupported"`},
		{"tools", `{"model":"reference","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}`, 400,
			`"param":"tools","code":"unsupported"`},
		{"case smuggling", `{"model":"reference","messages":[{"role":"user","content":"x"}],"N":8}`, 400, `"param":"n"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, h, body := post(t, u, c.body)
			if status != c.status || !strings.Contains(body, c.want) || !strings.HasPrefix(body, `{"error":{`) {
				t.Errorf("status %d body %s; want %d containing %s", status, body, c.status, c.want)
			}
			if h.Get("X-Request-Id") == "" {
				t.Error("no X-Request-Id on an error")
			}
		})
	}
	status, _, body := post(t, e.url+"/v1/nothing", `{}`)
	if status != 404 || !strings.Contains(body, `"error"`) {
		t.Errorf("unknown path: %d %s", status, body)
	}
	// It is quoted as sent, not as the path it decodes to.
	status, _, body = post(t, e.url+"/v1//nothing", `{}`)
	if status != 404 || !strings.Contains(body, "unknown path /v1//nothing") {
		t.Errorf("unknown path with //: %d %s", status, body)
	}
}

func TestOverloadedGets503WithRetryAfter(t *testing.T) {
	opts := defaultOptions()
	opts.MaxInflight, opts.MaxQueue = 1, 0
	e := start(t, opts, ref(reference.Options{TokenDelay: 300 * time.Millisecond}))
	// Hold the only slot with a stream whose first chunk has arrived.
	st := e.client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "reference", Messages: userMsg("Tell me about tea."), MaxTokens: openai.Int(4), Seed: openai.Int(1)})
	if !st.Next() {
		t.Fatalf("no first chunk: %v", st.Err())
	}
	status, h, b := post(t, e.url+"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`)
	if status != 503 || h.Get("Retry-After") == "" || !strings.Contains(b, `"code":"overloaded"`) {
		t.Errorf("got %d %v %s; want 503 with Retry-After and the envelope", status, h, b)
	}
	for st.Next() {
	}
	if err := st.Err(); err != nil {
		t.Errorf("the admitted stream failed: %v", err)
	}
}

func TestBackendTimeoutIs504(t *testing.T) {
	opts := defaultOptions()
	opts.RequestTimeout = 200 * time.Millisecond
	e := start(t, opts, ref(reference.Options{FirstTokenDelay: 5 * time.Second}))
	_, err := e.client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("hi")})
	apiErr(t, err, 504, "")
}

// The request deadline cutting a relayed stream short is a timeout, as
// on every other path: not the broken read it leaves behind.
func TestRelayedStreamDeadlineIsATimeout(t *testing.T) {
	url := backendtest.StartReference(t, reference.Options{TokenDelay: 50 * time.Millisecond})
	rt := backend.NewRouter()
	if err := rt.Add(backend.Route{Name: "reference", Backend: upstream(t, "up", url+"/v1", "vllm"), Target: "reference"}); err != nil {
		t.Fatal(err)
	}
	opts := defaultOptions()
	opts.RequestTimeout = 400 * time.Millisecond
	opts.Metrics = metrics.New(prometheus.NewRegistry())
	e := serveWith(t, opts, rt, nil)
	status, _, got := post(t, e.url+"/v1/chat/completions", `{"model":"reference","stream":true,"max_tokens":100,"messages":[{"role":"user","content":"Tell me about the moon"}]}`)
	if status != 200 || !strings.Contains(got, `"code":"timeout"`) || strings.Contains(got, "backend_error") || !strings.HasSuffix(strings.TrimSpace(got), "data: [DONE]") {
		t.Errorf("%d %s", status, got)
	}
	// Counted 200 once its first byte was sent, the stream ended a 504.
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := string(b)
	for _, want := range []string{`steergate_requests_total{arm="",route="reference",status="200",strategy="none"} 1`,
		`steergate_stream_ends_total{route="reference",status="504",strategy="none"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// failingUpstream is an OpenAI-compatible server that answers 500, or for
// streams sends one chunk and then drops the connection.
func failingUpstream(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				req, err := http.ReadRequest(bufio.NewReader(c))
				if err != nil {
					return
				}
				body, _ := io.ReadAll(req.Body)
				if strings.Contains(string(body), `"stream":true`) {
					io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
					io.WriteString(c, `data: {"choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}`+"\n\n")
					return // connection reset mid-stream
				}
				msg := `{"error":{"message":"boom","type":"server_error"}}`
				io.WriteString(c, "HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: "+strconv.Itoa(len(msg))+"\r\n\r\n"+msg)
			}()
		}
	}()
	return "http://" + ln.Addr().String() + "/v1"
}

func TestBackendFailureIs502AndMidStreamErrorEndsStream(t *testing.T) {
	up := upstream(t, "flaky", failingUpstream(t), "openai")
	e := start(t, defaultOptions(), map[string]backend.Backend{"flaky": up})
	params := openai.ChatCompletionNewParams{Model: "flaky", Messages: userMsg("hi")}
	_, err := e.client.Chat.Completions.New(context.Background(), params)
	apiErr(t, err, 502, "")

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := e.client.Chat.Completions.NewStreaming(ctx, params)
	var got string
	for st.Next() {
		if len(st.Current().Choices) > 0 {
			got += st.Current().Choices[0].Delta.Content
		}
	}
	if got != "Hello" {
		t.Errorf("content before the failure %q", got)
	}
	if st.Err() == nil || ctx.Err() != nil {
		t.Errorf("stream ended with err=%v ctx=%v; want an error event, not a hang", st.Err(), ctx.Err())
	}
}

// watched records when its backend calls start and end, and why they
// ended.
type watched struct {
	backend.Backend
	mu      sync.Mutex
	started chan struct{}
	ended   chan error
	extra   map[string]string
}

func newWatched(b backend.Backend) *watched {
	return &watched{Backend: b, started: make(chan struct{}, 16), ended: make(chan error, 16), extra: map[string]string{}}
}

func (w *watched) record(ctx context.Context, r *backend.Request) {
	w.mu.Lock()
	for k, v := range r.Extra {
		w.extra[k] = string(v)
	}
	w.mu.Unlock()
	w.started <- struct{}{}
	go func() { <-ctx.Done(); w.ended <- ctx.Err() }()
}

func (w *watched) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	w.record(ctx, r)
	return w.Backend.Generate(ctx, r)
}

func (w *watched) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	w.record(ctx, r)
	return w.Backend.Stream(ctx, r, emit)
}

// cancelledWithin fails the test unless the backend's call ends,
// cancelled, within d of the client's leaving.
func (w *watched) cancelledWithin(t *testing.T, d time.Duration, what string) {
	t.Helper()
	select {
	case err := <-w.ended:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("%s: backend context ended with %v, want canceled", what, err)
		}
	case <-time.After(d):
		t.Fatalf("%s: backend call still running %s after the client left", what, d)
	}
}

func TestClientDisconnectCancelsBackend(t *testing.T) {
	defer goleak.VerifyNone(t, append(leak.Ignored, goleak.IgnoreCurrent())...)
	w := newWatched(reference.New("reference", reference.Options{TokenDelay: 50 * time.Millisecond}))
	e := start(t, defaultOptions(), map[string]backend.Backend{"reference": w})
	for _, stream := range []bool{false, true} {
		ctx, cancel := context.WithCancel(context.Background())
		params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("Tell me about the ocean."), MaxTokens: openai.Int(200)}
		go func() {
			<-w.started
			cancel() // the client leaves once the backend is at work
		}()
		if stream {
			st := e.client.Chat.Completions.NewStreaming(ctx, params)
			for st.Next() {
			}
		} else {
			_, _ = e.client.Chat.Completions.New(ctx, params)
		}
		w.cancelledWithin(t, 5*time.Second, fmt.Sprintf("stream=%v", stream))
	}
	e.client = openai.Client{}
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	http.DefaultClient.CloseIdleConnections()
}

// The disconnect watch outlasts read_timeout: the deadline that bounds
// reading a request does not end the watch of a request that runs longer,
// streamed or not. The backend says nothing for 20 s, so only the watch
// can tell that the client has left.
func TestClientDisconnectAfterReadTimeoutCancelsBackend(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("the disconnect watch is built for Linux only")
	}
	w := newWatched(reference.New("reference", reference.Options{FirstTokenDelay: 20 * time.Second}))
	opts := defaultOptions()
	opts.ReadTimeout = 200 * time.Millisecond
	e := start(t, opts, map[string]backend.Backend{"reference": w})
	addr := strings.TrimPrefix(e.url, "http://")
	for _, stream := range []bool{false, true} {
		body := fmt.Sprintf(`{"model":"reference","messages":[{"role":"user","content":"Tell me about the ocean."}],"max_tokens":200,"stream":%v}`, stream)
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		<-w.started
		time.Sleep(3 * opts.ReadTimeout) // past the read deadline
		c.Close()
		w.cancelledWithin(t, 3*time.Second, fmt.Sprintf("stream=%v", stream))
	}
}

// Fields the gateway does not read reach the backend as sent; one the
// backend does not serve comes back refused by name (the reference model
// takes top_k and nothing else beside OpenAI's fields).
func TestUnknownFieldsPassThrough(t *testing.T) {
	w := newWatched(reference.New("reference", reference.Options{}))
	e := start(t, defaultOptions(), map[string]backend.Backend{"reference": w})
	status, _, body := post(t, e.url+"/v1/chat/completions",
		`{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"top_k":5,"vendor_thing":{"a":[1,2]}}`)
	if status != 400 || !strings.Contains(body, `"param":"vendor_thing"`) {
		t.Errorf("a field the backend does not serve: %d %s", status, body)
	}
	w.mu.Lock()
	if w.extra["top_k"] != "5" || w.extra["vendor_thing"] != `{"a":[1,2]}` {
		t.Errorf("extra fields reached the backend as %v", w.extra)
	}
	w.mu.Unlock()
	status, _, body = post(t, e.url+"/v1/chat/completions",
		`{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"top_k":5}`)
	if status != 200 {
		t.Errorf("top_k: %d %s", status, body)
	}
	// So is one inside a message, by its path.
	status, _, body = post(t, e.url+"/v1/chat/completions",
		`{"model":"reference","messages":[{"role":"user","content":"hi","bogus":1}],"max_tokens":3}`)
	if status != 400 || !strings.Contains(body, `"param":"messages[0].bogus"`) {
		t.Errorf("a field inside a message: %d %s", status, body)
	}
	for _, bad := range []string{`"x"`, `-5`, `1.5`} {
		status, _, body = post(t, e.url+"/v1/chat/completions",
			`{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"top_k":`+bad+`}`)
		if status != 400 || !strings.Contains(body, `"param":"top_k"`) {
			t.Errorf("top_k %s: %d %s", bad, status, body)
		}
	}
}

func TestDrainOnShutdown(t *testing.T) {
	w := newWatched(reference.New("reference", reference.Options{FirstTokenDelay: 300 * time.Millisecond}))
	e := start(t, defaultOptions(), map[string]backend.Backend{"reference": w})
	res := make(chan error, 1)
	go func() {
		_, err := e.client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("hi"), MaxTokens: openai.Int(3)})
		res <- err
	}()
	<-w.started // the request is in flight
	if err := e.stop(); err != nil {
		t.Fatal(err)
	}
	if err := <-res; err != nil {
		t.Errorf("in-flight request failed during drain: %v", err)
	}
}

func TestFailoverToSecondBackend(t *testing.T) {
	up := upstream(t, "flaky", failingUpstream(t), "openai")
	pool := backend.NewPool(
		backend.Member{Backend: up, Target: "reference", Breaker: backend.NewBreaker("flaky", 3, time.Minute, nil, nil)},
		backend.Member{Backend: reference.New("reference", reference.Options{}), Target: "reference"})
	e := start(t, defaultOptions(), map[string]backend.Backend{"reference": pool})
	c, err := e.client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("hi"), MaxTokens: openai.Int(5)})
	if err != nil {
		t.Fatalf("no failover: %v", err)
	}
	if c.Choices[0].Message.Content == "" {
		t.Error("empty answer from the fallback")
	}
	// Once the primary has streamed a byte there is no failover: the
	// client sees the error event.
	st := e.client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("hi")})
	for st.Next() {
	}
	if st.Err() == nil {
		t.Error("a stream that broke after its first byte reported no error")
	}
}

// lockedBuffer is a log a server writes while a test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// log.access_sample 1 logs every request: the completions, the other
// routes, and a completion refused for its key.
func TestAccessLogCoversEveryRequest(t *testing.T) {
	opts := defaultOptions()
	opts.AccessSample, opts.Keys = 1, testKeys
	var logs lockedBuffer
	rt := backend.NewRouter()
	if err := rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"}); err != nil {
		t.Fatal(err)
	}
	e := serveLogged(t, opts, rt, nil, &logs)
	for _, c := range []struct{ method, path, key, body, id string }{
		{"POST", "/v1/chat/completions", "sk-a", `{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`, "ok-chat"},
		{"POST", "/v1/chat/completions", "", `{}`, "no-key"},
		{"GET", "/v1/models", "sk-a", "", "models"},
		{"GET", "/v1/users/bob/preferences", "sk-wrong", "", "bad-key"},
	} {
		req, _ := http.NewRequest(c.method, e.url+c.path, strings.NewReader(c.body))
		req.Header.Set("X-Request-Id", c.id)
		if c.key != "" {
			req.Header.Set("Authorization", "Bearer "+c.key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	for _, id := range []string{"ok-chat", "no-key", "models", "bad-key"} {
		if !strings.Contains(logs.String(), "msg=access request_id="+id) {
			t.Errorf("no access line for %s in:\n%s", id, logs.String())
		}
	}
}
