package steering

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
)

func TestStopAfter(t *testing.T) {
	for _, c := range []struct {
		text  string
		from  int
		stops []string
		at    int
		stop  string
	}{
		{"ab. cd", 3, []string{". c"}, 2, ". c"},     // across the joint
		{"ab. cd", 4, []string{"b. "}, -1, ""},       // ends before the joint: seen already
		{"ab. cd", 3, []string{"cd", ". "}, 2, ". "}, // the earliest wins
		{"ab", 5, []string{"b"}, -1, ""},             // text taken back below the joint
		{"abc", 1, []string{""}, -1, ""},
		{"x. y. z", 6, []string{". z", "y. z"}, 3, "y. z"},
	} {
		at, stop, ok := stopAfter(c.text, c.from, c.stops)
		if ok != (c.at >= 0) || ok && (at != c.at || stop != c.stop) {
			t.Errorf("%q from %d, stops %q: %d %q %v, want %d %q", c.text, c.from, c.stops, at, stop, ok, c.at, c.stop)
		}
	}
	if got := trimSteps([]string{"ab", " cd", " ef"}, "ab. c", []string{"."}); !slices.Equal(got, []string{"ab", " c"}) {
		t.Errorf("trimSteps: %q", got)
	}
	if got := trimSteps([]string{"ab", " cd"}, "ab", []string{"."}); !slices.Equal(got, []string{"ab"}) {
		t.Errorf("trimSteps to a delimiter: %q", got)
	}
	lps := []backend.TokenLogprob{{Token: "ab"}, {Token: " c"}, {Token: "d"}}
	if got := cutLogprobs(lps, 2); len(got) != 2 {
		t.Errorf("cutLogprobs: %v", got)
	}
}

// A request stop sequence that spans two particle steps, or a step and
// its delimiter, ends the particle there: no backend call saw it whole.
// Streamed, the text sent is the answer's.
func TestParticlesStopAcrossSteps(t *testing.T) {
	for _, stop := range []string{". b", "d. g", "bad. good"} {
		cuts := 0
		for seed := range int64(8) {
			rec := &recorder{}
			e, on := engine(&stepper{reports: true}, goodShare{}, `{}`)
			c := call(`{"strategy":"particles","n":4}`, 1)
			c.Request.Stop, c.Request.Seed = []string{stop}, &seed
			out, err := run(context.Background(), e, on(c), rec.emit)
			if err != nil {
				t.Fatalf("stop %q, seed %d: %v", stop, seed, err)
			}
			ch := out.Generation.Choices[0]
			if strings.Contains(ch.Text, stop) || rec.text() != ch.Text {
				t.Errorf("stop %q, seed %d: answer %q, streamed %q", stop, seed, ch.Text, rec.text())
			}
			if ch.StopSequence != nil && *ch.StopSequence == stop {
				cuts++
				if ch.FinishReason != backend.FinishStop {
					t.Errorf("stop %q, seed %d: finish %s", stop, seed, ch.FinishReason)
				}
			}
		}
		if cuts == 0 {
			t.Errorf("stop %q: no answer ended at it", stop)
		}
	}
}

// pieces answers each prefix with the piece the test gives for it.
type pieces map[string]backend.Choice

func (pieces) Name() string       { return "pieces" }
func (pieces) Caps() backend.Caps { return backend.Caps{Continuation: true, StopSequence: true} }
func (p pieces) Generate(_ context.Context, r *backend.Request) (*backend.Generation, error) {
	prefix := ""
	if r.Continue {
		prefix = r.Messages[len(r.Messages)-1].Content
	}
	c := p[prefix]
	return &backend.Generation{Choices: []backend.Choice{c}, Usage: backend.Usage{PromptTokens: 1, CompletionTokens: c.Tokens}}, nil
}
func (p pieces) Stream(ctx context.Context, r *backend.Request, _ func(backend.Delta) error) (*backend.Generation, error) {
	return p.Generate(ctx, r)
}

// So does one that spans a pruned sample's prefix and its continuation.
func TestAdaptivePruneStopAcrossContinuation(t *testing.T) {
	end := ""
	b := pieces{
		"":     {Text: "Yes,", FinishReason: backend.FinishLength, Tokens: 2, Logprobs: []backend.TokenLogprob{{Token: "Yes"}, {Token: ","}}},
		"Yes,": {Text: " that is all", FinishReason: backend.FinishStop, StopSequence: &end, Tokens: 3, Logprobs: []backend.TokenLogprob{{Token: " that"}, {Token: " is"}, {Token: " all"}}},
	}
	e, on := engine(b, goodShare{}, `{}`)
	c := call(`{"strategy":"adaptive","initial":2,"step":2,"max_samples":2,"prune_tokens":2,"keep":0.5}`, 1)
	c.Request.Stop, c.Request.Logprobs = []string{", t"}, true
	out, err := run(context.Background(), e, on(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := out.Generation.Choices[0]
	if ch.Text != "Yes" || ch.FinishReason != backend.FinishStop || ch.StopSequence == nil || *ch.StopSequence != ", t" || len(ch.Logprobs) != 1 || ch.Tokens != 1 { // "," is in the stop
		t.Errorf("answer %q, finish %s, stop %v, %d logprobs, %d tokens", ch.Text, ch.FinishReason, ch.StopSequence, len(ch.Logprobs), ch.Tokens)
	}
}
