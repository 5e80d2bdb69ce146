package rm

import "math"

// LogNormalizer is log Σ exp(x) over logits, computed stably; a logit
// minus it is its log-probability.
func LogNormalizer(logits []float32) float64 {
	m := math.Inf(-1)
	for _, x := range logits {
		m = math.Max(m, float64(x))
	}
	if math.IsInf(m, -1) {
		return m
	}
	var sum float64
	for _, x := range logits {
		sum += math.Exp(float64(x) - m)
	}
	return m + math.Log(sum)
}

// LogSoftmax returns the log-probabilities of logits.
func LogSoftmax(logits []float32) []float64 {
	z := LogNormalizer(logits)
	out := make([]float64, len(logits))
	for i, x := range logits {
		out[i] = float64(x) - z
	}
	return out
}

// LogSumExp is log Σ exp(x), computed stably; −Inf for no terms.
func LogSumExp(xs ...float64) float64 {
	m := math.Inf(-1)
	for _, x := range xs {
		m = math.Max(m, x)
	}
	if math.IsInf(m, 0) {
		return m
	}
	var sum float64
	for _, x := range xs {
		sum += math.Exp(x - m)
	}
	return m + math.Log(sum)
}
