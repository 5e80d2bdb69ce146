package rm

import (
	"context"
	"fmt"
)

// Value uses a sequence reward as a value function for token-level
// guidance (ARGS; value-augmented sampling): each candidate scores as the
// utility of the partial answer with the candidate appended, all
// candidates in one batch.
type Value struct {
	Reward  Rewarder
	Weights map[string]float64
}

var _ TokenRewarder = Value{}

// ID names the reward it reads.
func (v Value) ID() string { return "value:" + IDOf(v.Reward) }

func (v Value) LogProbs(ctx context.Context, s Sample, next []string) ([]float32, error) {
	batch := make([]Sample, len(next))
	for i, n := range next {
		c := s
		c.Response, c.Text, c.Partial = s.Response+n, s.Response+n, n != ""
		batch[i] = c
	}
	scores, err := v.Reward.Score(ctx, batch)
	if err == nil {
		err = CheckShape(scores, len(batch), len(v.Reward.Objectives()))
	}
	if err != nil {
		return nil, fmt.Errorf("value: %w", err)
	}
	u := UtilityFor(v.Reward, v.Weights, 0, 0)
	out := make([]float32, len(next))
	for i := range next {
		out[i] = float32(u.Of(v.Reward.Objectives(), scores[i], 0))
	}
	return out, nil
}
