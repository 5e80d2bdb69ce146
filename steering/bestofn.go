package steering

import (
	"context"

	"github.com/steergate/steergate/backend"
)

// bestOfN draws n samples concurrently, scores them in one batched reward
// call and returns the best (the request's n best distinct ones).
type bestOfN struct{}

func (bestOfN) Name() string { return BestOfN }

func (bestOfN) Steer(ctx context.Context, r *backend.Request, p *Params, env Env) (*Outcome, error) {
	ss, failed, first := wave(ctx, r, env, indices(0, p.N), 0)
	if ss == nil && ctxDone(ctx) {
		return nil, context.Cause(ctx)
	}
	if err := enough(len(ss), p.MinSuccess, p.N, first); err != nil {
		return nil, err
	}
	if err := scoreAll(ctx, r, env, ss); err != nil {
		return nil, err
	}
	return finish(BestOfN, ss, failed, r.Choices(), env, func(i *Info) {
		i.Params = map[string]any{"n": p.N}
	})
}

func ctxDone(ctx context.Context) bool { return ctx.Err() != nil }
