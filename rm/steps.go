package rm

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
)

// Step aggregations of a process reward.
const (
	StepMin  = "min"
	StepLast = "last"
	StepMean = "mean"
	StepProd = "prod"
	StepSum  = "sum"
)

// StepRule turns a process reward model's per-step scores into one score.
// Two refinements against a policy that repeats steps to collect reward
// ("On Designing Effective RL Reward at Training Time for LLM Reasoning")
// apply first, in this order: Clip bounds each step from above, as
// min(r_t − clip, 0), so no step adds reward; Delta replaces each step by
// its change, r_t − r_{t−1} (the first step keeps r_1), so that a sum
// telescopes to the last step's score. Then Aggregate: min (the weakest
// step), last, mean, prod (a product of step probabilities) or sum.
type StepRule struct {
	Aggregate string
	Clip      *float64
	Delta     bool
}

// Check refuses a rule that cannot mean anything.
func (r StepRule) Check() error {
	switch r.Aggregate {
	case StepMin, StepLast, StepMean, StepSum:
	case StepProd:
		if r.Clip != nil || r.Delta {
			return fmt.Errorf("prod multiplies step probabilities; clip and delta make steps negative")
		}
	default:
		return fmt.Errorf("aggregate must be one of %s; got %q", strings.Join([]string{StepMin, StepLast, StepMean, StepProd, StepSum}, ", "), r.Aggregate)
	}
	if r.Clip != nil && (math.IsNaN(*r.Clip) || math.IsInf(*r.Clip, 0)) {
		return fmt.Errorf("clip must be a finite number")
	}
	return nil
}

// Refine applies clip and delta to raw step scores.
func (r StepRule) Refine(raw []float64) []float64 {
	out := slices.Clone(raw)
	if r.Clip != nil {
		for i, x := range out {
			out[i] = math.Min(x-*r.Clip, 0)
		}
	}
	if r.Delta {
		for i := len(out) - 1; i > 0; i-- {
			out[i] -= out[i-1]
		}
	}
	return out
}

// Of is the score of a sequence of raw step scores (NaN for no steps).
func (r StepRule) Of(raw []float64) float64 {
	xs := r.Refine(raw)
	if len(xs) == 0 {
		return math.NaN()
	}
	switch r.Aggregate {
	case StepMin:
		return slices.Min(xs)
	case StepLast:
		return xs[len(xs)-1]
	case StepProd:
		p := 1.0
		for _, x := range xs {
			p *= x
		}
		return p
	}
	var s float64
	for _, x := range xs {
		s += x
	}
	if r.Aggregate == StepMean {
		return s / float64(len(xs))
	}
	return s
}

// SplitSteps splits an answer into steps at delim, dropping empty ones: the
// steps a process reward scores when the strategy did not say them.
func SplitSteps(answer, delim string) []string {
	var out []string
	for _, s := range strings.Split(answer, delim) {
		if strings.TrimSpace(s) != "" {
			out = append(out, s)
		}
	}
	return out
}

// StepScorer is a process reward: it scores each step of each sample (the
// sample's Steps, or its answer split by the reward's delimiter), for
// strategies whose potentials read steps directly. A sample without a
// step (an empty answer) gets an empty row: no score, not an error.
type StepScorer interface {
	Rewarder
	ScoreSteps(ctx context.Context, s []Sample) ([][]float64, error)
	Rule() StepRule
}
