package experiment

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/steergate/steergate/cache/cachetest"
	"github.com/steergate/steergate/fault"
)

func demo(thompson bool) *Experiment {
	return &Experiment{Name: "demo", Models: map[string]bool{"m-ab": true}, Unit: UnitUser, Control: "a", Outcome: "reward", Share: 0.5,
		Running: true, Thompson: thompson, MinShare: 0.1, Alpha: 0.05, MixingSD: 0.1,
		Arms: []Arm{{Name: "a", Weight: 1, Steering: json.RawMessage(`{"strategy":"best_of_n","n":4}`)},
			{Name: "b", Weight: 2, Steering: json.RawMessage(`{"strategy":"adaptive"}`)}, {Name: "c", Weight: 1}}}
}

// 10,000 users split 1:2:1 within a chi-square test's tolerance (2
// degrees of freedom, 0.1% level: 13.82), and each keeps its arm.
func TestAssignmentProportionsAndStickiness(t *testing.T) {
	s := NewSet([]*Experiment{demo(false)}, NewMemory())
	ctx := context.Background()
	counts := map[string]float64{}
	first := map[string]string{}
	for i := range 10000 {
		user := fmt.Sprintf("user-%d", i)
		en, _, err := s.Enroll(ctx, Request{Model: "m-ab", Route: "m", Tenant: "t", User: user})
		if err != nil || en == nil {
			t.Fatalf("%s: %v %v", user, en, err)
		}
		counts[en.Arm]++
		first[user] = en.Arm
	}
	var chi2 float64
	for arm, share := range map[string]float64{"a": 0.25, "b": 0.5, "c": 0.25} {
		want := 10000 * share
		chi2 += (counts[arm] - want) * (counts[arm] - want) / want
	}
	if chi2 > 13.82 {
		t.Errorf("counts %v: chi-square %.2f over 13.82", counts, chi2)
	}
	t.Logf("counts %v, chi-square %.2f", counts, chi2)
	for i := range 200 {
		user := fmt.Sprintf("user-%d", i)
		en, _, _ := s.Enroll(ctx, Request{Model: "m-ab", Route: "m", Tenant: "t", User: user})
		if en.Arm != first[user] {
			t.Fatalf("%s moved from %s to %s", user, first[user], en.Arm)
		}
	}
	// The same user in another tenant is another unit.
	moved := 0
	for i := range 1000 {
		en, _, _ := s.Enroll(ctx, Request{Model: "m-ab", Route: "m", Tenant: "other", User: fmt.Sprintf("user-%d", i)})
		if en.Arm != first[fmt.Sprintf("user-%d", i)] {
			moved++
		}
	}
	if moved < 400 {
		t.Errorf("only %d of 1000 users have another arm in another tenant: tenants are not apart", moved)
	}
}

// Who is enrolled, and with what steering.
func TestEnroll(t *testing.T) {
	s := NewSet([]*Experiment{demo(false)}, NewMemory())
	ctx := context.Background()
	cases := []struct {
		name string
		r    Request
		arm  string // "" not enrolled
		err  string // the param of a refusal
	}{
		{"another model", Request{Model: "m", Route: "m", User: "u"}, "", ""},
		{"names a strategy", Request{Model: "m-ab", Route: "m", User: "u", Steering: json.RawMessage(`{"strategy":"none"}`)}, "", ""},
		{"no user", Request{Model: "m-ab", Route: "m"}, "", ""},
		{"forced by an admin", Request{Model: "m-ab", Route: "m", User: "u", Admin: true, Steering: json.RawMessage(`{"arm":"c","weights":{"x":1}}`)}, "c", ""},
		{"forced by a user key", Request{Model: "m-ab", Route: "m", User: "u", Steering: json.RawMessage(`{"arm":"c"}`)}, "", "steering.arm"},
		{"an unknown arm", Request{Model: "m-ab", Route: "m", User: "u", Admin: true, Steering: json.RawMessage(`{"arm":"z"}`)}, "", "steering.arm"},
		{"forced outside experiments", Request{Model: "m", Route: "m", User: "u", Admin: true, Steering: json.RawMessage(`{"arm":"a"}`)}, "", "steering.arm"},
		{"no experiments at all", Request{Model: "m", Route: "m", User: "u", Admin: true, Steering: json.RawMessage(`{"arm":"a"}`)}, "", "steering.arm"},
		{"forced outside experiments, the key escaped", Request{Model: "m", Route: "m", User: "u", Admin: true, Steering: json.RawMessage(`{"n":2,"\u0061rm":"a"}`)}, "", "steering.arm"},
		{"not an object, outside experiments", Request{Model: "m", Route: "m", User: "u", Steering: json.RawMessage(`[1]`)}, "", ""},
		{"an empty arm", Request{Model: "m-ab", Route: "m", User: "u", Admin: true, Steering: json.RawMessage(`{"arm":""}`)}, "", "steering.arm"},
		// A key given twice is left for the resolver to name, not read as
		// the last.
		{"a repeated key", Request{Model: "m-ab", Route: "m", User: "u", Steering: json.RawMessage(`{"n":2,"n":3}`)}, "", ""},
		{"a repeated arm", Request{Model: "m-ab", Route: "m", User: "u", Admin: true, Steering: json.RawMessage(`{"arm":"a","Arm":"b"}`)}, "", ""},
		{"a repeated weight", Request{Model: "m-ab", Route: "m", User: "u", Steering: json.RawMessage(`{"weights":{"x":1,"x":2}}`)}, "", ""},
		{"a key in another case", Request{Model: "m-ab", Route: "m", User: "u", Steering: json.RawMessage(`{"N":3}`)}, "", ""},
	}
	for _, c := range cases {
		set := s
		if c.name == "no experiments at all" {
			set = nil
		}
		en, steer, err := set.Enroll(ctx, c.r)
		switch {
		case c.err != "":
			if fault.Param(err) != c.err {
				t.Errorf("%s: %v, want a refusal naming %s", c.name, err, c.err)
			}
		case err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.arm == "" && en != nil:
			t.Errorf("%s: enrolled in %s", c.name, en)
		case c.arm == "" && string(steer) != string(c.r.Steering):
			t.Errorf("%s: steering changed to %s", c.name, steer)
		case c.arm != "" && (en == nil || en.Arm != c.arm || !en.Forced):
			t.Errorf("%s: %v, want arm %s", c.name, en, c.arm)
		}
	}
	// A null strategy or arm is none given: the request is enrolled as
	// one without them would be.
	if en, _, err := s.Enroll(ctx, Request{Model: "m-ab", Route: "m", User: "u", Steering: json.RawMessage(`{"strategy":null,"arm":null}`)}); err != nil || en == nil || en.Forced {
		t.Errorf("null strategy and arm: %v %v", en, err)
	}
	// The request's weights lie over the arm's; a forced arm key is gone.
	_, steer, _ := s.Enroll(ctx, Request{Model: "m-ab", Route: "m", User: "u", Admin: true, Steering: json.RawMessage(`{"arm":"a","weights":{"x":1}}`)})
	if string(steer) != `{"n":4,"strategy":"best_of_n","weights":{"x":1}}` {
		t.Errorf("merged steering %s", steer)
	}
	// Any other key would change what the arm does: a forced arm refuses
	// it by name, and a drawn one leaves the request to steer itself.
	if _, _, err := s.Enroll(ctx, Request{Model: "m-ab", Route: "m", User: "u", Admin: true, Steering: json.RawMessage(`{"arm":"a","n":8}`)}); fault.Param(err) != "steering.n" {
		t.Errorf("a forced arm with n: %v", err)
	}
	for _, own := range []string{`{"n":1}`, `{"reward":"quality"}`, `{"min_success":1,"weights":{"x":1}}`} {
		if en, steer, err := s.Enroll(ctx, Request{Model: "m-ab", Route: "m", User: "u", Steering: json.RawMessage(own)}); en != nil || err != nil || string(steer) != own {
			t.Errorf("%s: enrolled %v (%v), steering %s", own, en, err, steer)
		}
	}
	if en, _, err := s.Enroll(ctx, Request{Model: "m-ab", Route: "m", User: "u", Steering: json.RawMessage(`{"weights":{"x":1},"cache":{"mode":"off"}}`)}); en == nil || err != nil {
		t.Errorf("weights and cache alone: not enrolled (%v)", err)
	}
	// Weights and cache merge key by key, as a request's over its route's.
	e := demo(false)
	e.Arms[0].Steering = json.RawMessage(`{"strategy":"best_of_n","weights":{"v":3,"f":4},"cache":{"mode":"on"}}`)
	_, steer, _ = NewSet([]*Experiment{e}, NewMemory()).Enroll(ctx, Request{Model: "m-ab", Route: "m", User: "u", Admin: true,
		Steering: json.RawMessage(`{"arm":"a","weights":{"f":1},"cache":{"max_age_s":100}}`)})
	if string(steer) != `{"cache":{"max_age_s":100,"mode":"on"},"strategy":"best_of_n","weights":{"f":1,"v":3}}` {
		t.Errorf("merged steering %s", steer)
	}
}

// Two replicas sharing Redis add up to the totals one would keep, and
// Thompson assignment stays sticky across them.
func TestReplicasShareTotals(t *testing.T) {
	srv := cachetest.StartRedis(t)
	ctx := context.Background()
	var stores []*Redis
	for range 2 {
		stores = append(stores, NewRedis(srv.Client(), "t:"))
	}
	one := NewMemory()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for r, st := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 300 {
				v := float64((r*7+i)%11) / 10
				o := Observation{Request: true, Error: i%17 == 0, Tokens: 100 + i, Samples: 4, Latency: time.Duration(i) * time.Millisecond, Outcome: &v,
					OutcomeTokens: 100 + i, Feedback: i%3 - 1, Unit: fmt.Sprintf("u%d", i%13)}
				if i%5 == 0 {
					o.Unit = "" // an outcome of its own
				}
				if err := st.Record(ctx, "e", []string{"a", "b"}[i%2], o); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				one.Record(ctx, "e", []string{"a", "b"}[i%2], o)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	got, err := stores[1].Totals(ctx, "e", []string{"a", "b"}, true)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := one.Totals(ctx, "e", []string{"a", "b"}, true)
	for _, arm := range []string{"a", "b"} {
		g, w := got[arm], want[arm]
		if g.Requests != w.Requests || g.Errors != w.Errors || g.Tokens != w.Tokens || g.Samples != w.Samples || g.N != w.N ||
			g.Wins != w.Wins || g.Losses != w.Losses || !near(g.Sum, w.Sum, 1e-9) || !near(g.SumSq, w.SumSq, 1e-9) || !near(g.LatSum, w.LatSum, 1e-9) ||
			fmt.Sprint(g.Latency) != fmt.Sprint(w.Latency) || g.Units != w.Units || g.UnitNSq != w.UnitNSq ||
			!near(g.UnitResid, w.UnitResid, 1e-6) || g.Units == 0 {
			t.Errorf("arm %s: two replicas %+v, one %+v", arm, *g, *w)
		}
		var gn, wn int64
		for _, m := range g.Minutes {
			gn += m.N
		}
		for _, m := range w.Minutes {
			wn += m.N
		}
		if gn != wn || gn != g.N {
			t.Errorf("arm %s: minute series hold %d outcomes, want %d", arm, gn, wn)
		}
		var gs, ws float64
		for i := range g.Recent {
			gs += g.Recent[i].Outcome * float64(g.Recent[i].Tokens)
		}
		for i := range w.Recent {
			ws += w.Recent[i].Outcome * float64(w.Recent[i].Tokens)
		}
		if len(g.Recent) != len(w.Recent) || !near(gs, ws, 1e-6) {
			t.Errorf("arm %s: %d recent outcomes (Σ outcome·tokens %g), want %d (%g)", arm, len(g.Recent), gs, len(w.Recent), ws)
		}
	}
	if got["a"].Requests != 300 {
		t.Errorf("arm a has %d requests, want 300", got["a"].Requests)
	}
	sets := []*Set{NewSet([]*Experiment{demo(true)}, stores[0]), NewSet([]*Experiment{demo(true)}, stores[1])}
	for i := range 100 {
		user := fmt.Sprintf("u%d", i)
		a, _, err1 := sets[0].Enroll(ctx, Request{Model: "m-ab", Tenant: "t", User: user})
		b, _, err2 := sets[1].Enroll(ctx, Request{Model: "m-ab", Tenant: "t", User: user})
		if err := errors.Join(err1, err2); err != nil || a.Arm != b.Arm {
			t.Fatalf("%s: %v on one replica, %v on the other (%v)", user, a, b, err)
		}
	}
}

// The report reads the totals: means, differences, win rates and cost.
func TestSummarize(t *testing.T) {
	e := demo(false)
	e.Arms = e.Arms[:2]
	m := NewMemory()
	ctx := context.Background()
	for i := range 400 {
		a, b := float64(i%2), float64(i%2)+0.5 // b is better by 0.5
		m.Record(ctx, "demo", "a", Observation{Request: true, Tokens: 100, Samples: 4, Latency: 80 * time.Millisecond, Outcome: &a, Feedback: -1})
		m.Record(ctx, "demo", "b", Observation{Request: true, Tokens: 300, Samples: 8, Latency: 200 * time.Millisecond, Outcome: &b, Feedback: 1})
	}
	totals, _ := m.Totals(ctx, "demo", []string{"a", "b"}, true)
	r := Summarize(e, totals, []float64{1, 2})
	b := r.Arms[1]
	if b.Diff == nil || b.Diff.Verdict != "better" || !near(float64(b.Diff.Estimate), 0.5, 1e-9) || b.Diff.CS.Lo <= 0 {
		t.Fatalf("difference %+v", b.Diff)
	}
	if float64(b.Cost.TokensPerRequest) != 300 || float64(b.Cost.SamplesPerRequest) != 8 || float64(b.Cost.LatencyP50S) != 0.25 {
		t.Errorf("cost %+v", b.Cost)
	}
	if b.Feedback.Wins != 400 || float64(b.Feedback.WinRate) != 1 || !near(r.Shares["b"], 2.0/3, 1e-9) {
		t.Errorf("feedback %+v, shares %v", b.Feedback, r.Shares)
	}
	if len(b.Series) == 0 || b.Series[len(b.Series)-1].N != 400 {
		t.Errorf("series %+v", b.Series)
	}
	if _, err := json.Marshal(r); err != nil {
		t.Errorf("the report does not encode: %v", err)
	}
}
