package ollama_test

import (
	"context"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/ollama"
	"github.com/steergate/steergate/backend/ollama/ollamatest"
)

// TestRealOllama runs the conformance suite against a real Ollama (built
// by make test from Ollama's Go module) serving a tiny random-weight Llama
// model: seeds, logprobs that the samples follow with Ollama's own
// sampling defaults switched off, continuation of a partial assistant
// message through raw generation on the model's template, stop sequences,
// streaming, cancellation.
func TestRealOllama(t *testing.T) {
	host := ollamatest.Start(t)
	c, err := ollama.New("ollama", host, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Probe(context.Background()); err != nil {
		t.Fatal(err)
	}
	if caps := c.Caps(); !caps.Logprobs || caps.MaxTopLogprobs != 20 || !caps.Continuation {
		t.Fatalf("caps %+v", caps)
	}
	backendtest.Run(t, c, backendtest.Spec{Model: ollamatest.Model, Samples: 100})

	// Ollama lists the model as name:latest; both spellings serve.
	models, err := c.Models(context.Background())
	if err != nil || len(models) != 1 || models[0] != ollamatest.Model+":latest" {
		t.Errorf("models %v (%v)", models, err)
	}
	for _, name := range []string{ollamatest.Model, ollamatest.Model + ":latest"} {
		g, err := c.Generate(context.Background(), &backend.Request{Model: name, MaxTokens: 2,
			Messages: []backend.Message{{Role: "user", Content: "hi"}}})
		if err != nil || len(g.Choices) != 1 {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// Tools, a tool call and its result reach a real Ollama with their
// meaning: it accepts them, and its own template renders the tool
// definition, the call's arguments and the result.
func TestRealOllamaTools(t *testing.T) {
	host := ollamatest.Start(t)
	c, err := ollama.New("ollama", host, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var r *backend.Request
	for _, f := range backendtest.Fixtures() {
		if f.Name == "tools" {
			r = f.Request.Clone()
		}
	}
	// Ollama has no tool_choice and no parallel_tool_calls: the adapter
	// refuses them, so they are left out here.
	r.Model, r.MaxTokens, r.ToolChoice, r.ParallelToolCalls = ollamatest.Model, 4, nil, nil
	g, err := c.Generate(context.Background(), r)
	if err != nil || len(g.Choices) != 1 {
		t.Fatalf("chat with tools: %v", err)
	}
	req, err := ollama.ChatRequest(r, false)
	if err != nil {
		t.Fatal(err)
	}
	req.DebugRenderOnly = true
	api, err := apiClient(host)
	if err != nil {
		t.Fatal(err)
	}
	var rendered string
	if err := api.Chat(context.Background(), req, func(resp apiChatResponse) error {
		if resp.DebugInfo != nil {
			rendered = resp.DebugInfo.RenderedTemplate
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"name":"get_weather"`, `{"name": "get_weather", "parameters": {"city":"Paris"}}`, "ipython<|end_header_id|>\n\n{\"temp\":21}"} {
		if !strings.Contains(rendered, want) {
			t.Errorf("rendered prompt lacks %q:\n%s", want, rendered)
		}
	}
}
