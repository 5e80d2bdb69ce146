package backendtest

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
)

// Model is the model name the suite asks for.
const Model = "reference"

func f(x float64) *float64 { return &x }
func seed(s int64) *int64  { return &s }

func chat(q string) *backend.Request {
	return &backend.Request{Model: Model, Messages: []backend.Message{{Role: "user", Content: q}}, MaxTokens: 24}
}

// Run runs the suite against the backend that newBackend returns.
func Run(t *testing.T, b backend.Backend) {
	t.Helper()
	ctx := context.Background()
	caps := b.Caps()

	t.Run("Generate", func(t *testing.T) {
		g, err := b.Generate(ctx, chat("Why is the sky blue?"))
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Choices) != 1 || g.Choices[0].Text == "" {
			t.Fatalf("want one non-empty choice, got %+v", g.Choices)
		}
		if fr := g.Choices[0].FinishReason; fr != backend.FinishStop && fr != backend.FinishLength {
			t.Errorf("finish_reason %q", fr)
		}
		if g.Usage.PromptTokens <= 0 || g.Usage.CompletionTokens <= 0 {
			t.Errorf("usage not reported: %+v", g.Usage)
		}
	})

	t.Run("SeedReproducible", func(t *testing.T) {
		texts := map[string]bool{}
		for s := range int64(6) {
			r := chat("Tell me about bread and tea.")
			r.Seed = seed(s)
			a, err := b.Generate(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			again, err := b.Generate(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			if a.Choices[0].Text != again.Choices[0].Text {
				t.Fatalf("seed %d: %q then %q", s, a.Choices[0].Text, again.Choices[0].Text)
			}
			texts[a.Choices[0].Text] = true
		}
		if len(texts) < 2 {
			t.Errorf("six seeds gave one text: %v", texts)
		}
	})

	t.Run("GreedyDeterministic", func(t *testing.T) {
		r := chat("How do plants make food?")
		r.Temperature = f(0)
		r.Seed = seed(1)
		a, err := b.Generate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		r.Seed = seed(2)
		c, err := b.Generate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if a.Choices[0].Text != c.Choices[0].Text {
			t.Errorf("temperature 0 depends on seed: %q vs %q", a.Choices[0].Text, c.Choices[0].Text)
		}
	})

	t.Run("StreamEqualsGenerate", func(t *testing.T) {
		r := chat("What is a cache?")
		r.Seed = seed(7)
		want, err := b.Generate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		var text strings.Builder
		var finish string
		deltas := 0
		got, err := b.Stream(ctx, r, func(d backend.Delta) error {
			if finish != "" {
				t.Errorf("delta after the finishing one: %+v", d)
			}
			text.WriteString(d.Text)
			finish = d.FinishReason
			deltas++
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if text.String() != want.Choices[0].Text || got.Choices[0].Text != want.Choices[0].Text {
			t.Errorf("stream %q / %q, generate %q", text.String(), got.Choices[0].Text, want.Choices[0].Text)
		}
		if finish != want.Choices[0].FinishReason {
			t.Errorf("last delta finish %q, want %q", finish, want.Choices[0].FinishReason)
		}
		if deltas < 2 {
			t.Errorf("%d deltas: not streamed token by token", deltas)
		}
		if got.Usage != want.Usage {
			t.Errorf("stream usage %+v, generate %+v", got.Usage, want.Usage)
		}
	})

	t.Run("MaxTokens", func(t *testing.T) {
		r := chat("Explain gravity.")
		r.MaxTokens, r.Seed, r.Logprobs = 3, seed(3), caps.Logprobs
		g, err := b.Generate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if g.Usage.CompletionTokens > 3 {
			t.Errorf("%d completion tokens for max_tokens 3", g.Usage.CompletionTokens)
		}
		if g.Usage.CompletionTokens == 3 && g.Choices[0].FinishReason != backend.FinishLength {
			t.Errorf("finish_reason %q at the limit", g.Choices[0].FinishReason)
		}
	})

	t.Run("Stop", func(t *testing.T) {
		r := chat("Why is the sky blue?")
		r.Temperature, r.MaxTokens = f(0), 30
		full, err := b.Generate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		text := full.Choices[0].Text
		words := strings.Fields(text)
		if len(words) < 4 {
			t.Fatalf("greedy text too short to test stop: %q", text)
		}
		stop := " " + words[2]
		cut := strings.Index(text, stop)
		r.Stop = []string{stop}
		for _, streaming := range []bool{false, true} {
			var g *backend.Generation
			var streamed strings.Builder
			if streaming {
				g, err = b.Stream(ctx, r, func(d backend.Delta) error { streamed.WriteString(d.Text); return nil })
			} else {
				g, err = b.Generate(ctx, r)
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Choices[0].Text; got != text[:cut] || g.Choices[0].FinishReason != backend.FinishStop {
				t.Errorf("stream=%v: stop %q: got %q (%s), want %q", streaming, stop, got, g.Choices[0].FinishReason, text[:cut])
			}
			if streaming && streamed.String() != text[:cut] {
				t.Errorf("streamed %q, want %q", streamed.String(), text[:cut])
			}
		}
	})

	t.Run("Logprobs", func(t *testing.T) {
		if !caps.Logprobs {
			t.Skip("backend declares no logprobs")
		}
		r := chat("How do I save money?")
		r.Seed, r.Logprobs, r.TopLogprobs = seed(5), true, 3
		g, err := b.Generate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		c := g.Choices[0]
		if len(c.Logprobs) == 0 {
			t.Fatal("no logprobs")
		}
		var joined strings.Builder
		for i, lp := range c.Logprobs {
			joined.WriteString(lp.Token)
			if lp.Logprob > 0 || math.IsNaN(lp.Logprob) {
				t.Errorf("token %d logprob %v", i, lp.Logprob)
			}
			if len(lp.Top) != 3 {
				t.Errorf("token %d: %d top logprobs, want 3", i, len(lp.Top))
			}
			for j := 1; j < len(lp.Top); j++ {
				if lp.Top[j].Logprob > lp.Top[j-1].Logprob {
					t.Errorf("token %d: top logprobs not sorted", i)
				}
			}
			if len(lp.Top) > 0 && lp.Logprob > lp.Top[0].Logprob+1e-9 {
				t.Errorf("token %d: chosen %v above the best alternative %v", i, lp.Logprob, lp.Top[0].Logprob)
			}
		}
		if joined.String() != c.Text {
			t.Errorf("logprob tokens join to %q, text is %q", joined.String(), c.Text)
		}
	})

	t.Run("Continuation", func(t *testing.T) {
		if !caps.Continuation {
			t.Skip("backend declares no continuation")
		}
		r := &backend.Request{Model: Model, MaxTokens: 12, Temperature: f(0), Continue: true, Messages: []backend.Message{
			{Role: "user", Content: "Why is the sky blue?"},
			{Role: "assistant", Content: "The sky looks blue because air"},
		}}
		g, err := b.Generate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		text := g.Choices[0].Text
		if text == "" || strings.HasPrefix(text, "The sky") {
			t.Fatalf("continuation %q: empty or echoes the partial message", text)
		}
		// The corpus continues this sentence one way.
		if !strings.HasPrefix(text, " scatters") {
			t.Errorf("continuation %q does not continue the partial message", text)
		}
	})

	t.Run("N", func(t *testing.T) {
		r := chat("Give me a tip for sleep.")
		r.N, r.Seed = 3, seed(11)
		g, err := backend.GenerateN(ctx, b, r)
		if err != nil {
			t.Fatal(err)
		}
		if len(g.Choices) != 3 {
			t.Fatalf("%d choices", len(g.Choices))
		}
		texts := map[string]bool{}
		for i, c := range g.Choices {
			if c.Index != i {
				t.Errorf("choice %d has index %d", i, c.Index)
			}
			texts[c.Text] = true
		}
		if len(texts) < 2 {
			t.Errorf("three seeded samples are identical: %v", texts)
		}
		again, err := backend.GenerateN(ctx, b, r)
		if err != nil {
			t.Fatal(err)
		}
		for i := range g.Choices {
			if g.Choices[i].Text != again.Choices[i].Text {
				t.Errorf("choice %d not reproducible", i)
			}
		}
	})

	t.Run("Completion", func(t *testing.T) {
		r := &backend.Request{Model: Model, Prompt: "Light travels at", MaxTokens: 6, Temperature: f(0)}
		g, err := b.Generate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(g.Choices[0].Text, " about three") {
			t.Errorf("raw completion %q", g.Choices[0].Text)
		}
	})

	t.Run("UnknownModel", func(t *testing.T) {
		r := chat("hi")
		r.Model = "no-such-model"
		_, err := b.Generate(ctx, r)
		if !errors.Is(err, fault.ErrNotFound) {
			t.Errorf("err = %v, want ErrNotFound", err)
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		defer cancel()
		r := chat("Tell me about the ocean.")
		r.MaxTokens, r.Seed = 200, seed(1)
		seen, finishedAtCancel := 0, false
		start := time.Now()
		_, err := b.Stream(cctx, r, func(d backend.Delta) error {
			seen++
			if seen == 1 {
				finishedAtCancel = d.FinishReason != ""
				cancel()
			}
			return nil
		})
		if finishedAtCancel {
			t.Skip("the answer finished in its first delta")
		}
		if err == nil {
			t.Errorf("stream went on to the end after cancel (%d deltas)", seen)
		}
		if seen > 1 {
			t.Errorf("%d deltas emitted after cancel", seen-1)
		}
		if time.Since(start) > 5*time.Second {
			t.Errorf("cancel took %v", time.Since(start))
		}
	})
}
