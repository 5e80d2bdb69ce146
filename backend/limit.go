package backend

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/metrics"
)

// LimitOptions bound the calls to one backend.
type LimitOptions struct {
	MaxConcurrency int           // calls at once
	MaxQueue       int           // calls waiting for a turn; more are refused (503)
	QueueTimeout   time.Duration // how long a call waits for its turn (0: as long as its context)
	Timeout        time.Duration // per call (0: none of its own)
	Metrics        *metrics.Metrics
}

// Limit wraps b so that at most MaxConcurrency calls run at once, at most
// MaxQueue wait (each up to QueueTimeout) and each call gets at most
// Timeout. A call that cannot get a turn is fault.ErrOverloaded. Lister and
// Scorer pass through.
func Limit(b Backend, o LimitOptions) Backend {
	return &limited{Backend: b, sem: make(chan struct{}, o.MaxConcurrency), o: o}
}

type limited struct {
	Backend
	sem     chan struct{}
	waiting atomic.Int64
	o       LimitOptions
}

var (
	_ Lister = (*limited)(nil)
	_ Scorer = (*limited)(nil)
)

func (l *limited) enter(ctx context.Context) (context.Context, func(), error) {
	select {
	case l.sem <- struct{}{}:
	default:
		if l.waiting.Add(1) > int64(l.o.MaxQueue) {
			l.waiting.Add(-1)
			return nil, nil, &fault.ParamError{Msg: "backend " + l.Backend.Name() + " is at its concurrency limit and its queue is full", Err: fault.ErrOverloaded}
		}
		var expired <-chan time.Time
		if l.o.QueueTimeout > 0 {
			t := time.NewTimer(l.o.QueueTimeout)
			defer t.Stop()
			expired = t.C
		}
		select {
		case l.sem <- struct{}{}:
			l.waiting.Add(-1)
		case <-expired:
			l.waiting.Add(-1)
			return nil, nil, &fault.ParamError{Msg: "backend " + l.Backend.Name() + " had no free slot within " + l.o.QueueTimeout.String(), Err: fault.ErrOverloaded}
		case <-ctx.Done():
			l.waiting.Add(-1)
			return nil, nil, context.Cause(ctx)
		}
	}
	// A call whose context ends no later than the backend's timeout would
	// end it needs no context of its own. By default it always does: a
	// request's deadline (request_timeout) and the backend's timeout are
	// both five minutes, and the call starts after the request.
	if dl, ok := ctx.Deadline(); l.o.Timeout <= 0 || ok && !dl.After(time.Now().Add(l.o.Timeout)) {
		return ctx, l.leave, nil
	}
	ctx, cancel := context.WithTimeoutCause(ctx, l.o.Timeout, timeoutError(l.Backend.Name(), l.o.Timeout))
	return ctx, func() { cancel(); l.leave() }, nil
}

// leave gives back the turn enter took.
func (l *limited) leave() {
	<-l.sem
}

func timeoutError(name string, d time.Duration) error {
	return &fault.ParamError{Msg: "backend " + name + " did not answer within " + d.String(), Err: fault.ErrTimeout}
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
	l.observe(start, err)
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
	l.observe(start, err)
	return g, err
}

// RawOK forwards to the wrapped backend, if it relays raw requests.
func (l *limited) RawOK(r *Request) bool {
	rp, ok := l.Backend.(RawProxy)
	return ok && rp.RawOK(r)
}

// Raw relays within the limits; a stream holds its turn until it is
// closed.
func (l *limited) Raw(ctx context.Context, r *RawRequest) (*RawAnswer, error) {
	rp, ok := l.Backend.(RawProxy)
	if !ok {
		return nil, &fault.ParamError{Msg: "backend " + l.Backend.Name() + " cannot relay raw requests", Err: fault.ErrUpstream}
	}
	ctx, done, err := l.enter(ctx)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	a, err := rp.Raw(ctx, r)
	err = causeOf(ctx, err)
	if err != nil || a.Stream == nil {
		l.observe(start, err)
		done()
		return a, err
	}
	inner := a.Close
	a.Close = func() {
		inner()
		l.observe(start, causeOf(ctx, a.Err))
		done()
	}
	return a, nil
}

// Close closes the wrapped backend's connections, if it keeps any.
func (l *limited) Close() {
	if c, ok := l.Backend.(interface{ Close() }); ok {
		c.Close()
	}
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
		return nil, unsupportedScoring(l.Backend.Name())
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
func (l *limited) observe(start time.Time, err error) {
	outcome := "ok"
	switch {
	case err == nil:
	case errors.Is(err, context.Canceled) || errors.Is(err, fault.ErrCanceled):
		outcome = "canceled"
	case errors.Is(err, fault.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		outcome = "timeout"
	default:
		outcome = "error"
	}
	l.o.Metrics.BackendCall(l.Backend.Name(), outcome, time.Since(start))
}

// causeOf replaces a bare context error by the context's cause, so that a
// backend timeout reads as fault.ErrTimeout rather than "context deadline exceeded".
func causeOf(ctx context.Context, err error) error {
	if err == nil || ctx.Err() == nil {
		return err
	}
	if c := context.Cause(ctx); c != nil && c != ctx.Err() {
		return c
	}
	return err
}
