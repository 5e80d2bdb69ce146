package steering

import (
	"context"
	"fmt"
	"math"

	"github.com/steergate/steergate/backend"
)

// adaptive samples in waves until another wave is unlikely to help: the
// best utility reaches threshold, or the estimated chance that the next
// wave beats the best by delta falls below p_min, or max_samples is spent.
// With prune_tokens it generates only that many tokens of each sample in a
// wave, scores the partial texts, and finishes only the best keep share
// (speculative rejection).
type adaptive struct{}

func (adaptive) Name() string { return Adaptive }

// Stop reasons.
const (
	stopThreshold  = "threshold"
	stopUnlikely   = "unlikely_to_improve"
	stopMaxSamples = "max_samples"
)

func (adaptive) Steer(ctx context.Context, r *backend.Request, p *Params, env Env) (*Outcome, error) {
	if p.PruneTokens > 0 && r.Messages != nil && !env.Backend.Caps().Continuation {
		return nil, backend.Unsupported("steering.prune_tokens", "pruning needs a backend that can continue a partial answer; %s cannot", env.Backend.Name())
	}
	var all []*sample
	failed, next, waves := 0, 0, 0
	var first error
	size := p.Initial
	reason := stopMaxSamples
	for {
		got, f, sampleErr, err := runWave(ctx, r, p, env, indices(next, size))
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
		done := complete(all)
		if len(done) == 0 {
			continue
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
	done := complete(all)
	if err := enough(len(done), p.MinSuccess, next, first); err != nil {
		return nil, err
	}
	return finishAdaptive(all, failed, r.Choices(), env, waves, reason, p)
}

func finishAdaptive(all []*sample, failed, k int, env Env, waves int, reason string, p *Params) (*Outcome, error) {
	return finish(Adaptive, all, failed, k, env, func(i *Info) {
		i.Waves, i.StopReason = waves, reason
		i.Params = map[string]any{"initial": p.Initial, "step": p.Step, "max_samples": p.MaxSamples, "delta": p.Delta, "p_min": p.PMin}
		if p.Threshold != nil {
			i.Params["threshold"] = *p.Threshold
		}
		if p.PruneTokens > 0 {
			i.Params["prune_tokens"], i.Params["keep"] = p.PruneTokens, p.Keep
		}
	})
}

// runWave generates and scores one wave. Sample failures are counted and
// the first is returned as sampleErr; a reward failure or a cancelled
// request is err and ends the request.
func runWave(ctx context.Context, r *backend.Request, p *Params, env Env, idx []int) (got []*sample, failed int, sampleErr, err error) {
	if p.PruneTokens > 0 {
		return pruneWave(ctx, r, p, env, idx)
	}
	got, failed, sampleErr = wave(ctx, r, env, idx, 0)
	if ctxDone(ctx) {
		return nil, 0, nil, context.Cause(ctx)
	}
	if err := scoreAll(ctx, r, env, got); err != nil {
		return nil, 0, nil, err
	}
	return got, failed, sampleErr, nil
}

// complete returns the samples that are whole answers (not pruned).
func complete(ss []*sample) []*sample {
	var out []*sample
	for _, s := range ss {
		if !s.pruned {
			out = append(out, s)
		}
	}
	return out
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
func pruneWave(ctx context.Context, r *backend.Request, p *Params, env Env, idx []int) ([]*sample, int, error, error) {
	partial, failed, first := wave(ctx, r, env, idx, p.PruneTokens)
	if ctxDone(ctx) {
		return nil, 0, nil, context.Cause(ctx)
	}
	if err := scoreAll(ctx, r, env, partial); err != nil {
		return nil, 0, nil, err
	}
	keep := int(math.Ceil(p.Keep * float64(len(partial))))
	for rankPos, s := range rank(partial) {
		if rankPos >= keep {
			s.pruned = true
		}
	}
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
	for _, s := range partial {
		if s.pruned || s.choice.FinishReason != backend.FinishLength || (r.MaxTokens > 0 && rest <= 0) {
			continue // pruned, or already a whole answer
		}
		running++
		go func() {
			results <- result{s, continueSample(ctx, r, s, rest, env)}
		}()
	}
	for range running {
		res := <-results
		if res.err != nil {
			res.s.pruned = true // could not be finished: not a candidate
			if first == nil {
				first = res.err
			}
		}
	}
	if ctxDone(ctx) {
		return nil, 0, nil, context.Cause(ctx)
	}
	if err := scoreAll(ctx, r, env, partial); err != nil {
		return nil, 0, nil, err
	}
	return partial, failed, first, nil
}

// continueSample extends a partial sample to a whole answer.
func continueSample(ctx context.Context, r *backend.Request, s *sample, maxTokens int, env Env) error {
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
	if err != nil {
		return err
	}
	if len(g.Choices) == 0 {
		return fmt.Errorf("backend returned no choice")
	}
	more := newSample(s.index, g)
	s.choice.Text += more.choice.Text
	s.choice.FinishReason = more.choice.FinishReason
	s.choice.Tokens += more.choice.Tokens
	s.choice.Logprobs = append(s.choice.Logprobs, more.choice.Logprobs...)
	s.usage.Add(more.usage)
	s.scored = false
	return nil
}
