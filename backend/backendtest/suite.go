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

// Model is the model name the suite asks for by default: the reference
// model's.
const Model = "reference"

// Spec says what the suite may expect of a backend beyond the capabilities
// it declares.
type Spec struct {
	Model string // the model to ask for
	// Reference: the backend serves the embedded reference model, whose
	// answers to some prompts the suite knows.
	Reference bool
	// Samples is how many one-token samples check that sampling follows the
	// reported logprobs (0: 200).
	Samples int
}

// Reference is the spec of a backend serving the reference model.
var Reference = Spec{Model: Model, Reference: true}

func f(x float64) *float64 { return &x }
func seed(s int64) *int64  { return &s }

// Run runs the suite against b.
func Run(t *testing.T, b backend.Backend, spec Spec) {
	t.Helper()
	ctx := context.Background()
	caps := b.Caps()
	chat := func(q string) *backend.Request {
		return &backend.Request{Model: spec.Model, Messages: []backend.Message{{Role: "user", Content: q}}, MaxTokens: 24}
	}

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
		// Streamed, the pieces carry each token's entry once: together
		// they are the answer's.
		var streamed []backend.TokenLogprob
		sg, err := b.Stream(ctx, r, func(d backend.Delta) error { streamed = append(streamed, d.Logprobs...); return nil })
		if err != nil {
			t.Fatal(err)
		}
		if len(streamed) != len(sg.Choices[0].Logprobs) || len(streamed) != len(c.Logprobs) {
			t.Errorf("streamed %d logprobs; the streamed answer has %d, the answer %d", len(streamed), len(sg.Choices[0].Logprobs), len(c.Logprobs))
		}
	})

	t.Run("Continuation", func(t *testing.T) {
		if !caps.Continuation {
			t.Skip("backend declares no continuation")
		}
		partial := "The sky looks blue because air"
		cont := func(p string, max int) *backend.Generation {
			t.Helper()
			r := &backend.Request{Model: spec.Model, MaxTokens: max, Temperature: f(0), Continue: true, Logprobs: caps.Logprobs,
				Messages: []backend.Message{{Role: "user", Content: "Why is the sky blue?"}, {Role: "assistant", Content: p}}}
			g, err := b.Generate(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			return g
		}
		g := cont(partial, 12)
		text := g.Choices[0].Text
		if text == "" || strings.HasPrefix(text, partial) {
			t.Fatalf("continuation %q: empty or echoes the partial message", text)
		}
		if spec.Reference && !strings.HasPrefix(text, " scatters") {
			t.Errorf("continuation %q does not continue the partial message", text) // the corpus continues it one way
		}
		// The model reads the partial answer as its own: greedily
		// continuing it plus the first token it added gives the rest.
		if lps := g.Choices[0].Logprobs; len(lps) > 2 && g.Choices[0].FinishReason == backend.FinishLength {
			first := lps[0].Token
			rest := cont(partial+first, 11).Choices[0].Text
			if want := strings.TrimPrefix(text, first); !strings.HasPrefix(want, rest) && !strings.HasPrefix(rest, want) {
				t.Errorf("continuing %q gave %q, but %q then %q before", partial+first, rest, first, want)
			}
		}
	})

	// A stop sequence ends a continuation before it, says so, and the
	// answer goes on from there as it would have without the stop: what
	// step-wise strategies (particles) build on.
	t.Run("ContinuationStops", func(t *testing.T) {
		if !caps.Continuation {
			t.Skip("backend declares no continuation")
		}
		msgs := func(p string) []backend.Message {
			return []backend.Message{{Role: "user", Content: "Why is the sky blue?"}, {Role: "assistant", Content: p}}
		}
		partial := "The sky looks blue because"
		free, err := b.Generate(ctx, &backend.Request{Model: spec.Model, MaxTokens: 16, Temperature: f(0), Continue: true, Messages: msgs(partial)})
		if err != nil {
			t.Fatal(err)
		}
		text := free.Choices[0].Text
		// A stop in the middle of what the model writes anyway.
		words := strings.Fields(text)
		if len(words) < 4 {
			t.Skipf("the model wrote too little to stop in: %q", text)
		}
		stop := " " + words[2]
		at := strings.Index(text, stop)
		if at < 0 {
			t.Skipf("no %q in %q", stop, text)
		}
		g, err := b.Generate(ctx, &backend.Request{Model: spec.Model, MaxTokens: 16, Temperature: f(0), Continue: true, Messages: msgs(partial), Stop: []string{"\n\n\n", stop}})
		if err != nil {
			t.Fatal(err)
		}
		c := g.Choices[0]
		if c.Text != text[:at] || c.FinishReason != backend.FinishStop {
			t.Fatalf("with stop %q: %q (%s), want %q (stop)", stop, c.Text, c.FinishReason, text[:at])
		}
		if caps.StopSequence && (c.StopSequence == nil || *c.StopSequence != stop) {
			t.Errorf("stop sequence reported as %v, want %q", c.StopSequence, stop)
		}
		rest, err := b.Generate(ctx, &backend.Request{Model: spec.Model, MaxTokens: 8, Temperature: f(0), Continue: true, Messages: msgs(partial + c.Text + stop)})
		if err != nil {
			t.Fatal(err)
		}
		after := text[at+len(stop):]
		if r := rest.Choices[0].Text; r == "" || !strings.HasPrefix(after, r) && !strings.HasPrefix(r, after) {
			t.Errorf("after the stop the answer went on %q; without it, %q", r, after)
		}
		if caps.StopSequence && rest.Choices[0].FinishReason == backend.FinishLength && rest.Choices[0].StopSequence != nil {
			t.Errorf("a choice cut by max_tokens reports stop sequence %q", *rest.Choices[0].StopSequence)
		}
	})

	t.Run("SamplesFollowLogprobs", func(t *testing.T) {
		if !caps.Logprobs {
			t.Skip("backend declares no logprobs")
		}
		samplesFollowLogprobs(t, b, spec, chat("Tell me something."))
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
		r := &backend.Request{Model: spec.Model, Prompt: "Light travels at", MaxTokens: 6, Temperature: f(0)}
		g, err := b.Generate(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		if g.Choices[0].Text == "" || g.Choices[0].FinishReason == "" {
			t.Errorf("raw completion %+v", g.Choices[0])
		}
		if spec.Reference && !strings.HasPrefix(g.Choices[0].Text, " about three") {
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

// samplesFollowLogprobs draws many one-token samples at temperature 1
// with distinct seeds and checks, by a chi-square test, that the first
// token follows the distribution the backend reports in its logprobs. A
// backend whose own sampling defaults leak in (Ollama's top_k 40 and
// repeat penalty, a default temperature below 1) concentrates the samples
// on the top tokens and fails.
func samplesFollowLogprobs(t *testing.T, b backend.Backend, spec Spec, r *backend.Request) {
	t.Helper()
	n := spec.Samples
	if n == 0 {
		n = 200
	}
	r.MaxTokens, r.Logprobs, r.TopLogprobs = 1, true, 5
	var top []backend.TopLogprob
	counts := map[string]int{}
	for s := range int64(n) {
		r.Seed = seed(1000 + s)
		g, err := b.Generate(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		c := g.Choices[0]
		if len(c.Logprobs) == 0 {
			counts["<end>"]++
			continue
		}
		if top == nil {
			top = c.Logprobs[0].Top
		}
		counts[c.Logprobs[0].Token]++
	}
	if len(top) == 0 {
		t.Fatal("no top logprobs reported")
	}
	// Bins: each of the top tokens, and everything else.
	var chi2, rest float64 = 0, 1
	observedRest := n
	for _, alt := range top {
		p := math.Exp(alt.Logprob)
		rest -= p
		exp := p * float64(n)
		obs := counts[alt.Token]
		observedRest -= obs
		chi2 += (float64(obs) - exp) * (float64(obs) - exp) / exp
	}
	if exp := rest * float64(n); exp > 0 {
		chi2 += (float64(observedRest) - exp) * (float64(observedRest) - exp) / exp
	}
	// The 0.999 quantile of chi-square with len(top) degrees of freedom
	// (5: 20.52); a false alarm once in a thousand runs.
	if limit := chiSquare999[len(top)]; chi2 > limit {
		t.Errorf("samples do not follow the reported logprobs: chi-square %.1f > %.1f over %d samples; top %+v, counts %v",
			chi2, limit, n, top, counts)
	}
}

var chiSquare999 = map[int]float64{1: 10.83, 2: 13.82, 3: 16.27, 4: 18.47, 5: 20.52}
