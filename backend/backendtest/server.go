package backendtest

import (
	"context"
	"net"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
)

// StartReference serves the reference model on a loopback port for the
// test's lifetime and returns its base URL (http://127.0.0.1:PORT).
func StartReference(t testing.TB, opts reference.Options) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- reference.NewServer(reference.New("reference", opts)).Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done })
	return "http://" + ln.Addr().String()
}

// SameAsReference checks that b generates exactly what the in-process
// reference model does for the same seeded request with OpenAI's default
// sampling: an adapter that let its server's own defaults leak in (top_k,
// temperature, penalties) fails it.
func SameAsReference(t *testing.T, b backend.Backend) {
	t.Helper()
	ref := reference.New("reference", reference.Options{})
	for _, r := range []*backend.Request{
		{Model: Model, Messages: []backend.Message{{Role: "user", Content: "Why is the sky blue?"}}, Seed: seed(42), MaxTokens: 20},
		{Model: Model, Prompt: "A good presentation", Seed: seed(0), MaxTokens: 12, Logprobs: b.Caps().Logprobs, TopLogprobs: 2},
	} {
		want, err := ref.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		got, err := b.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if got.Choices[0].Text != want.Choices[0].Text {
			t.Errorf("%s: %q, in-process reference %q", b.Name(), got.Choices[0].Text, want.Choices[0].Text)
		}
		if r.Logprobs {
			w, g := want.Choices[0].Logprobs, got.Choices[0].Logprobs
			if len(w) != len(g) {
				t.Fatalf("%d logprobs, want %d", len(g), len(w))
			}
			for i := range w {
				if w[i].Token != g[i].Token || w[i].Logprob != g[i].Logprob || len(w[i].Top) != len(g[i].Top) {
					t.Errorf("logprob %d: %+v, want %+v", i, g[i], w[i])
				}
			}
		}
	}
}
