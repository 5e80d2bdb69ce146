package steering

import (
	"context"
	"errors"
	"sync"

	"github.com/steergate/steergate/backend"
)

// sampleRequest is r for sample i alone: one choice, its own seed derived
// from the request's (so a seeded request is reproducible and its samples
// differ), and an optional token cap.
func sampleRequest(r *backend.Request, i, maxTokens int) *backend.Request {
	s := r.Clone()
	s.N = 1
	s.Seed = backend.SampleSeed(r.Seed, i)
	if maxTokens > 0 {
		s.MaxTokens = maxTokens
	}
	return s
}

func newSample(i int, g *backend.Generation) *sample {
	c := g.Choices[0]
	if c.Tokens == 0 {
		c.Tokens = g.Usage.CompletionTokens
	}
	return &sample{index: i, choice: c, usage: g.Usage, finished: true}
}

// wave generates the samples with the given indices concurrently (the
// backend's own limit bounds how many run at once). Failed samples are
// dropped and counted; the first error is kept to explain a total failure.
// A cancelled context fails the wave.
func wave(ctx context.Context, r *backend.Request, env Env, indices []int, maxTokens int) ([]*sample, int, error) {
	out := make([]*sample, len(indices))
	errs := make([]error, len(indices))
	var wg sync.WaitGroup
	for j, i := range indices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := env.Backend.Generate(ctx, sampleRequest(r, i, maxTokens))
			if err == nil && len(g.Choices) == 0 {
				err = errors.New("backend returned no choice")
			}
			if err != nil {
				errs[j] = err
				return
			}
			out[j] = newSample(i, g)
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, 0, context.Cause(ctx)
	}
	var ok []*sample
	var first error
	for j := range indices {
		if out[j] != nil {
			ok = append(ok, out[j])
		} else if first == nil {
			first = errs[j]
		}
	}
	return ok, len(indices) - len(ok), first
}

// enough fails the request when fewer than need samples succeeded.
func enough(got, need, tried int, first error) error {
	if got >= need {
		return nil
	}
	if got == 0 && first != nil {
		return first // every sample failed the same way: keep its class (404, 504, …)
	}
	return errors.Join(backend.ErrUpstream, errors.New("too few samples succeeded"), first)
}

// indices returns [from, from+n).
func indices(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}
