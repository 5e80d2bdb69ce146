package backendtest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// ToolServer is an OpenAI-compatible chat server that calls tools, for
// testing what crosses the gateway: it records every request body it gets
// and answers the OpenAI wire format, streamed or not, with fields beyond
// the ones Steergate interprets (system_fingerprint, service_tier, usage
// details, message annotations) so that tests can check they come back.
//
// It answers a conversation whose last message is the user's, when tools
// are given, with a call of the first tool: for seed s the arguments are
// valid for s%3 == 0, of the wrong type for s%3 == 1 and not JSON for
// s%3 == 2, so that steering has calls of different quality to choose
// from. A conversation ending in a tool result gets a text answer quoting
// it; with reasoning_effort the answer carries reasoning_content; "please
// refuse" gets a refusal; otherwise it answers "ok: " and the question.
type ToolServer struct {
	URL string // the /v1 base URL
	mu  sync.Mutex
	got [][]byte
}

// StartToolServer serves a ToolServer on a loopback port until the test
// ends.
func StartToolServer(t testing.TB) *ToolServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &ToolServer{URL: "http://" + ln.Addr().String() + "/v1"}
	srv := &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	})
	return s
}

// Requests returns the request bodies received so far.
func (s *ToolServer) Requests() [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]byte(nil), s.got...)
}

// Last returns the last request body received.
func (s *ToolServer) Last() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.got) == 0 {
		return nil
	}
	return s.got[len(s.got)-1]
}

type toolReq struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Seed     *int64 `json:"seed"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
	Tools []struct {
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	} `json:"tools"`
	ReasoningEffort string `json:"reasoning_effort"`
	N               int    `json:"n"`
}

// answer is what the server says: text, or one tool call, and the rest.
type answer struct {
	text, reasoning, refusal string
	call, args               string
}

func (s *ToolServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/v1/models" {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"list","data":[{"id":"tool-model","object":"model","created":0,"owned_by":"test"}]}`)
		return
	}
	if r.URL.Path != "/v1/chat/completions" {
		http.NotFound(w, r)
		return
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.got = append(s.got, b)
	s.mu.Unlock()
	var req toolReq
	if err := json.Unmarshal(b, &req); err != nil || len(req.Messages) == 0 {
		w.WriteHeader(400)
		fmt.Fprintf(w, `{"error":{"message":"bad request: %v","type":"invalid_request_error","param":null,"code":null}}`, err)
		return
	}
	seed := int64(0)
	if req.Seed != nil {
		seed = *req.Seed
	}
	n := max(req.N, 1)
	answers := make([]answer, n)
	for i := range answers {
		answers[i] = s.answer(req, seed+int64(i))
	}
	if req.Stream {
		s.stream(w, req, answers)
		return
	}
	var choices []map[string]any
	for i, a := range answers {
		msg := map[string]any{"role": "assistant", "content": nil, "refusal": nil, "annotations": []any{}}
		finish := "stop"
		switch {
		case a.call != "":
			msg["tool_calls"] = []map[string]any{{"id": fmt.Sprintf("call_%d_%d", seed, i), "type": "function",
				"function": map[string]string{"name": a.call, "arguments": a.args}}}
			finish = "tool_calls"
		case a.refusal != "":
			msg["refusal"] = a.refusal
		default:
			msg["content"] = a.text
		}
		if a.reasoning != "" {
			msg["reasoning_content"] = a.reasoning
		}
		choices = append(choices, map[string]any{"index": i, "message": msg, "logprobs": nil, "finish_reason": finish})
	}
	out := map[string]any{"id": "chatcmpl-tool", "object": "chat.completion", "created": 1700000000, "model": req.Model,
		"system_fingerprint": "fp_tool", "service_tier": "default", "choices": choices, "usage": usage(n)}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func usage(n int) map[string]any {
	return map[string]any{"prompt_tokens": 11, "completion_tokens": 7 * n, "total_tokens": 11 + 7*n,
		"prompt_tokens_details": map[string]int{"cached_tokens": 0}, "completion_tokens_details": map[string]int{"reasoning_tokens": 0}}
}

func (s *ToolServer) answer(req toolReq, seed int64) answer {
	last := req.Messages[len(req.Messages)-1]
	var text string
	if json.Unmarshal(last.Content, &text) != nil {
		var parts []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		}
		_ = json.Unmarshal(last.Content, &parts)
		for _, p := range parts {
			text += p.Text
			if p.Type == "image_url" {
				text += "[image]"
			}
		}
	}
	var a answer
	if req.ReasoningEffort != "" {
		a.reasoning = "thinking (" + req.ReasoningEffort + ") about it"
	}
	switch {
	case last.Role == "tool":
		a.text = "The tool says: " + text
	case strings.Contains(text, "please refuse"):
		a.refusal = "I can't help with that."
	case last.Role == "user" && len(req.Tools) > 0:
		a.call = req.Tools[0].Function.Name
		switch ((seed % 3) + 3) % 3 {
		case 0:
			a.args = `{"city":"Paris","unit":"celsius"}`
		case 1:
			a.args = `{"city":42}`
		default:
			a.args = `{"city": "Par`
		}
	default:
		a.text = "ok: " + text
	}
	return a
}

// stream answers in OpenAI's chunks: the role, reasoning, then content in
// two pieces or a tool call whose id and name come first and whose
// arguments follow in pieces, the finish, and a usage chunk.
func (s *ToolServer) stream(w http.ResponseWriter, req toolReq, answers []answer) {
	w.Header().Set("Content-Type", "text/event-stream")
	fl, _ := w.(http.Flusher)
	send := func(choices []map[string]any, extra map[string]any) {
		c := map[string]any{"id": "chatcmpl-tool", "object": "chat.completion.chunk", "created": 1700000000, "model": req.Model,
			"system_fingerprint": "fp_tool", "service_tier": "default", "choices": choices}
		for k, v := range extra {
			c[k] = v
		}
		b, _ := json.Marshal(c)
		fmt.Fprintf(w, "data: %s\n\n", b)
		if fl != nil {
			fl.Flush()
		}
	}
	delta := func(i int, d map[string]any, finish any) []map[string]any {
		return []map[string]any{{"index": i, "delta": d, "logprobs": nil, "finish_reason": finish}}
	}
	for i, a := range answers {
		send(delta(i, map[string]any{"role": "assistant", "content": ""}, nil), nil)
		if a.reasoning != "" {
			send(delta(i, map[string]any{"reasoning_content": a.reasoning}, nil), nil)
		}
		switch {
		case a.call != "":
			send(delta(i, map[string]any{"tool_calls": []map[string]any{{"index": 0, "id": fmt.Sprintf("call_s_%d", i), "type": "function",
				"function": map[string]string{"name": a.call, "arguments": ""}}}}, nil), nil)
			for k := 0; k < len(a.args); k += 7 {
				piece := a.args[k:min(k+7, len(a.args))]
				send(delta(i, map[string]any{"tool_calls": []map[string]any{{"index": 0, "function": map[string]string{"arguments": piece}}}}, nil), nil)
			}
			send(delta(i, map[string]any{}, "tool_calls"), nil)
		case a.refusal != "":
			send(delta(i, map[string]any{"refusal": a.refusal}, nil), nil)
			send(delta(i, map[string]any{}, "stop"), nil)
		default:
			half := len(a.text) / 2
			send(delta(i, map[string]any{"content": a.text[:half]}, nil), nil)
			send(delta(i, map[string]any{"content": a.text[half:]}, nil), nil)
			send(delta(i, map[string]any{}, "stop"), nil)
		}
	}
	send([]map[string]any{}, map[string]any{"usage": usage(len(answers))})
	fmt.Fprint(w, "data: [DONE]\n\n")
}
