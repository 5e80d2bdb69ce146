package backend

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
)

// Meter sums what every backend call made for one request spent: samples,
// continuations, judges, calls that failed after the backend reported
// usage. The steering engine puts one in the request's context; Metered
// backends add to it.
type Meter struct {
	prompt, completion atomic.Int64
	fellBack           atomic.Bool // a fallback backend answered a call
	mu                 sync.Mutex
	// details sums the usage details (prompt_tokens_details, …): by
	// object, by member, the integers every call reported.
	details map[string]map[string]int64
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

// fallBack records that a call was answered by a fallback backend; safe on
// a nil meter.
func (m *Meter) fallBack() {
	if m != nil {
		m.fellBack.Store(true)
	}
}

// FellBack reports whether a fallback backend answered any call.
func (m *Meter) FellBack() bool { return m != nil && m.fellBack.Load() }

// Add records u; safe on a nil meter.
func (m *Meter) Add(u Usage) {
	if m == nil {
		return
	}
	m.prompt.Add(int64(u.PromptTokens))
	m.completion.Add(int64(u.CompletionTokens))
}

// AddDetails records a call's usage details: each object of integer
// members (cached_tokens, reasoning_tokens, …) is summed member by member;
// a detail of another shape cannot be summed and is left out.
func (m *Meter) AddDetails(extra map[string]json.RawMessage) {
	if m == nil || len(extra) == 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for name, raw := range extra {
		var counts map[string]int64
		if json.Unmarshal(raw, &counts) != nil {
			continue
		}
		if m.details == nil {
			m.details = map[string]map[string]int64{}
		}
		sum := m.details[name]
		if sum == nil {
			sum = map[string]int64{}
			m.details[name] = sum
		}
		for k, v := range counts {
			sum[k] += v
		}
	}
}

// Details returns the usage details summed so far, as usage members
// (nil when no call reported any).
func (m *Meter) Details() map[string]json.RawMessage {
	if m == nil {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.details) == 0 {
		return nil
	}
	out := make(map[string]json.RawMessage, len(m.details))
	for _, name := range slices.Sorted(maps.Keys(m.details)) {
		out[name], _ = json.Marshal(m.details[name])
	}
	return out
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
		MeterOf(ctx).AddDetails(g.UsageExtra)
	}
	return g, err
}

func (m metered) Stream(ctx context.Context, r *Request, emit func(Delta) error) (*Generation, error) {
	g, err := m.Backend.Stream(ctx, r, emit)
	if g != nil {
		MeterOf(ctx).Add(g.Usage)
		MeterOf(ctx).AddDetails(g.UsageExtra)
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
