package gateway_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/openai"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/metrics"
)

func TestMetricsEndpoint(t *testing.T) {
	opts := defaultOptions()
	opts.Metrics = metrics.NewProcess()
	e := start(t, opts, ref(reference.Options{}))
	post(t, e.url+"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`)
	post(t, e.url+"/v1/chat/completions", `{"model":"nope","messages":[{"role":"user","content":"hi"}]}`)
	body, header := scrape(t, e.url)
	for _, want := range []string{
		`steergate_requests_total{arm="",route="reference",status="200",strategy="none"}`,
		`steergate_requests_total{arm="",route="-",status="404",strategy="-"}`,
		`steergate_request_duration_seconds_bucket{route="reference",strategy="none",stream="false"`,
		`steergate_inflight_requests 0`,
		`go_goroutines`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if ct := header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("content type %q", ct)
	}
}

// A relayed stream (passthrough to an OpenAI-compatible backend) counts as
// a stream: its time to first byte when the handler returns, its whole
// duration when it ends, as an engine's stream does.
func TestRelayedStreamMetrics(t *testing.T) {
	opts := defaultOptions()
	opts.Metrics = metrics.NewProcess()
	up := backendtest.StartReference(t, reference.Options{})
	e := start(t, opts, map[string]backend.Backend{"reference": upstream(t, "upstream", up+"/v1", openai.FlavourVLLM)})
	status, _, body := post(t, e.url+"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}`)
	if status != 200 || !strings.Contains(body, "data: [DONE]") {
		t.Fatalf("%d %s", status, body)
	}
	got, _ := scrape(t, e.url)
	for _, want := range []string{
		`steergate_time_to_first_token_seconds_count{route="reference",strategy="none"} 1`,
		`steergate_request_duration_seconds_count{route="reference",strategy="none",stream="true"} 1`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(got, `stream="false"`) {
		t.Error("the stream was counted as a request that did not stream")
	}
}

// scrape reads the gateway's /metrics.
func scrape(t *testing.T, url string) (string, http.Header) {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), resp.Header
}

// A relayed stream that breaks off, or carries the backend's own error
// event, counts as a backend error; a whole one as ok.
func TestRelayedStreamBackendOutcome(t *testing.T) {
	opts := defaultOptions()
	opts.Metrics = metrics.NewProcess()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		io.WriteString(w, "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"up\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"},\"finish_reason\":null}]}\n\n")
		switch {
		case strings.Contains(string(body), "whole"):
			io.WriteString(w, "data: [DONE]\n\n")
		case strings.Contains(string(body), "error event"):
			io.WriteString(w, "data: {\"error\":{\"message\":\"overloaded\"}}\n\ndata: [DONE]\n\n")
		} // else: cut off
	}))
	t.Cleanup(up.Close)
	b := backend.Limit(upstream(t, "upstream", up.URL+"/v1", openai.FlavourVLLM), backend.LimitOptions{MaxConcurrency: 4, MaxQueue: 4, Metrics: opts.Metrics})
	e := start(t, opts, map[string]backend.Backend{"reference": b})
	for _, say := range []string{"whole", "cut off", "error event"} {
		status, _, body := post(t, e.url+"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"`+say+`"}],"stream":true}`)
		if status != 200 || !strings.HasSuffix(body, "data: [DONE]\n\n") || strings.Count(body, `"error"`) != map[string]int{"whole": 0, "cut off": 1, "error event": 1}[say] {
			t.Errorf("%s: %d %q", say, status, body)
		}
	}
	got, _ := scrape(t, e.url)
	for _, want := range []string{
		`steergate_backend_duration_seconds_count{backend="upstream",outcome="ok"} 1`,
		`steergate_backend_duration_seconds_count{backend="upstream",outcome="error"} 2`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}
