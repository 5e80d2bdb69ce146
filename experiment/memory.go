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
	single map[string]*Moments            // experiment \x00 arm → its outcomes without a unit
	sticky map[string]string              // experiment \x00 tenant \x00 unit
}

// NewMemory returns an empty in-memory store.
func NewMemory() *Memory {
	return &Memory{totals: map[string]*Totals{}, units: map[string]map[string]*Moments{}, single: map[string]*Moments{}, sticky: map[string]string{}}
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
	if o.Outcome != nil {
		y := *o.Outcome
		u := m.unit(k, o.Unit)
		if u == nil { // an outcome of its own, or past maxUnits
			if u = m.single[k]; u == nil {
				u = &Moments{}
				m.single[k] = u
			}
			u.SumSq += y * y
		}
		u.N, u.Sum = u.N+1, u.Sum+y
	}
	add(t, o, time.Now())
	return nil
}

// unit is the sums of k's unit named unit, made when new; nil for none
// ("") and past maxUnits.
func (m *Memory) unit(k, unit string) *Moments {
	if unit == "" {
		return nil
	}
	us := m.units[k]
	if us == nil {
		us = map[string]*Moments{}
		m.units[k] = us
	}
	u := us[unit]
	if u == nil && len(us) < maxUnits {
		u = &Moments{}
		us[unit] = u
	}
	return u
}

// add is the one place an observation is summed, for Memory; Redis sums
// the same fields.
func add(t *Totals, o Observation, now time.Time) {
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
	}
	switch {
	case o.Feedback > 0:
		t.Wins++
	case o.Feedback < 0:
		t.Losses++
	}
}

func (m *Memory) Totals(_ context.Context, experiment string, arms []string, withUnits bool) (map[string]*Totals, error) {
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
			if withUnits {
				k := experiment + "\x00" + a
				var single Moments
				if s := m.single[k]; s != nil {
					single = *s
				}
				fillUnits(t, single, func(yield func(int64, float64)) {
					for _, u := range m.units[k] {
						yield(u.N, u.Sum)
					}
				})
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
