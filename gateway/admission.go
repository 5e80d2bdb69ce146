package gateway

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/metrics"
)

// admission bounds in-flight requests; up to maxQueue more wait at most
// queueTimeout for a slot, and the rest are rejected at once (503).
type admission struct {
	slots        chan struct{}
	waiting      atomic.Int64
	maxQueue     int64
	queueTimeout time.Duration
	metrics      *metrics.Metrics
}

func newAdmission(maxInflight, maxQueue int, queueTimeout time.Duration, m *metrics.Metrics) *admission {
	return &admission{slots: make(chan struct{}, maxInflight), maxQueue: int64(maxQueue), queueTimeout: queueTimeout, metrics: m}
}

// acquire takes a slot; the caller must release it.
func (a *admission) acquire(ctx context.Context) error {
	select {
	case a.slots <- struct{}{}:
		a.metrics.Inflight(1)
		return nil
	default:
	}
	if a.waiting.Add(1) > a.maxQueue {
		a.waiting.Add(-1)
		return backendOverloaded("too many requests in flight and the queue is full")
	}
	a.metrics.Queued(1)
	defer func() { a.waiting.Add(-1); a.metrics.Queued(-1) }()
	t := time.NewTimer(a.queueTimeout)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		a.metrics.Inflight(1)
		return nil
	case <-t.C:
		return backendOverloaded("timed out waiting for a free slot")
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (a *admission) release() { <-a.slots; a.metrics.Inflight(-1) }

func (a *admission) inflight() int { return len(a.slots) }

func backendOverloaded(msg string) error {
	return fault.New(fault.ErrOverloaded, "", "server overloaded: %s", msg)
}
