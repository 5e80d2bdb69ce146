package backend

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/metrics"
)

// Breaker is a circuit breaker for one backend: after Failures failures in
// a row it opens and the backend is skipped for Cooldown; then one trial
// call is let through (half-open), and its outcome closes or reopens it.
type Breaker struct {
	name     string
	failures int
	cooldown time.Duration
	mu       sync.Mutex
	streak   int
	openTill time.Time
	trial    bool // a half-open trial is in flight
	now      func() time.Time
	metrics  *metrics.Metrics
}

// NewBreaker returns a closed breaker; failures 0 disables it. now is its
// clock (nil: time.Now).
func NewBreaker(name string, failures int, cooldown time.Duration, now func() time.Time, m *metrics.Metrics) *Breaker {
	if now == nil {
		now = time.Now
	}
	m.BackendUp(name, true)
	return &Breaker{name: name, failures: failures, cooldown: cooldown, now: now, metrics: m}
}

// allow reports whether a call may go to the backend now.
func (b *Breaker) allow() bool {
	if b == nil || b.failures == 0 {
		return true
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.streak < b.failures {
		return true
	}
	if b.now().Before(b.openTill) || b.trial {
		return false
	}
	b.trial = true // half-open: this call is the trial
	return true
}

func (b *Breaker) record(ok bool) {
	if b == nil || b.failures == 0 {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.trial = false
	if ok {
		b.streak = 0
		b.metrics.BackendUp(b.name, true)
		return
	}
	b.streak++
	if b.streak >= b.failures {
		b.openTill = b.now().Add(b.cooldown)
		b.metrics.BackendUp(b.name, false)
	}
}

// abandon ends a half-open trial whose caller gave up, so that the next
// call may try again.
func (b *Breaker) abandon() {
	if b == nil || b.failures == 0 {
		return
	}
	b.mu.Lock()
	b.trial = false
	b.mu.Unlock()
}

// Open reports whether the breaker currently skips its backend.
func (b *Breaker) Open() bool {
	if b == nil || b.failures == 0 {
		return false
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.streak >= b.failures && b.now().Before(b.openTill)
}

// Record lets a health check report an outcome.
func (b *Breaker) Record(ok bool) { b.record(ok) }

// Member is one backend of a pool, with its own name for the model.
type Member struct {
	Backend Backend
	Target  string
	Breaker *Breaker
	Retries int           // extra attempts on this member for retryable failures
	Backoff time.Duration // before the first retry; doubles after each
}

// Pool serves a route from several backends in order: a call goes to the
// first member whose breaker is closed, is retried there with backoff and
// then fails over to the next member on connection errors, 5xx and
// overload, but never once a stream has sent anything. Client errors (4xx)
// are returned as they are.
type Pool struct {
	members []Member
	caps    Caps
}

var (
	_ Backend = (*Pool)(nil)
	_ Lister  = (*Pool)(nil)
	_ Scorer  = (*Pool)(nil)
)

// NewPool returns a pool; its capabilities are what every member can do,
// so that a request valid for the route is valid wherever it lands.
func NewPool(members ...Member) *Pool {
	p := &Pool{members: members}
	c := members[0].Backend.Caps()
	for _, m := range members[1:] {
		c = c.And(m.Backend.Caps())
	}
	p.caps = c
	return p
}

func (p *Pool) Name() string { return p.members[0].Backend.Name() }
func (p *Pool) Caps() Caps   { return p.caps }

// Members returns the pool's members.
func (p *Pool) Members() []Member { return p.members }

// retryable errors may succeed on another try or another backend.
func retryable(err error) bool {
	return errors.Is(err, fault.ErrUpstream) || errors.Is(err, fault.ErrOverloaded)
}

func (p *Pool) Generate(ctx context.Context, r *Request) (*Generation, error) {
	return do(ctx, p, r, func(ctx context.Context, b Backend, r *Request) (*Generation, error) {
		return b.Generate(ctx, r)
	}, nil)
}

func (p *Pool) Stream(ctx context.Context, r *Request, emit func(Delta) error) (*Generation, error) {
	sent := false
	wrapped := func(d Delta) error { sent = true; return emit(d) }
	return do(ctx, p, r, func(ctx context.Context, b Backend, r *Request) (*Generation, error) {
		return b.Stream(ctx, r, wrapped)
	}, &sent)
}

func do[T any](ctx context.Context, p *Pool, r *Request, call func(context.Context, Backend, *Request) (T, error), sent *bool) (T, error) {
	var zero T
	var last error
	tried := 0
	for i, m := range p.members {
		if !m.Breaker.allow() {
			continue
		}
		tried++
		mr := r
		if m.Target != "" && m.Target != r.Model {
			mr = r.Clone()
			mr.Model = m.Target
		}
		backoff := m.Backoff
		for attempt := 0; attempt <= m.Retries; attempt++ {
			if attempt > 0 {
				if err := sleep(ctx, backoff); err != nil {
					return zero, err
				}
				backoff *= 2
			}
			g, err := call(ctx, m.Backend, mr)
			if err == nil {
				m.Breaker.record(true)
				if i > 0 {
					MeterOf(ctx).fallBack() // not the route's own answer: the response cache leaves it
				}
				return g, nil
			}
			if ctx.Err() != nil {
				m.Breaker.abandon() // says nothing about the backend
				return zero, err
			}
			if !retryable(err) {
				m.Breaker.record(true) // the backend answered; the request was wrong
				return zero, err
			}
			m.Breaker.record(false)
			last = err
			if sent != nil && *sent {
				return zero, err // never retried once a stream has sent anything
			}
			if m.Breaker.Open() {
				break
			}
		}
	}
	if tried == 0 {
		return zero, &fault.ParamError{Msg: fmt.Sprintf("every backend of %s is failing (circuit open); try again shortly", p.Name()), Err: fault.ErrOverloaded}
	}
	return zero, last
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return nil
	}
}

// RawOK: every member relays raw and needs no translation for r.
func (p *Pool) RawOK(r *Request) bool {
	for _, m := range p.members {
		rp, ok := m.Backend.(RawProxy)
		if !ok || !rp.RawOK(r) {
			return false
		}
	}
	return true
}

// Raw relays with failover as Generate does: each member gets its own model
// name, and a stream is never retried once it has begun (Raw returns when
// the headers have come).
func (p *Pool) Raw(ctx context.Context, r *RawRequest) (*RawAnswer, error) {
	return do(ctx, p, r.Req, func(ctx context.Context, b Backend, mr *Request) (*RawAnswer, error) {
		rp, ok := b.(RawProxy)
		if !ok {
			return nil, fmt.Errorf("%w: %s cannot relay raw requests", fault.ErrUpstream, b.Name())
		}
		rr := *r
		rr.Req = mr
		return rp.Raw(ctx, &rr)
	}, nil)
}

// Models lists the first member's models.
func (p *Pool) Models(ctx context.Context) ([]string, error) {
	if l, ok := p.members[0].Backend.(Lister); ok {
		return l.Models(ctx)
	}
	return nil, nil
}

// ScoreText scores with the first available member (pools only declare
// scoring when every member can).
func (p *Pool) ScoreText(ctx context.Context, r *Request, text string) (*Score, error) {
	return do(ctx, p, r, func(ctx context.Context, b Backend, r *Request) (*Score, error) {
		s, ok := b.(Scorer)
		if !ok {
			return nil, unsupportedScoring(b.Name())
		}
		return s.ScoreText(ctx, r, text)
	}, nil)
}
