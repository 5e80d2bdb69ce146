package experiment

import (
	"math"
	"math/rand/v2"
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

// Under no difference, someone who reads the results after every 20
// outcomes per arm and stops at the first "significant" reading is
// fooled by the repeated Welch test far more often than its 5%, and by
// the confidence sequence less often than 5%.
func TestConfidenceSequenceSurvivesPeeking(t *testing.T) {
	const runs, looks, batch, alpha = 1000, 50, 20, 0.05
	rng := rand.New(rand.NewPCG(1, 2))
	var csWrong, tWrong int
	for range runs {
		var a, b [3]float64 // n, sum, sum of squares
		csStop, tStop := false, false
		for range looks {
			for range batch {
				x, y := rng.NormFloat64(), rng.NormFloat64()
				a[0], a[1], a[2] = a[0]+1, a[1]+x, a[2]+x*x
				b[0], b[1], b[2] = b[0]+1, b[1]+y, b[2]+y*y
			}
			na, nb := int64(a[0]), int64(b[0])
			if w := WelchTest(na, a[1], a[2], nb, b[1], b[2]); w.P < alpha {
				tStop = true
			}
			ma, va := meanVar(na, a[1], a[2])
			mb, vb := meanVar(nb, b[1], b[2])
			pooled := (va + vb) / 2
			cs := ConfidenceSequence(ma-mb, va/float64(na)+vb/float64(nb), 0.01*pooled, alpha)
			if cs.Lo > 0 || cs.Hi < 0 {
				csStop = true
			}
		}
		if csStop {
			csWrong++
		}
		if tStop {
			tWrong++
		}
	}
	csRate, tRate := float64(csWrong)/runs, float64(tWrong)/runs
	t.Logf("false verdicts under peeking after every %d per arm, %d looks: confidence sequence %.3f, repeated t-test %.3f", batch, looks, csRate, tRate)
	if csRate > alpha {
		t.Errorf("the confidence sequence erred in %.3f of runs, above α = %g", csRate, alpha)
	}
	if tRate < 3*alpha {
		t.Errorf("the repeated t-test erred in only %.3f of runs: the simulation shows nothing", tRate)
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
