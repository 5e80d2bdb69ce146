package rm

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
)

// Normalization maps a raw score to (r − mean) / std. With Running, mean and
// std are estimated from every score seen so far (Welford), starting from
// the fixed values, so a reward is read relative to its own running
// calibration.
type Normalization struct {
	Mean    float64
	Std     float64
	Running bool
}

// Transform kinds.
const (
	TransformIdentity   = "identity"
	TransformClip       = "clip"
	TransformLogSigmoid = "log_sigmoid"
)

// Transform shapes a (normalized) score. log_sigmoid(r − reference) is ≤ 0
// and saturates above the reference, so a sum of transformed objectives is
// high only when every objective is good, and no single objective can be
// pushed up without bound (reward hacking).
type Transform struct {
	Kind      string
	Reference float64 // log_sigmoid
	Min, Max  float64 // clip
}

func (t Transform) apply(x float64) float64 {
	switch t.Kind {
	case TransformClip:
		return math.Max(t.Min, math.Min(t.Max, x))
	case TransformLogSigmoid:
		z := x - t.Reference
		// log σ(z) = −log(1 + e^−z), computed stably on both sides.
		if z >= 0 {
			return -math.Log1p(math.Exp(-z))
		}
		return z - math.Log1p(math.Exp(z))
	}
	return x
}

// Shaped wraps a rewarder with per-objective normalization and transforms.
type Shaped struct {
	Rewarder
	norm      []*Normalization // nil: none
	transform []Transform
	mu        sync.Mutex
	stats     []welford
}

type welford struct {
	n        float64
	mean, m2 float64
	seedMean float64
	seedStd  float64
}

func (w *welford) add(x float64) {
	w.n++
	d := x - w.mean
	w.mean += d / w.n
	w.m2 += d * (x - w.mean)
}

// current returns the running mean and std, falling back to the fixed values
// until enough scores were seen.
func (w *welford) current() (float64, float64) {
	if w.n < 8 {
		return w.seedMean, w.seedStd
	}
	return w.mean, math.Sqrt(w.m2 / (w.n - 1))
}

// NewShaped wraps r; norm and transform are keyed by objective name.
func NewShaped(r Rewarder, norm map[string]Normalization, transform map[string]Transform) (*Shaped, error) {
	objs := r.Objectives()
	idx := Index(objs)
	s := &Shaped{Rewarder: r, norm: make([]*Normalization, len(objs)), transform: make([]Transform, len(objs)), stats: make([]welford, len(objs))}
	for name, n := range norm {
		i, ok := idx[name]
		if !ok {
			return nil, fmt.Errorf("normalize: no objective %q (have %v)", name, objs)
		}
		if n.Std <= 0 {
			return nil, fmt.Errorf("normalize %s: std must be positive", name)
		}
		n := n
		s.norm[i] = &n
		s.stats[i] = welford{seedMean: n.Mean, seedStd: n.Std}
	}
	for name, t := range transform {
		i, ok := idx[name]
		if !ok {
			return nil, fmt.Errorf("transform: no objective %q (have %v)", name, objs)
		}
		s.transform[i] = t
	}
	return s, nil
}

// ID keeps the wrapped model's identity: shaping is deterministic per
// config, and the cache key of a shaped reward includes its config.
func (s *Shaped) ID() string { return IDOf(s.Rewarder) }

func (s *Shaped) Score(ctx context.Context, samples []Sample) ([][]float32, error) {
	raw, err := s.Rewarder.Score(ctx, samples)
	if err == nil {
		err = CheckShape(raw, len(samples), len(s.norm))
	}
	if err != nil {
		return nil, err
	}
	out := make([][]float32, len(raw))
	s.mu.Lock()
	defer s.mu.Unlock()
	for j, row := range raw {
		out[j] = make([]float32, len(row))
		for i, x := range row {
			v := float64(x)
			if n := s.norm[i]; n != nil {
				mean, std := n.Mean, n.Std
				if n.Running {
					mean, std = s.stats[i].current()
					s.stats[i].add(v)
					if std <= 0 {
						std = n.Std
					}
				}
				v = (v - mean) / std
			}
			out[j][i] = float32(s.transform[i].apply(v))
		}
	}
	return out, nil
}

// Aggregations of an ensemble.
const (
	AggMean         = "mean"
	AggMin          = "min"
	AggMeanMinusStd = "mean_minus_std"
)

// Ensemble scores with several rewarders and combines their scores per
// objective: the mean, the worst case (min), or the mean minus λ times the
// spread (uncertainty-weighted). Members must share the ensemble's
// objectives (each may have more). Members run concurrently.
type Ensemble struct {
	name       string
	members    []Rewarder
	objectives []string
	cols       [][]int // cols[m][k]: member m's column for objective k
	agg        string
	lambda     float64
}

// NewEnsemble returns an ensemble over members for the named objectives
// (nil: those every member has, in the first member's order).
func NewEnsemble(name string, members []Rewarder, objectives []string, agg string, lambda float64) (*Ensemble, error) {
	if len(members) < 2 {
		return nil, fmt.Errorf("ensemble %s: needs at least two members", name)
	}
	if objectives == nil {
		all := make([][]string, len(members))
		for i, m := range members {
			all[i] = m.Objectives()
		}
		objectives = SharedObjectives(all)
	}
	if len(objectives) == 0 {
		return nil, fmt.Errorf("ensemble %s: its members share no objective", name)
	}
	e := &Ensemble{name: name, members: members, objectives: objectives, agg: agg, lambda: lambda}
	for mi, m := range members {
		idx := Index(m.Objectives())
		cols := make([]int, len(objectives))
		for k, o := range objectives {
			c, ok := idx[o]
			if !ok {
				return nil, fmt.Errorf("ensemble %s: member %d has no objective %q", name, mi, o)
			}
			cols[k] = c
		}
		e.cols = append(e.cols, cols)
	}
	switch agg {
	case AggMean, AggMin, AggMeanMinusStd:
	default:
		return nil, fmt.Errorf("ensemble %s: aggregate must be mean, min or mean_minus_std", name)
	}
	return e, nil
}

func (e *Ensemble) Objectives() []string { return e.objectives }

func (e *Ensemble) ID() string {
	id := "ensemble:" + e.name + "(" + e.agg + fmt.Sprintf(",%g", e.lambda)
	for _, m := range e.members {
		id += "," + IDOf(m)
	}
	return id + ")"
}

func (e *Ensemble) Score(ctx context.Context, samples []Sample) ([][]float32, error) {
	scores := make([][][]float32, len(e.members))
	errs := make([]error, len(e.members))
	var wg sync.WaitGroup
	for i, m := range e.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scores[i], errs[i] = m.Score(ctx, samples)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			err = CheckShape(scores[i], len(samples), len(e.members[i].Objectives()))
		}
		if err != nil {
			return nil, err
		}
	}
	out := make([][]float32, len(samples))
	vals := make([]float64, len(e.members))
	for j := range samples {
		out[j] = make([]float32, len(e.objectives))
		for k := range e.objectives {
			for m := range e.members {
				vals[m] = float64(scores[m][j][e.cols[m][k]])
			}
			out[j][k] = float32(aggregate(vals, e.agg, e.lambda))
		}
	}
	return out, nil
}

func aggregate(v []float64, agg string, lambda float64) float64 {
	var mean float64
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	switch agg {
	case AggMin:
		m := v[0]
		for _, x := range v[1:] {
			m = math.Min(m, x)
		}
		return m
	case AggMeanMinusStd:
		var ss float64
		for _, x := range v {
			ss += (x - mean) * (x - mean)
		}
		return mean - lambda*math.Sqrt(ss/float64(len(v)))
	}
	return mean
}

// Utility combines objective scores under weights: Σ w_k·r_k, minus a
// length penalty of LengthPenalty per token beyond LengthFree tokens (the
// length-bias control: long answers must earn their length).
type Utility struct {
	Weights       map[string]float64
	LengthPenalty float64
	LengthFree    int
}

// Of returns the utility of one sample's scores; tokens is its length.
func (u Utility) Of(objectives []string, scores []float32, tokens int) float64 {
	var total float64
	for i, o := range objectives {
		if w := u.Weights[o]; w != 0 {
			total += w * Widen(scores[i])
		}
	}
	if over := tokens - u.LengthFree; u.LengthPenalty > 0 && over > 0 {
		total -= u.LengthPenalty * float64(over)
	}
	return total
}

// Widen converts a model's float32 score to float64 through its shortest
// decimal, so that 1.54f reads as 1.54, not 1.5399999618530273.
func Widen(x float32) float64 {
	v, err := strconv.ParseFloat(strconv.FormatFloat(float64(x), 'g', -1, 32), 64)
	if err != nil {
		return float64(x)
	}
	return v
}

// SharedObjectives are the objectives every member has, in the first
// member's order.
func SharedObjectives(members [][]string) []string {
	if len(members) == 0 {
		return nil
	}
	var out []string
	for _, o := range members[0] {
		all := true
		for _, m := range members[1:] {
			if !slices.Contains(m, o) {
				all = false
			}
		}
		if all {
			out = append(out, o)
		}
	}
	return out
}
