package experiment

import (
	"math"
	"math/rand/v2"
	"slices"

	"gonum.org/v1/gonum/stat/distuv"
)

// Interval is a two-sided interval; NaN bounds when there is too little
// data.
type Interval struct {
	Lo float64 `json:"lo"`
	Hi float64 `json:"hi"`
}

func nanInterval() Interval { return Interval{math.NaN(), math.NaN()} }

// meanVar returns the sample mean and (n−1) variance of moments.
func meanVar(n int64, sum, sumSq float64) (float64, float64) {
	if n == 0 {
		return math.NaN(), math.NaN()
	}
	m := sum / float64(n)
	if n < 2 {
		return m, math.NaN()
	}
	v := (sumSq - float64(n)*m*m) / float64(n-1)
	return m, math.Max(v, 0)
}

// TInterval is the Student-t interval of a mean at level 1 − alpha.
func TInterval(n int64, sum, sumSq, alpha float64) Interval {
	m, v := meanVar(n, sum, sumSq)
	if n < 2 {
		return nanInterval()
	}
	q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: float64(n - 1)}.Quantile(1 - alpha/2)
	h := q * math.Sqrt(v/float64(n))
	return Interval{m - h, m + h}
}

// unitMeanVar is an arm's mean outcome ȳ and the variance of that mean,
// robust to outcomes that share a unit: the cluster-robust sandwich with
// Bell and McCaffrey's bias correction (CR2), which for a mean is
// Σ_u (s_u − n_u·ȳ)²/(1 − n_u/N) / N² over the G units' outcome counts
// n_u and sums s_u, N outcomes in all (a unit's residual grows with its
// weight, which pulls ȳ toward itself). With one outcome a unit it is
// s²/N. g is G. Totals without per-unit figures count each outcome as a
// unit.
func unitMeanVar(t *Totals) (mean, v float64, g int64) {
	if t.Units == 0 {
		m, s2 := meanVar(t.N, t.Sum, t.SumSq)
		return m, s2 / float64(t.N), t.N
	}
	m := t.Sum / float64(t.N)
	if t.Units < 2 {
		return m, math.NaN(), t.Units
	}
	return m, t.UnitResid / (float64(t.N) * float64(t.N)), t.Units
}

// effectiveUnits is Kish's effective number of units, N²/Σ n_u²: G when
// every unit gave as many outcomes, far fewer when a few gave most. The
// robust variance leans on the units being many and alike in weight: a
// unit that gave most of the outcomes pulls the mean to itself, and its
// own residual, shrunk, hides its weight.
func effectiveUnits(t *Totals) float64 {
	if t.Units == 0 {
		return float64(t.N)
	}
	if t.UnitNSq == 0 {
		return 0
	}
	return float64(t.N) * float64(t.N) / float64(t.UnitNSq)
}

// unitDF is the degrees of freedom of an arm's unit-robust variance:
// min(G, effective units) − 1.
func unitDF(t *Totals) float64 {
	_, _, g := unitMeanVar(t)
	return math.Floor(math.Min(float64(g), effectiveUnits(t))) - 1
}

// UnitInterval is the t interval of an arm's mean outcome at level
// 1 − alpha, with the unit-robust variance and min(G, effective units) − 1
// degrees of freedom; none with fewer than 2.
func UnitInterval(t *Totals, alpha float64) Interval {
	m, v, _ := unitMeanVar(t)
	df := unitDF(t)
	if df < 1 || math.IsNaN(v) {
		return nanInterval()
	}
	q := distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Quantile(1 - alpha/2)
	h := q * math.Sqrt(v)
	return Interval{m - h, m + h}
}

// Welch is Welch's unequal-variance t-test of mean(a) − mean(b): the t
// statistic, its Welch–Satterthwaite degrees of freedom, and the
// two-sided p-value. It is valid at one fixed sample size only.
type Welch struct {
	T  float64 `json:"t"`
	DF float64 `json:"df"`
	P  float64 `json:"p"`
}

// WelchTest compares two arms' moments.
func WelchTest(na int64, sa, qa float64, nb int64, sb, qb float64) Welch {
	ma, va := meanVar(na, sa, qa)
	mb, vb := meanVar(nb, sb, qb)
	if na < 2 || nb < 2 {
		return Welch{math.NaN(), math.NaN(), math.NaN()}
	}
	return welch(ma, va/float64(na), float64(na-1), mb, vb/float64(nb), float64(nb-1))
}

// UnitWelch is Welch's test of two arms' means with their unit-robust
// variances (unitMeanVar) and degrees of freedom (UnitInterval's): the
// same as WelchTest when every unit gave one outcome.
func UnitWelch(a, b *Totals) Welch {
	ma, ea, _ := unitMeanVar(a)
	mb, eb, _ := unitMeanVar(b)
	dfa, dfb := unitDF(a), unitDF(b)
	if dfa < 1 || dfb < 1 || math.IsNaN(ea) || math.IsNaN(eb) {
		return Welch{math.NaN(), math.NaN(), math.NaN()}
	}
	return welch(ma, ea, dfa, mb, eb, dfb)
}

// welch compares means ma and mb whose variances are ea and eb, with dfa
// and dfb degrees of freedom (Welch–Satterthwaite).
func welch(ma, ea, dfa, mb, eb, dfb float64) Welch {
	se2 := ea + eb
	if se2 == 0 {
		return Welch{math.NaN(), math.NaN(), math.NaN()}
	}
	t := (ma - mb) / math.Sqrt(se2)
	df := se2 * se2 / (ea*ea/dfa + eb*eb/dfb)
	p := 2 * distuv.StudentsT{Mu: 0, Sigma: 1, Nu: df}.Survival(math.Abs(t))
	return Welch{t, df, p}
}

// ConfidenceSequence is the always-valid interval for a difference of
// means d with estimated variance v (of d): the mixture sequential
// probability ratio test of Johari, Pekelis and Walsh ("Always valid
// inference: continuous monitoring of A/B tests"), with a normal mixture
// of variance tau² over the effect. The set of effects θ whose mixture
// likelihood ratio stays below 1/α is
//
//	d ± √( v(v+τ²)/τ² · (2·log(1/α) + log((v+τ²)/v)) ),
//
// which covers the true difference at every sample size at once with
// probability at least 1 − α when v is known and the allocation between
// the arms does not depend on the outcomes. Here v is estimated, so the
// guarantee is asymptotic (the report computes it only from MinOutcomes
// per arm); under Thompson allocation it is a guide, not a guarantee.
func ConfidenceSequence(d, v, tau2, alpha float64) Interval {
	if !(v > 0) || !(tau2 > 0) || math.IsNaN(d) {
		return nanInterval()
	}
	h := math.Sqrt(v * (v + tau2) / tau2 * (2*math.Log(1/alpha) + math.Log((v+tau2)/v)))
	return Interval{d - h, d + h}
}

// Wilson is the Wilson score interval of a proportion at level 1 − alpha.
func Wilson(wins, n int64, alpha float64) Interval {
	if n == 0 {
		return nanInterval()
	}
	z := distuv.UnitNormal.Quantile(1 - alpha/2)
	p, nn := float64(wins)/float64(n), float64(n)
	c := (p + z*z/(2*nn)) / (1 + z*z/nn)
	h := z / (1 + z*z/nn) * math.Sqrt(p*(1-p)/nn+z*z/(4*nn*nn))
	return Interval{c - h, c + h}
}

// thompson returns each arm's share of new units: the posterior chance
// that it has the highest mean outcome (a normal posterior per arm, mean
// and standard error from its moments; arms with fewer than two outcomes
// get the pooled spread), estimated with draws, floored at MinShare.
func thompson(e *Experiment, totals map[string]*Totals, rng *rand.Rand, draws int) []float64 {
	k := len(e.Arms)
	mean, se := make([]float64, k), make([]float64, k)
	var pooled, pn float64
	for _, a := range e.Arms {
		t := totals[a.Name]
		if t != nil && t.N >= 2 {
			_, v := meanVar(t.N, t.Sum, t.SumSq)
			pooled += v * float64(t.N-1)
			pn += float64(t.N - 1)
		}
	}
	sd := 1.0
	if pn > 0 && pooled > 0 {
		sd = math.Sqrt(pooled / pn)
	}
	for i, a := range e.Arms {
		t := totals[a.Name]
		switch {
		case t == nil || t.N == 0:
			mean[i], se[i] = 0, 1e6 // nothing known: any arm may be best
		case t.N < 2:
			mean[i], se[i] = t.Sum, sd
		default:
			m, v := meanVar(t.N, t.Sum, t.SumSq)
			mean[i], se[i] = m, math.Sqrt(math.Max(v, sd*sd*1e-6)/float64(t.N))
		}
	}
	wins := make([]float64, k)
	for range draws {
		best, bi := math.Inf(-1), 0
		for i := range k {
			if x := mean[i] + se[i]*rng.NormFloat64(); x > best {
				best, bi = x, i
			}
		}
		wins[bi]++
	}
	out := make([]float64, k)
	for i := range k {
		out[i] = e.MinShare + (1-float64(k)*e.MinShare)*wins[i]/float64(draws)
	}
	return out
}

// quantileOf reads a quantile off the latency histogram: the upper bound
// of the bucket that holds it (+Inf past the last).
func quantileOf(counts []int64, q float64) float64 {
	var total int64
	for _, c := range counts {
		total += c
	}
	if total == 0 {
		return math.NaN()
	}
	target := int64(math.Ceil(q * float64(total)))
	var acc int64
	for i, c := range counts {
		acc += c
		if acc >= target {
			if i < len(LatencyBuckets) {
				return LatencyBuckets[i]
			}
			return math.Inf(1)
		}
	}
	return math.Inf(1)
}

// sortedMinutes lists the minutes with outcomes, oldest first.
func sortedMinutes(t *Totals) []int64 {
	out := make([]int64, 0, len(t.Minutes))
	for m := range t.Minutes {
		out = append(out, m)
	}
	slices.Sort(out)
	return out
}
