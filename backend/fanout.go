package backend

import (
	"context"
	"sync"

	"golang.org/x/sync/errgroup"
)

// SampleSeed derives the seed of sample i from a request seed, so that a
// seeded request with n > 1 is reproducible and its samples differ.
func SampleSeed(seed *int64, i int) *int64 {
	if seed == nil {
		return nil
	}
	s := *seed + int64(i)
	return &s
}

// GenerateN runs r on b, fanning n > 1 out into separate calls with distinct
// seeds when b has no native n.
func GenerateN(ctx context.Context, b Backend, r *Request) (*Generation, error) {
	if r.Choices() == 1 || b.Caps().NativeN {
		return b.Generate(ctx, r)
	}
	return fan(ctx, b, r, nil)
}

// StreamN is GenerateN for streaming; emit is never called concurrently.
func StreamN(ctx context.Context, b Backend, r *Request, emit func(Delta) error) (*Generation, error) {
	if r.Choices() == 1 || b.Caps().NativeN {
		return b.Stream(ctx, r, emit)
	}
	return fan(ctx, b, r, emit)
}

func fan(ctx context.Context, b Backend, r *Request, emit func(Delta) error) (*Generation, error) {
	n := r.Choices()
	g, gctx := errgroup.WithContext(ctx)
	gens := make([]*Generation, n)
	var mu sync.Mutex // serialises emit
	for i := range n {
		sub := r.Clone()
		sub.N = 1
		sub.Seed = SampleSeed(r.Seed, i)
		g.Go(func() error {
			var gen *Generation
			var err error
			if emit == nil {
				gen, err = b.Generate(gctx, sub)
			} else {
				gen, err = b.Stream(gctx, sub, func(d Delta) error {
					d.Index = i
					mu.Lock()
					defer mu.Unlock()
					return emit(d)
				})
			}
			gens[i] = gen
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return Merge(gens), nil
}

// Merge joins single-choice generations into one, renumbering the choices in
// order and summing usage. The prompt is counted once per call, since each
// call paid for it.
func Merge(gens []*Generation) *Generation {
	out := &Generation{}
	for _, g := range gens {
		if g == nil {
			continue
		}
		if out.Model == "" {
			out.Model, out.SystemFingerprint, out.Extra = g.Model, g.SystemFingerprint, g.Extra
		}
		for _, c := range g.Choices {
			c.Index = len(out.Choices)
			out.Choices = append(out.Choices, c)
		}
		out.Usage.Add(g.Usage)
	}
	return out
}
