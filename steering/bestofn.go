package steering

import (
	"context"
	"time"

	"github.com/steergate/steergate/backend"
)

// BestOfN is the strategy's name.
const BestOfN = "best_of_n"

func init() { Register(BestOfN, func() Strategy { return &bestOfN{} }, RewardRequired) }

// bestOfN draws n samples concurrently, scores them in one batched reward
// call and returns the best (the request's n best distinct ones).
type bestOfN struct {
	N int `json:"n,omitempty"`
}

func (p *bestOfN) Check(c *Check) error {
	if err := c.NoZero("n"); err != nil {
		return err
	}
	return c.Samples("n", &p.N, max(4, c.K))
}

func (p *bestOfN) Steer(ctx context.Context, r *backend.Request, env *Env) (*Outcome, error) {
	start := time.Now()
	ss, failed, first, scoreErr, err := drawScored(ctx, r, env, indices(0, p.N))
	if err != nil {
		return nil, err
	}
	if err := enough(ss, env.Common.MinSuccess, failed, first); err != nil {
		return nil, err
	}
	if scoreErr != nil {
		return nil, scoreErr
	}
	if err := enough(ss, env.Common.MinSuccess, failed, first); err != nil {
		return nil, err
	}
	return finish(env, ss, failed, r.Choices(), func(i *Info) {
		i.Extra = map[string]any{"timing_ms": env.timingReport(time.Since(start))}
	})
}
