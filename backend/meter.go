package backend

import (
	"context"
	"sync/atomic"
)

// Meter sums what every backend call made for one request spent: samples,
// continuations, judges, calls that failed after the backend reported
// usage. The steering engine puts one in the request's context; Metered
// backends add to it.
type Meter struct {
	prompt, completion atomic.Int64
}

type meterKey struct{}

// WithMeter returns ctx carrying a new meter.
func WithMeter(ctx context.Context) (context.Context, *Meter) {
	m := &Meter{}
	return context.WithValue(ctx, meterKey{}, m), m
}

// MeterOf returns the context's meter, or nil.
func MeterOf(ctx context.Context) *Meter {
	m, _ := ctx.Value(meterKey{}).(*Meter)
	return m
}

// Add records u; safe on a nil meter.
func (m *Meter) Add(u Usage) {
	if m == nil {
		return
	}
	m.prompt.Add(int64(u.PromptTokens))
	m.completion.Add(int64(u.CompletionTokens))
}

// Usage returns the sum so far.
func (m *Meter) Usage() Usage {
	if m == nil {
		return Usage{}
	}
	return Usage{PromptTokens: int(m.prompt.Load()), CompletionTokens: int(m.completion.Load())}
}

// Metered wraps b so that the usage of every call, failed ones included
// when the backend reported what they spent, is added to the meter of the
// call's context.
func Metered(b Backend) Backend {
	if _, ok := b.(metered); ok {
		return b
	}
	return metered{b}
}

type metered struct{ Backend }

func (m metered) Generate(ctx context.Context, r *Request) (*Generation, error) {
	g, err := m.Backend.Generate(ctx, r)
	if g != nil {
		MeterOf(ctx).Add(g.Usage)
	}
	return g, err
}

func (m metered) Stream(ctx context.Context, r *Request, emit func(Delta) error) (*Generation, error) {
	g, err := m.Backend.Stream(ctx, r, emit)
	if g != nil {
		MeterOf(ctx).Add(g.Usage)
	}
	return g, err
}

func (m metered) Models(ctx context.Context) ([]string, error) {
	if l, ok := m.Backend.(Lister); ok {
		return l.Models(ctx)
	}
	return nil, nil
}

func (m metered) ScoreText(ctx context.Context, r *Request, text string) (*Score, error) {
	sc, ok := m.Backend.(Scorer)
	if !ok {
		return nil, unsupportedScoring(m.Backend.Name())
	}
	s, err := sc.ScoreText(ctx, r, text)
	if s != nil {
		MeterOf(ctx).Add(s.Usage)
	}
	return s, err
}
