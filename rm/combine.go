package rm

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
)

// Normalization maps a raw score to (r − mean) / std. With Running, mean and
// std are estimated from the scores seen (Welford), starting from the fixed
// values; FreezeAfter stops updating them after that many scores, so that a
// seeded request scores alike again.
type Normalization struct {
	Mean        float64
	Std         float64
	Running     bool
	FreezeAfter int // 0: never frozen
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
// pushed up without bound (reward hacking). The reference is fixed, or,
// with ReferenceQuantile, that quantile of the scores of one scoring call's
// samples: the candidates for one prompt, so the reference is the prompt's
// own (r_ref(x) of "Transforming and Combining Rewards").
type Transform struct {
	Kind              string
	Reference         float64  // log_sigmoid
	ReferenceQuantile *float64 // log_sigmoid: in [0, 1]; replaces Reference
	Min, Max          float64  // clip
}

func (t Transform) apply(x, ref float64) float64 {
	switch t.Kind {
	case TransformClip:
		return math.Max(t.Min, math.Min(t.Max, x))
	case TransformLogSigmoid:
		z := x - ref
		// log σ(z) = −log(1 + e^−z), computed stably on both sides.
		if z >= 0 {
			return -math.Log1p(math.Exp(-z))
		}
		return z - math.Log1p(math.Exp(z))
	}
	return x
}

// Shaped wraps a rewarder with per-objective normalization and transforms.
// Running statistics are kept per scope (the route: Sample.Scope), and a
// scoring call reads them as they were before it and updates them once,
// after: every sample of a call is normalized alike.
type Shaped struct {
	Rewarder
	norm      []*Normalization // nil: none
	transform []Transform
	mu        sync.Mutex
	stats     map[string][]welford // by scope
}

type welford struct {
	n        float64
	mean, m2 float64
}

func (w *welford) add(x float64) {
	w.n++
	d := x - w.mean
	w.mean += d / w.n
	w.m2 += d * (x - w.mean)
}

// minRunning is how many scores a running estimate needs before it is
// used instead of the fixed mean and std.
const minRunning = 8

// NewShaped wraps r; norm and transform are keyed by objective name.
func NewShaped(r Rewarder, norm map[string]Normalization, transform map[string]Transform) (*Shaped, error) {
	objs := r.Objectives()
	idx := Index(objs)
	s := &Shaped{Rewarder: r, norm: make([]*Normalization, len(objs)), transform: make([]Transform, len(objs)), stats: map[string][]welford{}}
	for name, n := range norm {
		i, ok := idx[name]
		if !ok {
			return nil, fmt.Errorf("normalize: no objective %q (have %v)", name, objs)
		}
		if n.Std <= 0 {
			return nil, fmt.Errorf("normalize %s: std must be positive", name)
		}
		s.norm[i] = &n
	}
	for name, t := range transform {
		i, ok := idx[name]
		if !ok {
			return nil, fmt.Errorf("transform: no objective %q (have %v)", name, objs)
		}
		if q := t.ReferenceQuantile; q != nil && (*q < 0 || *q > 1) {
			return nil, fmt.Errorf("transform %s: reference_quantile must be in [0, 1]", name)
		}
		s.transform[i] = t
	}
	return s, nil
}

// Drifts reports whether scores change as they are seen: a running
// normalization that never freezes.
func (s *Shaped) Drifts() bool {
	for _, n := range s.norm {
		if n != nil && n.Running && n.FreezeAfter == 0 {
			return true
		}
	}
	return false
}

// ID keeps the wrapped model's identity.
func (s *Shaped) ID() string { return IDOf(s.Rewarder) }

// Unwrap returns the shaped reward.
func (s *Shaped) Unwrap() Rewarder { return s.Rewarder }

// meanStd returns what objective i is normalized with in a scope now.
func (s *Shaped) meanStd(scope string, i int) (float64, float64) {
	n := s.norm[i]
	if !n.Running {
		return n.Mean, n.Std
	}
	w := s.stats[scope]
	if w == nil || w[i].n < minRunning {
		return n.Mean, n.Std
	}
	std := math.Sqrt(w[i].m2 / (w[i].n - 1))
	if std <= 0 {
		std = n.Std
	}
	return w[i].mean, std
}

func (s *Shaped) Score(ctx context.Context, samples []Sample) ([][]float32, error) {
	scores, _, err := s.Explain(ctx, samples)
	return scores, err
}

// Explain shapes the wrapped reward's scores and passes its details on.
func (s *Shaped) Explain(ctx context.Context, samples []Sample) ([][]float32, []json.RawMessage, error) {
	raw, details, err := ScoreExplained(ctx, s.Rewarder, samples)
	if err == nil {
		err = CheckShape(raw, len(samples), len(s.norm))
	}
	if err != nil {
		return nil, nil, err
	}
	return s.shape(samples, raw), details, nil
}

// shape normalizes and transforms one call's raw scores.
func (s *Shaped) shape(samples []Sample, raw [][]float32) [][]float32 {
	scope := ""
	if len(samples) > 0 {
		scope = samples[0].Scope
	}
	out := make([][]float32, len(raw))
	vals := make([][]float64, len(s.norm)) // per objective, for quantile references
	s.mu.Lock()
	for j, row := range raw {
		out[j] = make([]float32, len(row))
		for i, x := range row {
			v := Widen(x)
			if s.norm[i] != nil {
				mean, std := s.meanStd(scope, i)
				v = (v - mean) / std
			}
			vals[i] = append(vals[i], v)
		}
	}
	// The statistics learn from this call only after it is normalized.
	for i, n := range s.norm {
		if n == nil || !n.Running {
			continue
		}
		if s.stats[scope] == nil {
			s.stats[scope] = make([]welford, len(s.norm))
		}
		w := &s.stats[scope][i]
		for _, row := range raw {
			// An unusable score (NaN, an empty answer's) teaches the
			// statistics nothing: one would make every later score NaN.
			if v := Widen(row[i]); isFinite(v) && (n.FreezeAfter == 0 || w.n < float64(n.FreezeAfter)) {
				w.add(v)
			}
		}
	}
	s.mu.Unlock()
	for i, t := range s.transform {
		ref := t.Reference
		if t.ReferenceQuantile != nil {
			ref = quantile(vals[i], *t.ReferenceQuantile)
		}
		for j := range out {
			out[j][i] = float32(t.apply(vals[i][j], ref))
		}
	}
	return out
}

// quantile of xs (unsorted), interpolating linearly; unusable values
// (NaN, ±Inf) are left out, and with none left it is NaN.
func quantile(xs []float64, q float64) float64 {
	s := make([]float64, 0, len(xs))
	for _, x := range xs {
		if isFinite(x) {
			s = append(s, x)
		}
	}
	if len(s) == 0 {
		return math.NaN()
	}
	slices.Sort(s)
	pos := q * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(s)-1)
	return s[lo] + (pos-float64(lo))*(s[hi]-s[lo])
}

// Aggregations of an ensemble.
const (
	AggMean         = "mean"
	AggMin          = "min"
	AggMeanMinusStd = "mean_minus_std"
	AggMeanMinusVar = "mean_minus_var"
)

// Ensemble scores with several rewarders. Its columns are every member's
// scores on the shared objectives, named objective@member; the utility
// weighs each member's scores into that member's utility, then aggregates
// the members' utilities: their mean, the worst (min), or the mean minus λ
// times their spread (population standard deviation, mean_minus_std) or
// their variance (mean_minus_var, the uncertainty-weighted objective of
// "Reward Model Ensembles Help Mitigate Overoptimization"). A negative
// weight thus still makes min the most pessimistic member. Members run
// concurrently.
type Ensemble struct {
	name       string
	members    []Rewarder
	names      []string
	objectives []string // shared, in the first member's order
	columns    []string
	cols       [][]int // cols[m][k]: member m's column for objective k
	agg        string
	lambda     float64
}

var _ Grouped = (*Ensemble)(nil)

// NewEnsemble returns an ensemble over the named members for the given
// shared objectives (nil: those every member has, in the first member's
// order).
func NewEnsemble(name string, names []string, members []Rewarder, objectives []string, agg string, lambda float64) (*Ensemble, error) {
	if len(members) < 2 || len(names) != len(members) {
		return nil, fmt.Errorf("ensemble %s: needs at least two named members", name)
	}
	if objectives == nil {
		all := make([][]string, len(members))
		for i, m := range members {
			all[i] = m.Objectives()
		}
		objectives = SharedObjectives(all)
	}
	if len(objectives) == 0 {
		return nil, fmt.Errorf("ensemble %s: its members %v share no objective", name, names)
	}
	e := &Ensemble{name: name, members: members, names: names, objectives: objectives, agg: agg, lambda: lambda}
	for mi, m := range members {
		idx := Index(m.Objectives())
		cols := make([]int, len(objectives))
		for k, o := range objectives {
			c, ok := idx[o]
			if !ok {
				return nil, fmt.Errorf("ensemble %s: member %s has no objective %q", name, names[mi], o)
			}
			cols[k] = c
			e.columns = append(e.columns, o+"@"+names[mi])
		}
		e.cols = append(e.cols, cols)
	}
	switch agg {
	case AggMean, AggMin, AggMeanMinusStd, AggMeanMinusVar:
	default:
		return nil, fmt.Errorf("ensemble %s: aggregate must be mean, min, mean_minus_std or mean_minus_var", name)
	}
	return e, nil
}

// Objectives are the columns, objective@member, member by member.
func (e *Ensemble) Objectives() []string { return e.columns }

// Grouping tells the utility how the columns form members.
func (e *Ensemble) Grouping() Grouping {
	return Grouping{Objectives: e.objectives, Members: e.names, Combine: func(us []float64) float64 { return aggregate(us, e.agg, e.lambda) }}
}

func (e *Ensemble) ID() string {
	id := "ensemble:" + e.name + "(" + e.agg + fmt.Sprintf(",%g", e.lambda)
	for _, m := range e.members {
		id += "," + IDOf(m)
	}
	return id + ")"
}

func (e *Ensemble) Score(ctx context.Context, samples []Sample) ([][]float32, error) {
	scores, _, err := e.Explain(ctx, samples)
	return scores, err
}

// Explain scores with every member at once; a sample's detail is its
// members' details by member name.
func (e *Ensemble) Explain(ctx context.Context, samples []Sample) ([][]float32, []json.RawMessage, error) {
	scores := make([][][]float32, len(e.members))
	whys := make([][]json.RawMessage, len(e.members))
	errs := make([]error, len(e.members))
	var wg sync.WaitGroup
	for i, m := range e.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			scores[i], whys[i], errs[i] = ScoreExplained(ctx, m, samples)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err == nil {
			err = CheckShape(scores[i], len(samples), len(e.members[i].Objectives()))
		}
		if err != nil {
			return nil, nil, err
		}
	}
	var details []json.RawMessage
	for j := range samples {
		by := map[string]json.RawMessage{}
		for m := range e.members {
			if d := detailOf(whys[m], j); d != nil {
				by[e.names[m]] = d
			}
		}
		if len(by) > 0 {
			if details == nil {
				details = make([]json.RawMessage, len(samples))
			}
			details[j], _ = json.Marshal(by)
		}
	}
	k := len(e.objectives)
	out := make([][]float32, len(samples))
	for j := range samples {
		out[j] = make([]float32, len(e.columns))
		for m := range e.members {
			for o := range k {
				out[j][m*k+o] = scores[m][j][e.cols[m][o]]
			}
		}
	}
	return out, details, nil
}

func aggregate(v []float64, agg string, lambda float64) float64 {
	var mean float64
	for _, x := range v {
		mean += x
	}
	mean /= float64(len(v))
	var variance float64
	for _, x := range v {
		variance += (x - mean) * (x - mean)
	}
	variance /= float64(len(v))
	switch agg {
	case AggMin:
		return slices.Min(v)
	case AggMeanMinusStd:
		return mean - lambda*math.Sqrt(variance)
	case AggMeanMinusVar:
		return mean - lambda*variance
	}
	return mean
}

// Grouping describes a reward whose columns are several members' scores on
// the same objectives: column m·K + k is member m's score on objective k.
type Grouping struct {
	Objectives []string // the K objectives weights name
	Members    []string
	Combine    func(memberUtilities []float64) float64
}

// Grouped rewards have members whose utilities combine into one.
type Grouped interface {
	Grouping() Grouping
}

// Gated rewards have K objective columns followed by K gate columns: a
// gating network's prompt-dependent coefficients for the objectives
// (ArmoRM). GatedObjectives are the K objectives.
type Gated interface {
	GatedObjectives() []string
}

// GateColumn names the column of an objective's gate coefficient.
func GateColumn(objective string) string { return "gate:" + objective }

// WeightedObjectives are the objective names a reward's weights may name:
// an ensemble's shared objectives, a gated model's objectives (not its
// gates), else its columns.
func WeightedObjectives(r Rewarder) []string {
	if g, ok := As[Grouped](r); ok {
		return g.Grouping().Objectives
	}
	if g, ok := As[Gated](r); ok {
		return g.GatedObjectives()
	}
	return r.Objectives()
}

// Utility combines objective scores under weights: Σ w_k·r_k (for a grouped
// reward, per member, then combined; for a gated one, Σ w_k·g_k·r_k with
// g_k the model's gate for objective k), minus a length penalty of
// LengthPenalty per token beyond LengthFree tokens (the length-bias
// control: long answers must earn their length).
type Utility struct {
	Weights       map[string]float64
	LengthPenalty float64
	LengthFree    int
	Group         *Grouping // set for grouped rewards
	Gates         int       // K for gated rewards: columns K..2K−1 gate columns 0..K−1
}

// UtilityFor returns the utility over reward r's columns.
func UtilityFor(r Rewarder, weights map[string]float64, penalty float64, free int) Utility {
	u := Utility{Weights: weights, LengthPenalty: penalty, LengthFree: free}
	if g, ok := As[Grouped](r); ok {
		gr := g.Grouping()
		u.Group = &gr
	}
	if g, ok := As[Gated](r); ok {
		u.Gates = len(g.GatedObjectives())
	}
	return u
}

// Of returns the utility of one sample's scores over the reward's columns;
// tokens is its length.
func (u Utility) Of(columns []string, scores []float32, tokens int) float64 {
	var total float64
	switch {
	case u.Gates > 0:
		for i, o := range columns[:u.Gates] {
			if w := u.Weights[o]; w != 0 {
				total += w * Widen(scores[u.Gates+i]) * Widen(scores[i])
			}
		}
	case u.Group == nil:
		for i, o := range columns {
			if w := u.Weights[o]; w != 0 {
				total += w * Widen(scores[i])
			}
		}
	default:
		k := len(u.Group.Objectives)
		members := make([]float64, len(u.Group.Members))
		for m := range members {
			for o, name := range u.Group.Objectives {
				if w := u.Weights[name]; w != 0 {
					members[m] += w * Widen(scores[m*k+o])
				}
			}
		}
		total = u.Group.Combine(members)
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

// isFinite reports a usable score: neither NaN nor infinite.
func isFinite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }
