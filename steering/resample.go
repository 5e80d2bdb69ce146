package steering

import (
	"math"
	"math/rand/v2"
)

// Resampling schemes.
const (
	resampleSystematic  = "systematic"
	resampleMultinomial = "multinomial"
	resampleStratified  = "stratified"
)

// weightsOf turns log-weights into weights summing to 1 (computed from
// the largest, so that large log-weights do not overflow). Weights of −Inf
// are 0; if every one is, all are equal.
func weightsOf(logw []float64) []float64 {
	top := math.Inf(-1)
	for _, l := range logw {
		top = math.Max(top, l)
	}
	w := make([]float64, len(logw))
	if math.IsInf(top, -1) || math.IsNaN(top) {
		for i := range w {
			w[i] = 1 / float64(len(w))
		}
		return w
	}
	if math.IsInf(top, 1) { // overflowed: those at +Inf share the weight
		n := 0
		for _, l := range logw {
			if math.IsInf(l, 1) {
				n++
			}
		}
		for i, l := range logw {
			if math.IsInf(l, 1) {
				w[i] = 1 / float64(n)
			}
		}
		return w
	}
	var sum float64
	for i, l := range logw {
		w[i] = math.Exp(l - top)
		sum += w[i]
	}
	for i := range w {
		w[i] /= sum
	}
	return w
}

// ESS is the effective sample size of weights: (Σw)² / Σw², between 1
// (one particle carries all the weight) and len(w) (equal weights).
func ESS(w []float64) float64 {
	var s, s2 float64
	for _, x := range w {
		s += x
		s2 += x * x
	}
	if s2 == 0 {
		return 0
	}
	return s * s / s2
}

// Systematic draws n ancestors from normalized weights w with one uniform
// u in [0, 1): the points (u + i)/n, each taking the particle whose share
// of the cumulative weight holds it. Given u it is deterministic, and
// particle j is drawn ⌊n·w_j⌋ or ⌈n·w_j⌉ times.
func Systematic(w []float64, n int, u float64) []int {
	points := make([]float64, n)
	for i := range points {
		points[i] = (u + float64(i)) / float64(n)
	}
	return pick(w, points)
}

// Stratified is Systematic with its own uniform in each stratum.
func Stratified(w []float64, n int, rng *rand.Rand) []int {
	points := make([]float64, n)
	for i := range points {
		points[i] = (rng.Float64() + float64(i)) / float64(n)
	}
	return pick(w, points)
}

// Multinomial draws n ancestors independently.
func Multinomial(w []float64, n int, rng *rand.Rand) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = pick(w, []float64{rng.Float64()})[0]
	}
	return out
}

// pick maps sorted points in [0, 1) through the cumulative weights.
func pick(w []float64, points []float64) []int {
	out := make([]int, len(points))
	j, cum := 0, w[0]
	for i, p := range points {
		for p >= cum && j < len(w)-1 {
			j++
			cum += w[j]
		}
		out[i] = j
	}
	return out
}

// resample draws n ancestors by the named scheme.
func resample(scheme string, w []float64, n int, rng *rand.Rand) []int {
	switch scheme {
	case resampleMultinomial:
		return Multinomial(w, n, rng)
	case resampleStratified:
		return Stratified(w, n, rng)
	}
	return Systematic(w, n, rng.Float64())
}
