package reference_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/wire"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, reference.New("reference", reference.Options{}), backendtest.Reference)
}

// The chosen token is spelled as its alternatives are, also for the first
// token of an answer (whose leading space is dropped), and an empty answer
// still has logprobs: an empty list.
func TestLogprobsSpelling(t *testing.T) {
	b := reference.New("reference", reference.Options{})
	for seed := int64(0); seed < 400; seed++ {
		s := seed
		g, err := b.Generate(context.Background(), &backend.Request{Model: "reference", Seed: &s, MaxTokens: 3, Logprobs: true, TopLogprobs: 20,
			Messages: []backend.Message{{Role: "user", Content: "Why is the sky blue?"}, {Role: "assistant", Content: "Because"}, {Role: "user", Content: "Why?"}}})
		if err != nil {
			t.Fatal(err)
		}
		c := g.Choices[0]
		if c.Logprobs == nil {
			t.Fatalf("seed %d: logprobs nil for %q", seed, c.Text)
		}
		if len(c.Logprobs) == 0 {
			continue
		}
		first := c.Logprobs[0]
		if first.Logprob <= first.Top[len(first.Top)-1].Logprob {
			continue // not surely among the top 20 (ties at the cut)
		}
		found := false
		for _, alt := range first.Top {
			found = found || alt.Token == first.Token && alt.Logprob == first.Logprob
		}
		if !found {
			t.Fatalf("seed %d: first token %q (%.4f) is not among its alternatives %+v", seed, first.Token, first.Logprob, first.Top)
		}
	}
	// Seed 3 ends this finished sentence at once: an empty continuation.
	s := int64(3)
	g, err := b.Generate(context.Background(), &backend.Request{Model: "reference", Seed: &s, Logprobs: true, Continue: true,
		Messages: []backend.Message{{Role: "user", Content: "Why is the sky blue?"}, {Role: "assistant", Content: "The sky is blue because of scattering."}}})
	if err != nil {
		t.Fatal(err)
	}
	if c := g.Choices[0]; c.Text != "" || c.Logprobs == nil || len(c.Logprobs) != 0 {
		t.Errorf("answer %q: logprobs %#v, want an empty list", c.Text, c.Logprobs)
	}
	out, _ := json.Marshal(wire.ChatLogprobs(g.Choices[0].Logprobs))
	if string(out) != `{"content":[]}` {
		t.Errorf("wire logprobs %s", out)
	}
}
