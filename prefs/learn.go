package prefs

import "math"

// Learning tunes the feedback learner.
type Learning struct {
	Rate  float64 // η, the step size
	L2    float64 // λ, the pull toward the route's weights per step
	Bound float64 // every learned weight stays in [−Bound, Bound]
}

// Pair is one observed preference: the candidate with objective vector A
// over the one with B, counted Weight times (1 for a choice, |rating| for
// a rating).
type Pair struct {
	A, B   []float64
	Weight float64
}

// Learn applies the online Bradley–Terry (logistic) update to weights w
// over objectives: under P(a ≻ b) = σ(w·(x_a − x_b)), each pair's
// log-likelihood gradient is c·(1 − σ(w·d))·d, and the L2 term pulls w
// toward anchor with λ·(anchor − w). Each objective's step is η·g over
// √(1 + the sum of its squared gradients so far) (AdaGrad, the sums kept
// in g2): steps shrink as evidence accumulates, so the weights settle
// instead of wandering with the last few choices. The 1 keeps an objective
// whose scores rarely differ (small, rare gradients) from taking full
// steps on the little it has seen. Weights are clipped to ±Bound;
// objectives w lacks start from the anchor.
func (l Learning) Learn(objectives []string, w, anchor, g2 map[string]float64, pairs []Pair) (weights, sq map[string]float64) {
	v := make([]float64, len(objectives))
	a := make([]float64, len(objectives))
	h := make([]float64, len(objectives))
	for i, o := range objectives {
		a[i] = anchor[o]
		v[i] = a[i]
		if x, ok := w[o]; ok {
			v[i] = x
		}
		h[i] = g2[o]
	}
	grad := make([]float64, len(v))
	for _, p := range pairs {
		var s float64
		for i := range v {
			s += v[i] * (p.A[i] - p.B[i])
		}
		c := p.Weight * (1 - sigmoid(s))
		for i := range v {
			grad[i] = c*(p.A[i]-p.B[i]) + l.L2*(a[i]-v[i])
			h[i] += grad[i] * grad[i]
			v[i] += l.Rate * grad[i] / math.Sqrt(1+h[i])
			v[i] = math.Max(-l.Bound, math.Min(l.Bound, v[i]))
		}
	}
	weights = make(map[string]float64, len(objectives))
	sq = make(map[string]float64, len(objectives))
	for i, o := range objectives {
		weights[o] = v[i]
		sq[o] = h[i]
	}
	return weights, sq
}

func sigmoid(x float64) float64 {
	if x >= 0 {
		return 1 / (1 + math.Exp(-x))
	}
	e := math.Exp(x)
	return e / (1 + e)
}

// Apply returns the weights a request uses for a user's preferences: as
// stored, or scaled to unit length with Normalize; objectives the reward
// lacks are left out.
func Apply(p *Preferences, objectives []string) map[string]float64 {
	if p == nil || len(p.Weights) == 0 {
		return nil
	}
	out := map[string]float64{}
	var norm float64
	for _, o := range objectives {
		if v, ok := p.Weights[o]; ok {
			out[o] = v
			norm += v * v
		}
	}
	if p.Normalize && norm > 0 {
		norm = math.Sqrt(norm)
		for o := range out {
			out[o] /= norm
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}
