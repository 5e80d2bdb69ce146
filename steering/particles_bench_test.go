package steering

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/rm"
)

// instant answers every step at once with 32 words and says it stopped at
// the delimiter, so that a run is the gateway's own work.
type instant struct{}

var instantStep = strings.Repeat(" word", 32)

func (instant) Name() string { return "instant" }
func (instant) Caps() backend.Caps {
	return backend.Caps{Continuation: true, StopSequence: true}
}
func (instant) Generate(_ context.Context, r *backend.Request) (*backend.Generation, error) {
	stop := "."
	return &backend.Generation{Choices: []backend.Choice{{Text: instantStep, FinishReason: backend.FinishStop, StopSequence: &stop, Tokens: 32}},
		Usage: backend.Usage{PromptTokens: 20, CompletionTokens: 32}}, nil
}
func (instant) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	return instant{}.Generate(ctx, r)
}

// free scores nothing, at no cost.
type free struct{}

func (free) Objectives() []string { return []string{"x"} }
func (free) Score(_ context.Context, ss []rm.Sample) ([][]float32, error) {
	out := make([][]float32, len(ss))
	for i := range out {
		out[i] = []float32{float32(len(ss[i].Response) % 7)}
	}
	return out, nil
}

// BenchmarkParticlesStep is the gateway's work per particles step, backend
// and scoring excluded: building requests, bookkeeping, weights,
// resampling and the shared-prefix stream, for 8 particles. One op is one
// step.
func BenchmarkParticlesStep(b *testing.B) {
	const steps = 16
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{"t": free{}}, Routes: map[string]json.RawMessage{"m": json.RawMessage(`{}`)},
		Limits: Limits{MaxSamples: 32}})
	steer := json.RawMessage(`{"strategy":"particles","n":8,"step_tokens":32,"max_steps":16,"ess_threshold":1,"lambda":1}`)
	emit := func(backend.Delta) error { return nil }
	b.ReportAllocs()
	for b.Loop() {
		c := call(string(steer), 1)
		c.Route.Backend = instant{}
		c.Request.MaxTokens = 32 * steps
		out, err := run(context.Background(), e, c, emit)
		if err != nil || out.Info.Extra["steps"] != steps {
			b.Fatalf("%v %v", err, out.Info.Extra)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*steps), "ns/step")
}
