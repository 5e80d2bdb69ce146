package reference_test

import (
	"encoding/json"
	"io"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
)

// The wire faces refuse what the model cannot serve, as the in-process
// model does: a request with tools, an image, a JSON mode or thinking is a
// 400 naming it, never an answer in prose.
func TestServerRefusesWhatItCannotServe(t *testing.T) {
	url := backendtest.StartReference(t, reference.Options{})
	post := func(path, body string) (int, string) {
		t.Helper()
		resp, err := http.Post(url+path, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct{ path, body, names string }{
		{"/v1/chat/completions", `{"model":"reference",` + msgs + `,"response_format":{"type":"json_object"}}`, `"param":"response_format"`},
		{"/v1/chat/completions", `{"model":"reference",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}]}`, `"param":"tools"`},
		{"/v1/chat/completions", `{"model":"reference",` + msgs + `,"tool_choice":"none"}`, `"param":"tool_choice"`},
		{"/v1/chat/completions", `{"model":"reference",` + msgs + `,"reasoning_effort":"low"}`, `"param":"reasoning_effort"`},
		{"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]}]}`, `messages[0]`},
		{"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"ok","reasoning_content":"think"},{"role":"user","content":"and?"}]}`, `messages[1].reasoning_content`},
		{"/api/chat", `{"model":"reference",` + msgs + `,"format":"json"}`, "format"},
		{"/api/chat", `{"model":"reference",` + msgs + `,"tools":[{"type":"function","function":{"name":"f"}}]}`, "tools"},
		{"/api/chat", `{"model":"reference",` + msgs + `,"think":true}`, "think"},
		{"/api/chat", `{"model":"reference","messages":[{"role":"user","content":"hi","images":["AA=="]}]}`, "messages[0].images"},
		{"/api/generate", `{"model":"reference","prompt":"hi","format":{"type":"object"}}`, "format"},
		{"/api/generate", `{"model":"reference","prompt":"hi","suffix":"end"}`, "suffix"},
		{"/api/generate", `{"model":"reference","prompt":"hi","images":["AA=="]}`, "images"},
	} {
		status, got := post(c.path, c.body)
		if status != 400 || !strings.Contains(got, c.names) {
			t.Errorf("%s %s: %d %s, want a 400 naming %s", c.path, c.body, status, got, c.names)
		}
	}
	// What it serves still works: think false, no format, a system prompt.
	for _, c := range []struct{ path, body string }{
		{"/api/chat", `{"model":"reference",` + msgs + `,"think":false,"format":"","stream":false}`},
		{"/api/generate", `{"model":"reference","prompt":"hi","system":"Be brief.","stream":false,"options":{"num_predict":4}}`},
		{"/v1/chat/completions", `{"model":"reference",` + msgs + `,"response_format":{"type":"text"},"max_tokens":4}`},
	} {
		if status, got := post(c.path, c.body); status != 200 {
			t.Errorf("%s %s: %d %s", c.path, c.body, status, got)
		}
	}
}

// Echo scoring reads each token as a completion of the text before it:
// the first token of an answer scores what the answer reported for it.
func TestEchoScoresAsACompletion(t *testing.T) {
	url := backendtest.StartReference(t, reference.Options{})
	post := func(body string, v any) {
		t.Helper()
		resp, err := http.Post(url+"/v1/completions", "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if err := json.NewDecoder(resp.Body).Decode(v); err != nil || resp.StatusCode != 200 {
			t.Fatalf("%d %v", resp.StatusCode, err)
		}
	}
	var gen struct {
		Choices []struct {
			Text     string `json:"text"`
			Logprobs struct {
				TokenLogprobs []float64 `json:"token_logprobs"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	post(`{"model":"reference","prompt":"Why is the sky blue?","seed":3,"max_tokens":4,"logprobs":0}`, &gen)
	answer := gen.Choices[0]
	var echo struct {
		Choices []struct {
			Logprobs struct {
				TokenLogprobs []*float64 `json:"token_logprobs"`
				TextOffset    []int      `json:"text_offset"`
			} `json:"logprobs"`
		} `json:"choices"`
	}
	body, _ := json.Marshal(map[string]any{"model": "reference", "prompt": "Why is the sky blue?" + answer.Text, "echo": true, "max_tokens": 0, "logprobs": 0})
	post(string(body), &echo)
	lps := echo.Choices[0].Logprobs
	for i, off := range lps.TextOffset {
		if off == len("Why is the sky blue?") {
			if lps.TokenLogprobs[i] == nil || math.Abs(*lps.TokenLogprobs[i]-answer.Logprobs.TokenLogprobs[0]) > 1e-9 {
				t.Errorf("the answer's first token: echo %v, generation %v", lps.TokenLogprobs[i], answer.Logprobs.TokenLogprobs[0])
			}
			return
		}
	}
	t.Fatalf("no token at the answer's start in %v", lps.TextOffset)
}
