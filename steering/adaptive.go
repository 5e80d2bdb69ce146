package steering

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"gonum.org/v1/gonum/stat/distuv"
)

// Adaptive is the strategy's name.
const Adaptive = "adaptive"

func init() { Register(Adaptive, func() Strategy { return &adaptive{} }, RewardRequired) }

// adaptive samples in waves and stops when another wave is not worth it:
// the best utility reaches a threshold (absolute, or relative to the first
// wave), or, reasoning from the predictive distribution of a new sample's
// utility given the ones seen, a new sample is unlikely to beat the best by
// delta (delta > 0) or its expected improvement is below its cost
// (delta 0); or max_samples is spent. With prune_tokens it generates only
// that many tokens of each sample in a wave, scores the prefixes, and
// finishes only the best keep share (speculative rejection).
type adaptive struct {
	Initial     int      `json:"initial,omitempty"`
	Step        int      `json:"step,omitempty"`
	MaxSamples  int      `json:"max_samples,omitempty"`
	MinSamples  int      `json:"min_samples,omitempty"`
	Threshold   *float64 `json:"threshold,omitempty"`
	ThresholdSD *float64 `json:"threshold_sd,omitempty"`
	Delta       float64  `json:"delta,omitempty"`
	PMin        float64  `json:"p_min,omitempty"`
	Cost        *float64 `json:"cost,omitempty"`
	CostSD      *float64 `json:"cost_sd,omitempty"`
	PruneTokens int      `json:"prune_tokens,omitempty"`
	Keep        float64  `json:"keep,omitempty"`
}

// Stop reasons.
const (
	stopThreshold   = "threshold"
	stopThresholdSD = "threshold_sd"
	stopUnlikely    = "unlikely_to_improve"
	stopLowGain     = "low_expected_improvement"
	stopNoSpread    = "no_spread"
	stopMaxSamples  = "max_samples"
)

// Defaults of the stopping rule, tuned on the dev prompts (eval/dev.jsonl)
// with dev seeds; see docs/benchmarks.md.
const (
	defaultInitial = 4
	defaultStep    = 2
	defaultCostSD  = 0.3
	defaultPMin    = 0.1
)

func (p *adaptive) Check(c *Check) error {
	if err := c.NoZero("initial", "step", "max_samples", "min_samples", "p_min", "prune_tokens"); err != nil {
		return err
	}
	if p.Initial == 0 {
		p.Initial = max(defaultInitial, c.K)
	}
	if p.Step == 0 {
		p.Step = defaultStep
	}
	if p.Initial > c.Limits.MaxSamples {
		// Named for itself: the default max_samples would follow it up and
		// be refused under its own name.
		return c.Bad("initial", "initial must be at most %d (server.max_samples)", c.Limits.MaxSamples)
	}
	if p.MaxSamples == 0 {
		p.MaxSamples = max(p.Initial, min(16, c.Limits.MaxSamples))
	}
	minGiven := p.MinSamples != 0
	if !minGiven {
		p.MinSamples = max(3, p.Initial) // beyond max_samples: no statistical stop
	}
	if p.PMin == 0 {
		p.PMin = defaultPMin
	}
	if p.CostSD == nil { // 0 is a cost: none
		v := defaultCostSD
		p.CostSD = &v
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
	case minGiven && (p.MinSamples < 3 || p.MinSamples > p.MaxSamples):
		return c.Bad("min_samples", "min_samples must be between 3 (a spread needs two degrees of freedom) and max_samples (%d)", p.MaxSamples)
	case p.Threshold != nil && !finite(*p.Threshold):
		return c.Bad("threshold", "threshold must be a finite number")
	case p.ThresholdSD != nil && !finite(*p.ThresholdSD):
		return c.Bad("threshold_sd", "threshold_sd must be a finite number")
	case p.Delta < 0 || !finite(p.Delta):
		return c.Bad("delta", "delta must be a finite number, not negative")
	case p.PMin <= 0 || p.PMin >= 1:
		return c.Bad("p_min", "p_min must be in (0, 1)")
	case p.Cost != nil && (*p.Cost < 0 || !finite(*p.Cost)):
		return c.Bad("cost", "cost must be a finite number, not negative")
	case *p.CostSD < 0 || !finite(*p.CostSD):
		return c.Bad("cost_sd", "cost_sd must be a finite number, not negative")
	case p.PruneTokens < 0:
		return c.Bad("prune_tokens", "prune_tokens must not be negative")
	case c.Limits.MaxTokens > 0 && p.PruneTokens > c.Limits.MaxTokens:
		return c.Bad("prune_tokens", "prune_tokens must be at most %d (server.max_tokens)", c.Limits.MaxTokens)
	case p.PruneTokens == 0 && p.Keep != 0:
		return c.Bad("keep", "keep only applies with prune_tokens")
	}
	if p.Delta > 0 {
		for _, key := range []string{"cost", "cost_sd"} {
			if err := c.Idle(key, "delta", "%s applies only with delta 0 (with delta > 0, p_min decides when to stop)", key); err != nil {
				return err
			}
		}
	} else if err := c.Idle("p_min", "delta", "p_min applies only with delta > 0 (with delta 0, cost or cost_sd decides when to stop)"); err != nil {
		return err
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
	start := time.Now()
	var all []*sample
	failed, next, waves := 0, 0, 0
	var first error
	size := p.Initial
	reason := stopMaxSamples
	var firstWave []float64
	ties := tieBreaker(r.Seed)
	for {
		got, f, sampleErr, err := p.wave(ctx, r, env, indices(next, size), ties)
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
		done := usable(all)
		if firstWave == nil && len(done) > 0 {
			firstWave = utilities(done)
		}
		if next >= p.MaxSamples {
			break
		}
		size = min(p.Step, p.MaxSamples-next)
		if r := p.stop(utilities(done), firstWave, env.Common.MinSuccess); r != "" {
			reason = r
			break
		}
	}
	if err := enough(all, env.Common.MinSuccess, failed, first); err != nil {
		return nil, err
	}
	prefixTokens := 0
	for _, s := range all {
		if s.pruned {
			prefixTokens += s.choice.Tokens
		}
	}
	return finish(env, all, failed, r.Choices(), func(i *Info) {
		i.Waves, i.StopReason = waves, reason
		i.Extra = map[string]any{"timing_ms": env.timingReport(time.Since(start))}
		if p.PruneTokens > 0 {
			i.Extra["pruned_prefix_tokens"] = prefixTokens
		}
	})
}

// stop applies the rules in order to the usable utilities us; "" goes on.
// Nothing stops before min_success usable answers; the thresholds apply
// from the first wave, the statistical rules from min_samples.
func (p *adaptive) stop(us, firstWave []float64, minSuccess int) string {
	if len(us) == 0 || len(us) < minSuccess {
		return ""
	}
	best := slices.Max(us)
	if p.Threshold != nil && best >= *p.Threshold {
		return stopThreshold
	}
	if p.ThresholdSD != nil && len(firstWave) >= 2 {
		m, s := meanSD(firstWave)
		if best >= m+*p.ThresholdSD*s {
			return stopThresholdSD
		}
	}
	if len(us) < p.MinSamples {
		return ""
	}
	_, s := meanSD(us)
	if s == 0 {
		return stopNoSpread // every usable answer scored the same
	}
	if p.Delta > 0 {
		if ImproveProbability(us, best, p.Delta, p.Step) < p.PMin {
			return stopUnlikely
		}
		return ""
	}
	cost := *p.CostSD * s
	if p.Cost != nil {
		cost = *p.Cost
	}
	if ExpectedImprovement(us, best) < cost {
		return stopLowGain
	}
	return ""
}

// meanSD returns the mean and the sample standard deviation.
func meanSD(us []float64) (float64, float64) {
	n := float64(len(us))
	var m float64
	for _, u := range us {
		m += u
	}
	m /= n
	if len(us) < 2 {
		return m, 0
	}
	var ss float64
	for _, u := range us {
		ss += (u - m) * (u - m)
	}
	return m, math.Sqrt(ss / (n - 1))
}

// predictive is the distribution of a new sample's utility given n seen
// with mean m and sample standard deviation s, under a normal model with
// unknown mean and variance (the reference prior): Student-t with n−1
// degrees of freedom, centred on m, scale s·√(1 + 1/n).
func predictive(us []float64) (distuv.StudentsT, bool) {
	m, s := meanSD(us)
	n := float64(len(us))
	if len(us) < 2 || s == 0 {
		return distuv.StudentsT{}, false
	}
	return distuv.StudentsT{Mu: m, Sigma: s * math.Sqrt(1+1/n), Nu: n - 1}, true
}

// ImproveProbability is the chance that at least one of k new samples
// beats best by delta: each does with the predictive probability
// q = P(X > best + delta), and a wave of k with 1 − (1 − q)^k, treating
// the draws of one wave as independent given the utilities seen. With no
// spread seen it is 0.
func ImproveProbability(us []float64, best, delta float64, k int) float64 {
	t, ok := predictive(us)
	if !ok {
		return 0
	}
	q := t.Survival(best + delta)
	return 1 - math.Pow(1-q, float64(k))
}

// ExpectedImprovement is E[(X − best)⁺] for a new sample's utility X under
// the predictive Student-t: σ·[(ν + z²)/(ν − 1)·f_ν(z) − z·(1 − F_ν(z))]
// with z = (best − μ)/σ. It needs ν > 1 (three samples); with fewer, or no
// spread, it is +Inf and 0.
func ExpectedImprovement(us []float64, best float64) float64 {
	t, ok := predictive(us)
	switch {
	case !ok:
		return 0
	case t.Nu <= 1:
		return math.Inf(1)
	}
	z := (best - t.Mu) / t.Sigma
	std := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: t.Nu}
	return t.Sigma * ((t.Nu+z*z)/(t.Nu-1)*std.Prob(z) - z*std.Survival(z))
}

// wave generates and scores one wave. Sample failures are counted and the
// first is returned as sampleErr; a reward failure or a cancelled request
// is err and ends the request.
func (p *adaptive) wave(ctx context.Context, r *backend.Request, env *Env, idx []int, ties *rand.Rand) (got []*sample, failed int, sampleErr, err error) {
	if p.PruneTokens > 0 {
		return p.pruneWave(ctx, r, env, idx, ties)
	}
	got, failed, sampleErr, scoreErr, err := drawScored(ctx, r, env, idx)
	if err == nil {
		err = scoreErr
	}
	if err != nil {
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

// tieBreaker draws the order among prefixes that score alike: from the
// request's seed, so a seeded request prunes reproducibly.
func tieBreaker(seed *int64) *rand.Rand {
	if seed == nil {
		return rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	return rand.New(rand.NewPCG(uint64(*seed), 0x71e5))
}

// pruneWave generates the first prune_tokens tokens of every sample of a
// wave, scores the prefixes, and continues only the best keep share of
// them to whole answers; the rest are reported as pruned. Answers that
// ended within prune_tokens are whole and never pruned.
func (p *adaptive) pruneWave(ctx context.Context, r *backend.Request, env *Env, idx []int, ties *rand.Rand) ([]*sample, int, error, error) {
	partial, failed, first, err := draw(ctx, r, env, idx, p.PruneTokens)
	if err != nil {
		return nil, 0, nil, err
	}
	for _, s := range partial {
		s.pruned = s.choice.FinishReason == backend.FinishLength // partial until continued
		s.tie = ties.Uint64()
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
	// Prefixes and answers that already ended compete on their scores;
	// ties go to a seeded draw, not to the sample's index.
	for pos, s := range orderTies(partial) {
		if pos >= keep || !s.pruned || (r.MaxTokens > 0 && rest <= 0) {
			continue // pruned, or already a whole answer
		}
		running++
		go func() {
			results <- result{s, continueSample(ctx, r, s, rest, 1, env)}
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

// orderTies orders samples by utility, best first, the unusable last;
// equal utilities by the samples' tie draws.
func orderTies(ss []*sample) []*sample {
	out := slices.Clone(ss)
	slices.SortStableFunc(out, func(a, b *sample) int {
		okA, okB := a.invalid == "", b.invalid == ""
		switch {
		case okA != okB:
			if okA {
				return -1
			}
			return 1
		case okA && a.utility != b.utility:
			if a.utility > b.utility {
				return -1
			}
			return 1
		case a.tie != b.tie:
			if a.tie < b.tie {
				return -1
			}
			return 1
		}
		return a.index - b.index
	})
	return out
}

// continueSample extends a partial sample to a whole answer. step numbers
// the continuation, so that its seed differs from the prefix's: every
// stretch of text is a fresh draw, as a whole sample of best-of-N would be.
func continueSample(ctx context.Context, r *backend.Request, s *sample, maxTokens, step int, env *Env) error {
	c := sampleRequest(r, s.index, maxTokens)
	c.Seed = StepSeed(r.Seed, s.index, step)
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
	joint := len(s.choice.Text)
	s.choice.Text += more.choice.Text
	s.choice.FinishReason, s.choice.StopSequence = more.choice.FinishReason, more.choice.StopSequence
	s.choice.Tokens += more.choice.Tokens
	s.choice.Logprobs = append(s.choice.Logprobs, more.choice.Logprobs...)
	// A stop sequence across the joint was seen by neither call.
	if at, stop, ok := stopAfter(s.choice.Text, joint, r.Stop); ok {
		kept := cutLogprobs(s.choice.Logprobs, len(s.choice.Text)-at)
		if len(s.choice.Logprobs) > 0 { // a token each: the cut ones are not the answer's
			s.choice.Tokens -= len(s.choice.Logprobs) - len(kept)
		}
		s.choice.Logprobs = kept
		s.choice.Text = s.choice.Text[:at]
		s.choice.FinishReason, s.choice.StopSequence = backend.FinishStop, &stop
	}
	s.scored = false
	return nil
}

// StepSeed derives the seed of step j of sample i from a request seed:
// distinct for every (sample, step), reproducible for a seeded request,
// nil for an unseeded one.
func StepSeed(seed *int64, i, j int) *int64 {
	if seed == nil {
		return nil
	}
	x := uint64(*seed)*0x9e3779b97f4a7c15 ^ uint64(i+1)*0xbf58476d1ce4e5b9 ^ uint64(j+1)*0x94d049bb133111eb
	x ^= x >> 31
	x *= 0xd6e8feb86659fd93
	x ^= x >> 32
	s := int64(x >> 1) // non-negative: some servers refuse negative seeds
	return &s
}
