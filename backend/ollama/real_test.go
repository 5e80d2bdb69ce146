package ollama_test

import (
	"context"
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
