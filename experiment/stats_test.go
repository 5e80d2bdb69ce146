package experiment

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"
)

func moments(xs []float64) (int64, float64, float64) {
	var s, q float64
	for _, x := range xs {
		s += x
		q += x * x
	}
	return int64(len(xs)), s, q
}

func near(a, b, tol float64) bool { return math.Abs(a-b) <= tol }

// Figures computed by hand (and by an independent integration of the
// Student-t density), for a = {1, 2, 3, 4} and b = {2, 4, 6, 8, 10}.
func TestStatisticsByHand(t *testing.T) {
	na, sa, qa := moments([]float64{1, 2, 3, 4})
	nb, sb, qb := moments([]float64{2, 4, 6, 8, 10})
	// mean 2.5, s² = 5/3, t(3, 0.975) = 3.182446: 2.5 ± 3.182446·√(5/12).
	if ci := TInterval(na, sa, qa, 0.05); !near(ci.Lo, 0.44574, 1e-4) || !near(ci.Hi, 4.55426, 1e-4) {
		t.Errorf("t interval %+v, want (0.44574, 4.55426)", ci)
	}
	// Welch: t = −3.5/√(5/12 + 2) = −2.25144, ν = 5.52079, p = 0.06913.
	w := WelchTest(na, sa, qa, nb, sb, qb)
	if !near(w.T, -2.25144, 1e-4) || !near(w.DF, 5.52079, 1e-4) || !near(w.P, 0.06913, 1e-4) {
		t.Errorf("Welch %+v, want t −2.25144, df 5.52079, p 0.06913", w)
	}
	// The mixture boundary at d = −3.5, v = 29/12, τ² = 0.25, α = 0.05.
	if cs := ConfidenceSequence(-3.5, 29.0/12, 0.25, 0.05); !near(cs.Lo, -16.02933, 1e-4) || !near(cs.Hi, 9.02933, 1e-4) {
		t.Errorf("confidence sequence %+v, want (−16.02933, 9.02933)", cs)
	}
	// Wilson, 8 of 10: (0.49016, 0.94332).
	if ci := Wilson(8, 10, 0.05); !near(ci.Lo, 0.49016, 1e-4) || !near(ci.Hi, 0.94332, 1e-4) {
		t.Errorf("Wilson %+v, want (0.49016, 0.94332)", ci)
	}
	if ci := TInterval(1, 3, 9, 0.05); !math.IsNaN(ci.Lo) {
		t.Errorf("one outcome has an interval: %+v", ci)
	}
}

// The report's difference by hand: arm n = 100, mean 0.5, s² = 1 (sum 50,
// sum of squares 124); control n = 100, mean 0, s² = 1. v = 0.02, τ² =
// (0.1·1)² = 0.01; two arms: α = 0.05, h = √(0.02·0.03/0.01·(2 ln 20 +
// ln 1.5)) = 0.61953; three arms: α/2, h = 0.68337. Fewer than
// MinOutcomes: no sequence.
func TestDifferenceByHand(t *testing.T) {
	arm, ctl := &Totals{N: 100, Sum: 50, SumSq: 124}, &Totals{N: 100, Sum: 0, SumSq: 99}
	e := &Experiment{Alpha: 0.05, MixingSD: 0.1, Arms: make([]Arm, 2)}
	if d := diff(e, arm, ctl); !near(d.CS.Lo, -0.11953, 1e-4) || !near(d.CS.Hi, 1.11953, 1e-4) || d.Verdict != "undecided" {
		t.Errorf("two arms: %+v", d)
	}
	e.Arms = make([]Arm, 3)
	if d := diff(e, arm, ctl); !near(d.CS.Lo, -0.18337, 1e-4) || !near(d.CS.Hi, 1.18337, 1e-4) {
		t.Errorf("three arms: %+v", d)
	}
	if d := diff(e, &Totals{N: 29, Sum: 29, SumSq: 29}, ctl); d.Verdict != "too few outcomes" || !math.IsNaN(d.CS.Lo) {
		t.Errorf("29 outcomes: %+v", d)
	}
}

// The unit-robust variance of a mean by hand: units with outcomes
// {1, 2, 3}, {4} and {0, 0} (N 6, mean 10/6, unit sums 6, 4, 0): Σ_u
// (s_u − n_u·ȳ)²/(1 − n_u/N) = 1/(1/2) + (49/9)/(5/6) + (100/9)/(2/3) =
// 2 + 6.533333 + 16.666667 = 25.2, over N² = 36: 0.7. With one outcome a
// unit it is the usual s²/N.
func TestUnitVarianceByHand(t *testing.T) {
	m := NewMemory()
	ctx := context.Background()
	for _, o := range []struct {
		unit string
		y    float64
	}{{"a", 1}, {"b", 4}, {"a", 2}, {"c", 0}, {"a", 3}, {"c", 0}} {
		if err := m.Record(ctx, "e", "x", Observation{Outcome: &o.y, Unit: o.unit}); err != nil {
			t.Fatal(err)
		}
	}
	tot, _ := m.Totals(ctx, "e", []string{"x"}, true)
	mean, v, g := unitMeanVar(tot["x"])
	if !near(mean, 10.0/6, 1e-12) || !near(v, 0.7, 1e-9) || g != 3 {
		t.Errorf("mean %v, variance of the mean %v, %d units", mean, v, g)
	}
	// Effective units 36/(9+1+4) = 2.57: t with min(3, 2) − 1 = 1 degree
	// of freedom, 12.706205.
	ci := UnitInterval(tot["x"], 0.05)
	if !near(ci.Hi-mean, 12.706205*math.Sqrt(0.7), 1e-4) {
		t.Errorf("interval %+v", ci)
	}
	xs := []float64{1, 4, 2, 0, 3, 0}
	single := NewMemory()
	for i := range xs {
		single.Record(ctx, "e", "x", Observation{Outcome: &xs[i], Unit: fmt.Sprint(i)})
	}
	tot, _ = single.Totals(ctx, "e", []string{"x"}, true)
	n, s, q := moments(xs)
	_, s2 := meanVar(n, s, q)
	if _, v, g := unitMeanVar(tot["x"]); !near(v, s2/6, 1e-12) || g != 6 || !near(UnitInterval(tot["x"], 0.05).Hi, TInterval(n, s, q, 0.05).Hi, 1e-12) {
		t.Errorf("one outcome a unit: variance %v, want %v; %d units", v, s2/6, g)
	}
	// Welch's test too: the usual one with one outcome a unit, and with the
	// units' variance and fewer degrees of freedom where units repeat.
	ys := []float64{3, 5, 4, 6, 5, 7, 4}
	for i := range ys {
		single.Record(ctx, "e", "y", Observation{Outcome: &ys[i], Unit: fmt.Sprint(i)})
	}
	tot, _ = single.Totals(ctx, "e", []string{"x", "y"}, true)
	nb, sb, qb := moments(ys)
	if got, want := UnitWelch(tot["y"], tot["x"]), WelchTest(nb, sb, qb, n, s, q); !near(got.T, want.T, 1e-12) || !near(got.DF, want.DF, 1e-9) || !near(got.P, want.P, 1e-12) {
		t.Errorf("Welch with one outcome a unit: %+v, want %+v", got, want)
	}
	tot, _ = m.Totals(ctx, "e", []string{"x"}, true)
	if w := UnitWelch(tot["x"], tot["x"]); !near(w.T, 0, 1e-12) || !near(w.DF, 2, 1e-12) {
		t.Errorf("Welch of repeated units: %+v, want t 0 on 2 degrees of freedom (1 each)", w)
	}
}

// Outcomes the arm counted whose unit's record is missing (a write lost,
// or outcomes from before units were kept) count as one unit together:
// never as many.
func TestUnknownUnitsCountAsOne(t *testing.T) {
	tot := &Totals{N: 10, Sum: 24}
	// Units a (3 outcomes, sum 3) and b (1, sum 5); 2 outcomes of their own
	// (sum 4, squares 10); the other 4 (sum 12) lack their unit's record:
	// one unit of 4 outcomes summing to 12. Mean 2.4.
	unitSums(tot, Moments{N: 2, Sum: 4, SumSq: 10}, map[string]string{"n:a": "3", "s:a": "3", "n:b": "1", "s:b": "5"})
	const m = 2.4
	resid := (10-2*m*4+m*m*2)/(1-0.1) + (3-3*m)*(3-3*m)/(1-0.3) + (5-m)*(5-m)/(1-0.1) + (12-4*m)*(12-4*m)/(1-0.4)
	if tot.Units != 5 || tot.UnitNSq != 2+9+1+16 || !near(tot.UnitResid, resid, 1e-9) {
		t.Errorf("%+v, want 5 units, Σn² 28, residuals %v", tot, resid)
	}
}

// peek runs A/A or A/B experiments, reads the report's verdict after every
// 5 outcomes per arm from the first, and returns the share of runs in
// which it ever named an arm better, and worse, and the same for a
// repeated Welch test at α.
func peek(arms int, draw func(rng *rand.Rand, arm int) float64, runs, perArm int, seed uint64) (better, worse, welch float64) {
	const alpha = 0.05
	rng := rand.New(rand.NewPCG(seed, 2))
	e := &Experiment{Alpha: alpha, MixingSD: 0.1, Arms: make([]Arm, arms)}
	var nb, nw, nt int
	for range runs {
		ts := make([]*Totals, arms)
		for i := range ts {
			ts[i] = &Totals{}
		}
		var b, w, tw bool
		for n := 1; n <= perArm; n++ {
			for i, t := range ts {
				x := draw(rng, i)
				t.N, t.Sum, t.SumSq = t.N+1, t.Sum+x, t.SumSq+x*x
			}
			if n%5 != 0 {
				continue
			}
			for _, t := range ts[1:] {
				switch diff(e, t, ts[0]).Verdict {
				case "better":
					b = true
				case "worse":
					w = true
				}
				if p := WelchTest(t.N, t.Sum, t.SumSq, ts[0].N, ts[0].Sum, ts[0].SumSq).P; p < alpha {
					tw = true
				}
			}
		}
		if b {
			nb++
		}
		if w {
			nw++
		}
		if tw {
			nt++
		}
	}
	return float64(nb) / float64(runs), float64(nw) / float64(runs), float64(nt) / float64(runs)
}

// Someone who reads the report after every 5 outcomes per arm and stops
// at the first verdict: under no difference the confidence sequence errs
// in fewer than α of the runs, for normal outcomes, for rare 0/1 ratings
// and across three arms, where a repeated Welch test errs far more often;
// under a real difference of half a standard deviation it finds it in
// most runs, and never the wrong way.
func TestConfidenceSequenceSurvivesPeeking(t *testing.T) {
	normal := func(rng *rand.Rand, _ int) float64 { return rng.NormFloat64() }
	rare := func(rng *rand.Rand, _ int) float64 {
		if rng.Float64() < 0.05 {
			return 1
		}
		return 0
	}
	for _, c := range []struct {
		name string
		arms int
		draw func(*rand.Rand, int) float64
	}{{"normal", 2, normal}, {"rare ratings", 2, rare}, {"three arms", 3, normal}} {
		b, w, welch := peek(c.arms, c.draw, 500, 1000, 1)
		t.Logf("%s, no difference: false verdicts %.3f (better %.3f, worse %.3f); repeated Welch %.3f", c.name, b+w, b, w, welch)
		if b+w > 0.05 {
			t.Errorf("%s: the confidence sequence named an arm in %.3f of A/A runs, above α = 0.05", c.name, b+w)
		}
		if welch < 0.15 {
			t.Errorf("%s: the repeated Welch test erred in only %.3f of runs: the simulation shows nothing", c.name, welch)
		}
	}
	shifted := func(rng *rand.Rand, arm int) float64 { return rng.NormFloat64() + 0.5*float64(arm) }
	b, w, _ := peek(2, shifted, 200, 1000, 2)
	t.Logf("a difference of 0.5 SD: found in %.3f of runs, the wrong way in %.3f", b, w)
	if b < 0.9 || w > 0 {
		t.Errorf("a difference of 0.5 SD found in %.3f of runs (want at least 0.9), the wrong way in %.3f", b, w)
	}
}

// peekUnits runs experiments whose outcomes come from units (users)
// that differ: each arm has 40 users, each with an effect drawn once
// (sd 1) under outcomes of sd 1 around it, and every outcome comes from a
// user drawn at random: the first with probability top (else uniformly
// among all), 25 each on average when top is 0. It reads the verdict after
// every 5 outcomes per arm, and returns the share of runs in which it
// ever named an arm (the second better by shift, when shift > 0), with
// the unit-robust sequence and with one that takes every outcome as
// independent.
func peekUnits(runs int, shift, top float64, seed uint64) (robust, independent float64) {
	const users, perArm = 40, 1000
	rng := rand.New(rand.NewPCG(seed, 3))
	e := &Experiment{Alpha: 0.05, MixingSD: 0.1, Arms: make([]Arm, 2)}
	ctx := context.Background()
	arms := []string{"a", "b"}
	var nr, ni int
	for range runs {
		m := NewMemory()
		effect := make([][]float64, 2)
		for a := range effect {
			effect[a] = make([]float64, users)
			for u := range effect[a] {
				effect[a][u] = rng.NormFloat64()
			}
		}
		var r, i bool
		for n := 1; n <= perArm; n++ {
			for a := range arms {
				u := rng.IntN(users)
				if rng.Float64() < top {
					u = 0
				}
				y := effect[a][u] + rng.NormFloat64() + shift*float64(a)
				m.Record(ctx, "e", arms[a], Observation{Outcome: &y, Unit: strconv.Itoa(u)})
			}
			if n%5 != 0 {
				continue
			}
			ts, _ := m.Totals(ctx, "e", arms, true)
			named := func(v string) bool { return v == "better" || shift == 0 && v == "worse" }
			flat := func(t *Totals) *Totals { c := *t; c.Units = 0; return &c }
			r = r || named(diff(e, ts["b"], ts["a"]).Verdict)
			i = i || named(diff(e, flat(ts["b"]), flat(ts["a"])).Verdict)
		}
		if r {
			nr++
		}
		if i {
			ni++
		}
	}
	return float64(nr) / float64(runs), float64(ni) / float64(runs)
}

// With units that differ and give many outcomes each, outcomes are not
// independent: a sequence that takes them to be names an arm in many A/A
// runs; the unit-robust one stays within α, also when one user gives
// most of an arm's outcomes (it waits for 30 effective units, N²/Σ n_u²).
// With 40 users an arm the difference of the means has a standard error
// near 0.23 (√2/√40 of the users' sd), and the sequence's boundary at
// 1,000 outcomes is near 1.09: it finds a difference of 1.5 in most runs
// (and 1 in about 40%: what 40 units can tell).
func TestConfidenceSequenceHoldsForUnits(t *testing.T) {
	robust, independent := peekUnits(300, 0, 0, 5)
	t.Logf("A/A, 40 users an arm, 25 outcomes a user: false verdicts %.3f unit-robust, %.3f taking outcomes as independent", robust, independent)
	if robust > 0.05 {
		t.Errorf("the unit-robust confidence sequence named an arm in %.3f of A/A runs, above α = 0.05", robust)
	}
	if independent < 0.3 {
		t.Errorf("taking outcomes as independent erred in only %.3f of runs: the simulation shows nothing", independent)
	}
	for _, top := range []float64{0.5, 0.8} {
		robust, _ := peekUnits(200, 0, top, 7)
		t.Logf("A/A, one user giving %.0f%% more of the outcomes: false verdicts %.3f", top*100, robust)
		if robust > 0.05 {
			t.Errorf("with one user giving %.0f%% more of the outcomes, the sequence named an arm in %.3f of A/A runs", top*100, robust)
		}
	}
	found, _ := peekUnits(100, 1.5, 0, 6)
	t.Logf("a difference of 1.5 users' sd: found in %.3f of runs", found)
	if found < 0.8 {
		t.Errorf("a difference of 1.5 users' sd found in %.3f of runs, want at least 0.8", found)
	}
}

// The Thompson shares follow the evidence and keep every arm's floor.
func TestThompsonShares(t *testing.T) {
	e := &Experiment{Arms: []Arm{{Name: "a"}, {Name: "b"}, {Name: "c"}}, MinShare: 0.1}
	rng := rand.New(rand.NewPCG(3, 4))
	none := thompson(e, map[string]*Totals{}, rng, 4000)
	for _, s := range none {
		if !near(s, 1.0/3, 0.03) {
			t.Errorf("with nothing known the shares are %v, want a third each", none)
		}
	}
	totals := map[string]*Totals{
		"a": {N: 200, Sum: 0, SumSq: 200},   // mean 0, sd 1
		"b": {N: 200, Sum: 100, SumSq: 250}, // mean 0.5, sd ≈ 1
		"c": {N: 200, Sum: -40, SumSq: 208}, // mean −0.2
	}
	sh := thompson(e, totals, rng, 4000)
	if !near(sh[1], 0.8, 0.01) || !near(sh[0], 0.1, 0.01) || !near(sh[2], 0.1, 0.01) {
		t.Errorf("shares %v: want b ≈ 0.8 and the floor 0.1 for the others", sh)
	}
}
