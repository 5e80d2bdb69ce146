package steering

import (
	"context"
	"fmt"
	"math"
	"slices"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
)

// Adaptive is the strategy's name.
const Adaptive = "adaptive"

func init() { Register(Adaptive, func() Strategy { return &adaptive{} }, RewardRequired) }

// adaptive samples in waves until another wave is unlikely to help: the
// best utility reaches threshold, or the estimated chance that the next
// wave beats the best by delta falls below p_min, or max_samples is spent.
// With prune_tokens it generates only that many tokens of each sample in a
// wave, scores the partial texts, and finishes only the best keep share
// (speculative rejection).
type adaptive struct {
	Initial     int      `json:"initial,omitempty"`
	Step        int      `json:"step,omitempty"`
	MaxSamples  int      `json:"max_samples,omitempty"`
	Threshold   *float64 `json:"threshold,omitempty"`
	Delta       float64  `json:"delta,omitempty"`
	PMin        float64  `json:"p_min,omitempty"`
	PruneTokens int      `json:"prune_tokens,omitempty"`
	Keep        float64  `json:"keep,omitempty"`
}

// Stop reasons.
const (
	stopThreshold  = "threshold"
	stopUnlikely   = "unlikely_to_improve"
	stopMaxSamples = "max_samples"
)

func (p *adaptive) Check(c *Check) error {
	if p.Initial == 0 {
		p.Initial = max(2, c.K)
	}
	if p.Step == 0 {
		p.Step = 2
	}
	if p.MaxSamples == 0 {
		p.MaxSamples = max(p.Initial, min(16, c.Limits.MaxSamples))
	}
	if p.PMin == 0 {
		p.PMin = 0.1
	}
	if err := c.Samples("max_samples", &p.MaxSamples, p.MaxSamples); err != nil {
		return err
	}
	switch {
	case p.Initial < c.K:
		return c.Bad("initial", "initial must be at least the request's n (%d)", c.K)
	case p.Step < 1:
		return c.Bad("step", "step must be at least 1")
	case p.MaxSamples < p.Initial:
		return c.Bad("max_samples", "max_samples must be at least initial (%d)", p.Initial)
	case p.Threshold != nil && !finite(*p.Threshold):
		return c.Bad("threshold", "threshold must be a finite number")
	case p.Delta < 0 || !finite(p.Delta):
		return c.Bad("delta", "delta must be a finite number, not negative")
	case p.PMin <= 0 || p.PMin >= 1:
		return c.Bad("p_min", "p_min must be in (0, 1)")
	case p.PruneTokens < 0:
		return c.Bad("prune_tokens", "prune_tokens must not be negative")
	case p.PruneTokens == 0 && p.Keep != 0:
		return c.Bad("keep", "keep only applies with prune_tokens")
	}
	if p.PruneTokens > 0 {
		if p.Keep <= 0 || p.Keep >= 1 {
			return c.Bad("keep", "keep must be in (0, 1) when prune_tokens is set")
		}
		if kept := int(math.Ceil(p.Keep * float64(p.Initial))); kept < c.K {
			return c.Bad("keep", "keep × initial (%d) must be at least the request's n (%d)", kept, c.K)
		}
		if c.Chat && !c.Caps.Continuation {
			return c.Unsupported("prune_tokens", "pruning continues partial answers, which backend %s cannot do", c.Backend)
		}
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

func (p *adaptive) Steer(ctx context.Context, r *backend.Request, env *Env) (*Outcome, error) {
	var all []*sample
	failed, next, waves := 0, 0, 0
	var first error
	size := p.Initial
	reason := stopMaxSamples
	for {
		got, f, sampleErr, err := p.wave(ctx, r, env, indices(next, size))
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = sampleErr
		}
		waves++
		next += size
		failed += f
		all = append(all, got...)
		if next >= p.MaxSamples {
			break
		}
		size = min(p.Step, p.MaxSamples-next)
		done := usable(all)
		if len(done) < env.Common.MinSuccess {
			continue // no statistical stop before enough usable answers exist
		}
		best := rank(done)[0].utility
		if p.Threshold != nil && best >= *p.Threshold {
			reason = stopThreshold
			break
		}
		if len(done) >= 2 && ImproveProbability(utilities(done), best, p.Delta, size) < p.PMin {
			reason = stopUnlikely
			break
		}
	}
	if err := enough(all, env.Common.MinSuccess, failed, first); err != nil {
		return nil, err
	}
	return finish(env, all, failed, r.Choices(), func(i *Info) {
		i.Waves, i.StopReason = waves, reason
	})
}

// wave generates and scores one wave. Sample failures are counted and the
// first is returned as sampleErr; a reward failure or a cancelled request
// is err and ends the request.
func (p *adaptive) wave(ctx context.Context, r *backend.Request, env *Env, idx []int) (got []*sample, failed int, sampleErr, err error) {
	if p.PruneTokens > 0 {
		return p.pruneWave(ctx, r, env, idx)
	}
	got, failed, sampleErr, err = draw(ctx, r, env, idx, 0)
	if err != nil {
		return nil, 0, nil, err
	}
	if err := env.score(ctx, r, got); err != nil {
		return nil, 0, nil, err
	}
	return got, failed, sampleErr, nil
}

func utilities(ss []*sample) []float64 {
	out := make([]float64, len(ss))
	for i, s := range ss {
		out[i] = s.utility
	}
	return out
}

// ImproveProbability estimates the chance that at least one of k more
// samples beats best by delta. The utilities of samples for one prompt are
// modelled as a normal distribution fitted to those seen so far (mean and
// sample standard deviation); one new sample beats best+delta with
// probability q = 1 − Φ((best + delta − μ)/σ), and k independent ones with
// 1 − (1 − q)^k. With no spread seen, no improvement is expected.
func ImproveProbability(us []float64, best, delta float64, k int) float64 {
	n := float64(len(us))
	var mean float64
	for _, u := range us {
		mean += u
	}
	mean /= n
	var ss float64
	for _, u := range us {
		ss += (u - mean) * (u - mean)
	}
	sd := math.Sqrt(ss / (n - 1))
	if sd == 0 || math.IsNaN(sd) {
		if best+delta < mean {
			return 1
		}
		return 0
	}
	z := (best + delta - mean) / sd
	q := 0.5 * math.Erfc(z/math.Sqrt2)
	return 1 - math.Pow(1-q, float64(k))
}

// pruneWave generates the first prune_tokens tokens of every sample of a
// wave, scores the partial texts, and continues only the best keep share of
// them to full answers; the rest are reported as pruned. Answers that ended
// within prune_tokens are already whole.
func (p *adaptive) pruneWave(ctx context.Context, r *backend.Request, env *Env, idx []int) ([]*sample, int, error, error) {
	partial, failed, first, err := draw(ctx, r, env, idx, p.PruneTokens)
	if err != nil {
		return nil, 0, nil, err
	}
	for _, s := range partial {
		s.pruned = s.choice.FinishReason == backend.FinishLength // partial until continued
	}
	if err := env.score(ctx, r, partial); err != nil {
		return nil, 0, nil, err
	}
	keep := int(math.Ceil(p.Keep * float64(len(partial))))
	rest := 0
	if r.MaxTokens > 0 {
		rest = r.MaxTokens - p.PruneTokens
	}
	type result struct {
		s   *sample
		err error
	}
	results := make(chan result, len(partial))
	running := 0
	// Prefixes and answers that already ended compete on their scores; a
	// finished answer is never pruned.
	scoredOK := func(s *sample) bool { return s.invalid == "" }
	for pos, s := range order(partial, scoredOK) {
		if pos >= keep || !s.pruned || (r.MaxTokens > 0 && rest <= 0) {
			continue // pruned, or already a whole answer
		}
		running++
		go func() {
			results <- result{s, continueSample(ctx, r, s, rest, env)}
		}()
	}
	lost := map[*sample]bool{}
	for range running {
		res := <-results
		if res.err != nil {
			lost[res.s] = true // a failed continuation is a failed sample
			if first == nil {
				first = res.err
			}
			continue
		}
		res.s.pruned = false
	}
	if ctx.Err() != nil {
		return nil, 0, nil, context.Cause(ctx)
	}
	if len(lost) > 0 {
		partial = slices.DeleteFunc(partial, func(s *sample) bool { return lost[s] })
		failed += len(lost)
	}
	if err := env.score(ctx, r, partial); err != nil {
		return nil, 0, nil, err
	}
	return partial, failed, first, nil
}

// continueSample extends a partial sample to a whole answer.
func continueSample(ctx context.Context, r *backend.Request, s *sample, maxTokens int, env *Env) error {
	c := sampleRequest(r, s.index, maxTokens)
	if maxTokens == 0 {
		c.MaxTokens = 0
	}
	if c.Messages != nil {
		c.Messages = append(c.Messages, backend.Message{Role: "assistant", Content: s.choice.Text})
		c.Continue = true
	} else {
		c.Prompt += s.choice.Text
	}
	g, err := env.Backend.Generate(ctx, c)
	if err == nil && (g == nil || len(g.Choices) == 0) {
		err = fmt.Errorf("%w: backend returned no choice", fault.ErrUpstream)
	}
	if err != nil {
		return err
	}
	more := newSample(s.index, g)
	s.choice.Text += more.choice.Text
	s.choice.FinishReason = more.choice.FinishReason
	s.choice.Tokens += more.choice.Tokens
	s.choice.Logprobs = append(s.choice.Logprobs, more.choice.Logprobs...)
	s.scored = false
	return nil
}
