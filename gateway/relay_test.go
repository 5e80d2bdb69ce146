package gateway_test

import (
	"bufio"
	"encoding/json"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/wire"
)

// An unsteered request to an OpenAI-compatible backend crosses as the
// client's bytes: the backend gets its own model name and no steering
// object, every other member as written; the answer comes back with the
// client's model name, streamed or not, every field the backend sent
// included.
func TestRelayKeepsBytes(t *testing.T) {
	ts := backendtest.StartToolServer(t)
	rt := backend.NewRouter()
	if err := rt.Add(backend.Route{Name: "front", Backend: upstream(t, "up", ts.URL, "vllm"), Target: "back"}); err != nil {
		t.Fatal(err)
	}
	e := serveWith(t, defaultOptions(), rt, nil)
	body := `{"model":"front","messages":[{"role":"user","content":"hi \"there\""}],"odd_field":{"b":[1,2],"a":"x"},` +
		`"steering":{"strategy":"none"},"max_tokens":8}`
	status, h, got := post(t, e.url+"/v1/chat/completions", body)
	if status != 200 || h.Get("X-Steering-Strategy") != "none" {
		t.Fatalf("%d %v %s", status, h, got)
	}
	up := ts.Last()
	if string(wire.Value(up, "model")) != `"back"` || wire.Value(up, "steering") != nil ||
		string(wire.Value(up, "odd_field")) != `{"b":[1,2],"a":"x"}` || string(wire.Value(up, "messages")) != `[{"role":"user","content":"hi \"there\""}]` {
		t.Errorf("the backend got %s", up)
	}
	var v struct {
		Model             string `json:"model"`
		SystemFingerprint string `json:"system_fingerprint"`
	}
	if err := json.Unmarshal([]byte(got), &v); err != nil || v.Model != "front" || v.SystemFingerprint == "" {
		t.Errorf("answer %s", got)
	}
	status, _, stream := post(t, e.url+"/v1/chat/completions", strings.Replace(body, `"max_tokens":8`, `"max_tokens":8,"stream":true`, 1))
	if status != 200 {
		t.Fatalf("%d %s", status, stream)
	}
	events, done := 0, false
	sc := bufio.NewScanner(strings.NewReader(stream))
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if data == "[DONE]" {
			done = true
			continue
		}
		events++
		if m := wire.Value([]byte(data), "model"); string(m) != `"front"` {
			t.Errorf("chunk with model %s: %s", m, data)
		}
	}
	if events == 0 || !done || !strings.HasSuffix(stream, "data: [DONE]\n\n") {
		t.Errorf("stream of %d events, done %v:\n%s", events, done, stream)
	}
}
