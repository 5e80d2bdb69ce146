package gateway

import (
	"context"
	"sync"
	"time"
)

// clockTick is the clock's resolution: an alarm rings up to this much
// after its time.
const clockTick = 5 * time.Millisecond

// clock rings the alarms every request sets (its deadline, the start of
// its disconnect watch) from one ticker. A runtime timer per request costs
// more than its heap entry: one that becomes the earliest wakes the
// network poller, which at low load was a tenth of the gateway's CPU per
// request (docs/benchmarks.md). Alarms are for times far longer than a
// tick, so ringing late by one is of no account.
type clock struct {
	mu     sync.Mutex
	alarms map[*alarm]struct{}
	idle   int           // ticks in a row with no alarm set
	asleep bool          // the ticker is stopped until an alarm is set
	wake   chan struct{} // set while asleep
	// watcher holds the connections of requests whose disconnect watch
	// has begun (watchDisconnect); it ends with run.
	watcher watcher
}

type alarm struct {
	at   time.Time
	ring func() // must not block: the clock rings alarms in turn
}

func newClock() *clock {
	return &clock{alarms: map[*alarm]struct{}{}, wake: make(chan struct{}, 1)}
}

// idleTicks is how long the ticker runs with no alarm set before it stops
// (a second): steady traffic never pays for waking it.
const idleTicks = int(time.Second / clockTick)

// run rings alarms until done is closed.
func (c *clock) run(done <-chan struct{}) {
	defer c.watcher.close()
	t := time.NewTicker(clockTick)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case now := <-t.C:
			if c.ringDue(now) {
				continue
			}
			t.Stop() // nothing set for a while: sleep until something is
			select {
			case <-done:
				return
			case <-c.wake:
				t.Reset(clockTick)
			}
		}
	}
}

// ringDue rings the alarms whose time has come; false means the clock has
// been idle long enough to sleep, which it then is.
func (c *clock) ringDue(now time.Time) bool {
	var due []*alarm
	c.mu.Lock()
	for a := range c.alarms {
		if !now.Before(a.at) {
			due = append(due, a)
			delete(c.alarms, a)
		}
	}
	if len(c.alarms) == 0 {
		c.idle++
	} else {
		c.idle = 0
	}
	sleep := len(due) == 0 && c.idle >= idleTicks
	c.asleep = sleep
	c.mu.Unlock()
	for _, a := range due {
		a.ring()
	}
	return !sleep
}

// after sets an alarm that rings f once d has passed; cancel removes it and
// reports whether it had not rung yet.
func (c *clock) after(d time.Duration, f func()) (cancel func() bool) {
	a := &alarm{at: time.Now().Add(d), ring: f}
	c.mu.Lock()
	c.alarms[a] = struct{}{}
	c.idle = 0
	if c.asleep {
		c.asleep = false
		select {
		case c.wake <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		_, set := c.alarms[a]
		delete(c.alarms, a)
		return set
	}
}

// deadlineCtx is a context that reports a deadline its parent enforces
// (cancelled by an alarm, with a cause that says so): a backend call is
// given the exact deadline.
// It forwards Done and Value to the parent, so that contexts derived from
// it hang on the parent's cancellation without a goroutine of their own.
type deadlineCtx struct {
	context.Context
	deadline time.Time
}

func (d deadlineCtx) Deadline() (time.Time, bool) { return d.deadline, true }
