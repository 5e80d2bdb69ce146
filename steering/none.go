package steering

import (
	"context"

	"github.com/steergate/steergate/backend"
)

func init() { Register(None, func() Strategy { return &none{} }, RewardNone) }

// none passes the request through to the backend: no samples beyond the
// request's own n, no reward.
type none struct{}

func (*none) Check(*Check) error { return nil }

func (*none) Steer(ctx context.Context, r *backend.Request, env *Env) (*Outcome, error) {
	var g *backend.Generation
	var err error
	if env.Emit == nil {
		g, err = backend.GenerateN(ctx, env.Backend, r)
	} else {
		g, err = backend.StreamN(ctx, env.Backend, r, env.Emit)
	}
	if err != nil {
		return nil, err
	}
	return &Outcome{Generation: g}, nil
}
