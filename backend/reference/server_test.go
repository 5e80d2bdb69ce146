package reference_test

import (
	"io"
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
