package ollama_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/ollama"
)

// TestRealOllama runs against the Ollama at OLLAMA_HOST, when set.
func TestRealOllama(t *testing.T) {
	host := os.Getenv("OLLAMA_HOST")
	if host == "" {
		t.Skip("OLLAMA_HOST not set: no real Ollama to test against")
	}
	c, err := ollama.New("ollama", host, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	models, err := c.Models(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(models) == 0 {
		t.Skip("the Ollama at OLLAMA_HOST has no models")
	}
	seed := int64(42)
	r := &backend.Request{Model: models[0], Messages: []backend.Message{{Role: "user", Content: "Why is the sky blue?"}},
		Seed: &seed, MaxTokens: 8, Logprobs: true, TopLogprobs: 3}
	a, err := c.Generate(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Generate(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	if a.Choices[0].Text != b.Choices[0].Text {
		t.Errorf("same seed: %q vs %q", a.Choices[0].Text, b.Choices[0].Text)
	}
	if len(a.Choices[0].Logprobs) == 0 || len(a.Choices[0].Logprobs[0].Top) != 3 {
		t.Errorf("logprobs %+v", a.Choices[0].Logprobs)
	}
	var streamed string
	s, err := c.Stream(ctx, r, func(d backend.Delta) error { streamed += d.Text; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if streamed != a.Choices[0].Text || s.Choices[0].Text != a.Choices[0].Text {
		t.Errorf("stream %q, generate %q", streamed, a.Choices[0].Text)
	}
}
