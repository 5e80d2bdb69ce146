package backend

import (
	"context"
	"errors"
	"time"

	"github.com/steergate/steergate/metrics"
)

// Limit wraps b so that at most n calls run at once (callers wait their
// turn, or give up with their context) and each call gets at most timeout
// (0: no limit of its own). Lister and Scorer pass through.
func Limit(b Backend, n int, timeout time.Duration) Backend {
	return &limited{Backend: b, sem: make(chan struct{}, n), timeout: timeout}
}

type limited struct {
	Backend
	sem     chan struct{}
	timeout time.Duration
}

var (
	_ Lister = (*limited)(nil)
	_ Scorer = (*limited)(nil)
)

func (l *limited) enter(ctx context.Context) (context.Context, func(), error) {
	select {
	case l.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, nil, context.Cause(ctx)
	}
	cancel := func() {}
	if l.timeout > 0 {
		ctx, cancel = context.WithTimeoutCause(ctx, l.timeout, timeoutError(l.Backend.Name(), l.timeout))
	}
	return ctx, func() { cancel(); <-l.sem }, nil
}

func timeoutError(name string, d time.Duration) error {
	return &ParamError{Msg: "backend " + name + " did not answer within " + d.String(), Err: ErrTimeout}
}

func (l *limited) Generate(ctx context.Context, r *Request) (*Generation, error) {
	ctx, done, err := l.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	start := time.Now()
	g, err := l.Backend.Generate(ctx, r)
	err = causeOf(ctx, err)
	observe(l.Backend.Name(), start, err)
	return g, err
}

func (l *limited) Stream(ctx context.Context, r *Request, emit func(Delta) error) (*Generation, error) {
	ctx, done, err := l.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	start := time.Now()
	g, err := l.Backend.Stream(ctx, r, emit)
	err = causeOf(ctx, err)
	observe(l.Backend.Name(), start, err)
	return g, err
}

func (l *limited) Models(ctx context.Context) ([]string, error) {
	if ls, ok := l.Backend.(Lister); ok {
		return ls.Models(ctx)
	}
	return nil, nil
}

func (l *limited) ScoreText(ctx context.Context, r *Request, text string) (*Score, error) {
	sc, ok := l.Backend.(Scorer)
	if !ok {
		return nil, Unsupported("", "backend %s cannot score given text", l.Backend.Name())
	}
	ctx, done, err := l.enter(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	s, err := sc.ScoreText(ctx, r, text)
	return s, causeOf(ctx, err)
}

// observe records a backend call's latency and outcome.
func observe(name string, start time.Time, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled) || errors.Is(err, ErrCanceled):
		outcome = "canceled"
	case errors.Is(err, ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		outcome = "timeout"
	default:
		outcome = "error"
	}
	metrics.BackendDuration.WithLabelValues(name, outcome).Observe(time.Since(start).Seconds())
}

// causeOf replaces a bare context error by the context's cause, so that a
// backend timeout reads as ErrTimeout rather than "context deadline exceeded".
func causeOf(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	if c := context.Cause(ctx); c != nil && c != ctx.Err() {
		return c
	}
	return err
}
