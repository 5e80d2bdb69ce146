package experiment

import (
	"context"
	"sync"
	"time"
)

// maxSticky bounds the units Memory remembers under Thompson allocation;
// past it, an arbitrary one is forgotten (and may change arm) for each
// new one.
const maxSticky = 100000

// maxUnits bounds the units whose outcomes Memory sums per arm; past it,
// a new unit's outcomes count as units of their own.
const maxUnits = 100000

// Memory is a Store for one replica.
type Memory struct {
	mu     sync.Mutex
	totals map[string]*Totals             // experiment \x00 arm
	units  map[string]map[string]*Moments // experiment \x00 arm → unit → its outcomes' count and sum
	sticky map[string]string              // experiment \x00 tenant \x00 unit
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{totals: map[string]*Totals{}, units: map[string]map[string]*Moments{}, sticky: map[string]string{}}
}

func (m *Memory) Record(_ context.Context, experiment, arm string, o Observation) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := experiment + "\x00" + arm
	t := m.totals[k]
	if t == nil {
		t = &Totals{Latency: make([]int64, len(LatencyBuckets)+1), Minutes: map[int64]*Moments{}}
		m.totals[k] = t
	}
	var st unitStep
	if o.Outcome != nil {
		st = stepOf(0, 0, *o.Outcome)
		if o.Unit != "" {
			us := m.units[k]
			if us == nil {
				us = map[string]*Moments{}
				m.units[k] = us
			}
			u := us[o.Unit]
			if u == nil && len(us) < maxUnits {
				u = &Moments{}
				us[o.Unit] = u
			}
			if u != nil {
				st = stepOf(u.N, u.Sum, *o.Outcome)
				u.N, u.Sum = u.N+1, u.Sum+*o.Outcome
			}
		}
	}
	add(t, o, st, time.Now())
	return nil
}

// add is the one place an observation is summed, for Memory; Redis sums
// the same fields.
func add(t *Totals, o Observation, st unitStep, now time.Time) {
	if o.Request {
		t.Requests++
		t.LatSum += o.Latency.Seconds()
		t.Latency[bucket(o.Latency)]++
	}
	if o.Error {
		t.Errors++
	}
	t.Tokens += int64(o.Tokens)
	t.Samples += int64(o.Samples)
	if o.Outcome != nil {
		v := *o.Outcome
		t.N++
		t.Sum += v
		t.SumSq += v * v
		minute := now.Unix() / 60
		mm := t.Minutes[minute]
		if mm == nil {
			mm = &Moments{}
			t.Minutes[minute] = mm
		}
		mm.N++
		mm.Sum += v
		mm.SumSq += v * v
		t.Recent = append([]Recent{{Outcome: v, Tokens: o.OutcomeTokens}}, t.Recent[:min(len(t.Recent), MaxRecent-1)]...)
		if st.newUnit {
			t.Units++
		}
		t.UnitSq, t.UnitCross, t.UnitNSq = t.UnitSq+st.dSq, t.UnitCross+st.dCross, t.UnitNSq+st.dNSq
	}
	switch {
	case o.Feedback > 0:
		t.Wins++
	case o.Feedback < 0:
		t.Losses++
	}
}

func (m *Memory) Totals(_ context.Context, experiment string, arms []string, _ bool) (map[string]*Totals, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]*Totals{}
	for _, a := range arms {
		t := &Totals{Latency: make([]int64, len(LatencyBuckets)+1), Minutes: map[int64]*Moments{}}
		if have := m.totals[experiment+"\x00"+a]; have != nil {
			*t = *have
			t.Latency = append([]int64(nil), have.Latency...)
			t.Recent = append([]Recent(nil), have.Recent...)
			t.Minutes = map[int64]*Moments{}
			for k, v := range have.Minutes {
				c := *v
				t.Minutes[k] = &c
			}
		}
		out[a] = t
	}
	return out, nil
}

func (m *Memory) Sticky(_ context.Context, experiment, tenant, unit, arm string, _ time.Duration) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := experiment + "\x00" + tenant + "\x00" + unit
	if have, ok := m.sticky[k]; ok {
		return have, nil
	}
	if len(m.sticky) >= maxSticky {
		for old := range m.sticky {
			delete(m.sticky, old)
			break
		}
	}
	m.sticky[k] = arm
	return arm, nil
}
