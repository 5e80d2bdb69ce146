package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

func runClock(t *testing.T) *clock {
	c := newClock()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() { defer close(stopped); c.run(done) }()
	t.Cleanup(func() { close(done); <-stopped })
	return c
}

// An alarm rings once, not before its time; one taken off before then
// never rings.
func TestClockAlarms(t *testing.T) {
	c := runClock(t)
	set := time.Now()
	rang := make(chan time.Time, 2)
	off := c.after(20*time.Millisecond, func() { rang <- time.Now() })
	offEarly := c.after(30*time.Millisecond, func() { rang <- time.Time{} })
	if !offEarly() {
		t.Fatal("an alarm not rung yet reports it had rung")
	}
	select {
	case at := <-rang:
		if at.IsZero() {
			t.Fatal("an alarm taken off rang")
		}
		if at.Sub(set) < 20*time.Millisecond {
			t.Errorf("rang after %s, before its 20ms", at.Sub(set))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the alarm never rang")
	}
	if off() {
		t.Error("an alarm that rang reports it had not")
	}
	time.Sleep(50 * time.Millisecond)
	if len(rang) != 0 {
		t.Error("an alarm rang twice, or one taken off rang")
	}
}

// A clock with nothing to do stops its ticker, and the next alarm wakes
// it.
func TestClockSleepsAndWakes(t *testing.T) {
	c := runClock(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		asleep := c.asleep
		c.mu.Unlock()
		if asleep {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an idle clock kept ticking")
		}
		time.Sleep(100 * time.Millisecond)
	}
	rang := make(chan struct{})
	c.after(time.Millisecond, func() { close(rang) })
	select {
	case <-rang:
	case <-time.After(5 * time.Second):
		t.Fatal("a sleeping clock missed an alarm")
	}
}

// A request's context reports its deadline exactly and, once past it,
// ends with the cause its alarm gives.
func TestDeadlineContext(t *testing.T) {
	c := runClock(t)
	cause := errors.New("deadline passed")
	ctx, cancel := context.WithCancelCause(context.Background())
	at := time.Now().Add(10 * time.Millisecond)
	c.after(time.Until(at), func() { cancel(cause) })
	var rctx context.Context = deadlineCtx{ctx, at}
	child, stop := context.WithCancel(rctx)
	defer stop()
	if d, ok := child.Deadline(); !ok || !d.Equal(at) {
		t.Errorf("deadline %v %v, want %v", d, ok, at)
	}
	select {
	case <-child.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the deadline never ended the context")
	}
	if context.Cause(child) != cause || !errors.Is(child.Err(), context.Canceled) {
		t.Errorf("ended with %v (cause %v)", child.Err(), context.Cause(child))
	}
}
