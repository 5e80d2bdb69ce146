package backend_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/fault"
)

// flaky fails its first n calls with err, then serves from the reference
// model.
type flaky struct {
	backend.Backend
	n     int64
	err   error
	calls atomic.Int64
}

func (f *flaky) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	if f.calls.Add(1) <= f.n {
		return nil, f.err
	}
	return f.Backend.Generate(ctx, r)
}

func (f *flaky) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	if f.calls.Add(1) <= f.n {
		if err := emit(backend.Delta{Text: "partial"}); err != nil {
			return nil, err
		}
		return nil, f.err
	}
	return f.Backend.Stream(ctx, r, emit)
}

var (
	boom     = errors.Join(fault.ErrUpstream, errors.New("boom"))
	badInput = fault.Invalid("x", "bad")
)

func req() *backend.Request {
	s := int64(1)
	return &backend.Request{Model: "reference", Messages: []backend.Message{{Role: "user", Content: "hi"}}, Seed: &s, MaxTokens: 5}
}

func TestPoolRetriesThenFailsOver(t *testing.T) {
	primary := &flaky{Backend: reference.New("a", reference.Options{}), n: 5, err: boom}
	second := &flaky{Backend: reference.New("b", reference.Options{})}
	p := backend.NewPool(
		backend.Member{Backend: primary, Retries: 2, Backoff: time.Millisecond},
		backend.Member{Backend: second})
	if _, err := p.Generate(context.Background(), req()); err != nil {
		t.Fatal(err)
	}
	if primary.calls.Load() != 3 || second.calls.Load() != 1 {
		t.Errorf("primary %d calls (want 1 + 2 retries), second %d", primary.calls.Load(), second.calls.Load())
	}
	// A retry that succeeds stays on the primary.
	primary = &flaky{Backend: reference.New("a", reference.Options{}), n: 1, err: boom}
	p = backend.NewPool(backend.Member{Backend: primary, Retries: 1, Backoff: time.Millisecond}, backend.Member{Backend: second})
	if _, err := p.Generate(context.Background(), req()); err != nil || primary.calls.Load() != 2 || second.calls.Load() != 1 {
		t.Errorf("err %v, primary %d, second %d", err, primary.calls.Load(), second.calls.Load())
	}
}

func TestPoolDoesNotRetryClientErrorsOrStartedStreams(t *testing.T) {
	bad := &flaky{Backend: reference.New("a", reference.Options{}), n: 1, err: badInput}
	second := &flaky{Backend: reference.New("b", reference.Options{})}
	p := backend.NewPool(backend.Member{Backend: bad, Retries: 3}, backend.Member{Backend: second})
	if _, err := p.Generate(context.Background(), req()); !errors.Is(err, fault.ErrInvalid) || second.calls.Load() != 0 {
		t.Errorf("client error: %v, second called %d times", err, second.calls.Load())
	}
	mid := &flaky{Backend: reference.New("a", reference.Options{}), n: 1, err: boom}
	p = backend.NewPool(backend.Member{Backend: mid, Retries: 3}, backend.Member{Backend: second})
	var got string
	_, err := p.Stream(context.Background(), req(), func(d backend.Delta) error { got += d.Text; return nil })
	if !errors.Is(err, fault.ErrUpstream) || got != "partial" || mid.calls.Load() != 1 || second.calls.Load() != 0 {
		t.Errorf("mid-stream failure: err %v, text %q, calls %d/%d", err, got, mid.calls.Load(), second.calls.Load())
	}
}

func TestBreakerOpensAndRecovers(t *testing.T) {
	primary := &flaky{Backend: reference.New("a", reference.Options{}), n: 2, err: boom}
	second := &flaky{Backend: reference.New("b", reference.Options{})}
	clock := &fakeClock{t: time.Unix(0, 0)}
	br := backend.NewBreaker("a", 2, 50*time.Millisecond, clock.now, nil)
	p := backend.NewPool(backend.Member{Backend: primary, Breaker: br}, backend.Member{Backend: second})
	for range 4 {
		if _, err := p.Generate(context.Background(), req()); err != nil {
			t.Fatal(err)
		}
	}
	// Two failures opened the breaker: the last two calls skipped the primary.
	if primary.calls.Load() != 2 || !br.Open() {
		t.Fatalf("primary called %d times, open %v", primary.calls.Load(), br.Open())
	}
	clock.advance(60 * time.Millisecond)
	if _, err := p.Generate(context.Background(), req()); err != nil { // half-open trial succeeds
		t.Fatal(err)
	}
	if primary.calls.Load() != 3 || br.Open() {
		t.Errorf("after cooldown: primary %d calls, open %v", primary.calls.Load(), br.Open())
	}
	// Every member open: 503 at once.
	only := backend.NewBreaker("only", 1, time.Hour, nil, nil)
	dead := &flaky{Backend: reference.New("c", reference.Options{}), n: 100, err: boom}
	p = backend.NewPool(backend.Member{Backend: dead, Breaker: only})
	p.Generate(context.Background(), req())
	if _, err := p.Generate(context.Background(), req()); !errors.Is(err, fault.ErrOverloaded) || dead.calls.Load() != 1 {
		t.Errorf("all open: %v after %d calls", err, dead.calls.Load())
	}
}

func TestLimitQueue(t *testing.T) {
	slow := reference.New("slow", reference.Options{FirstTokenDelay: 200 * time.Millisecond})
	l := backend.Limit(slow, backend.LimitOptions{MaxConcurrency: 1, MaxQueue: 1, QueueTimeout: 50 * time.Millisecond})
	done := make(chan error, 3)
	for range 3 {
		go func() { _, err := l.Generate(context.Background(), req()); done <- err }()
	}
	var overloaded, ok int
	for range 3 {
		switch err := <-done; {
		case err == nil:
			ok++
		case errors.Is(err, fault.ErrOverloaded):
			overloaded++
		default:
			t.Error(err)
		}
	}
	// One runs; one waits 50 ms and times out; one finds the queue full.
	if ok != 1 || overloaded != 2 {
		t.Errorf("%d served, %d overloaded", ok, overloaded)
	}
}

// A half-open trial whose caller gives up must not keep the breaker shut.
func TestBreakerTrialAbandoned(t *testing.T) {
	dead := &flaky{Backend: reference.New("a", reference.Options{FirstTokenDelay: time.Second}), n: 1, err: boom}
	clock := &fakeClock{t: time.Unix(0, 0)}
	br := backend.NewBreaker("a", 1, time.Millisecond, clock.now, nil)
	p := backend.NewPool(backend.Member{Backend: dead, Breaker: br})
	p.Generate(context.Background(), req()) // fails: open
	clock.advance(5 * time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := p.Generate(ctx, req()); err == nil { // the trial, abandoned by its caller
		t.Fatal("trial finished despite the deadline")
	}
	before := dead.calls.Load()
	p.Generate(context.Background(), req())
	if dead.calls.Load() != before+1 {
		t.Error("after an abandoned trial the breaker let no call through")
	}
}

// fakeClock is the breakers' clock in tests: time moves only when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
