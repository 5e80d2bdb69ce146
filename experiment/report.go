package experiment

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Num is a number that encodes NaN and infinities as null.
type Num float64

func (n Num) MarshalJSON() ([]byte, error) {
	f := float64(n)
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return []byte("null"), nil
	}
	return strconv.AppendFloat(nil, f, 'g', 6, 64), nil
}

// MarshalJSON writes null bounds when there is too little data.
func (i Interval) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Lo Num `json:"lo"`
		Hi Num `json:"hi"`
	}{Num(i.Lo), Num(i.Hi)})
}

// Report is an experiment's results as GET /v1/experiments/{name} shows
// them.
type Report struct {
	Name       string             `json:"name"`
	State      string             `json:"state"`
	Models     []string           `json:"models"`
	Unit       string             `json:"unit"`
	Outcome    string             `json:"outcome"`
	Reward     string             `json:"outcome_reward,omitempty"`
	Control    string             `json:"control"`
	Allocation string             `json:"allocation"`
	Shares     map[string]float64 `json:"shares"` // of new units now
	Alpha      float64            `json:"alpha"`
	Arms       []ArmReport        `json:"arms"`
	Verdict    string             `json:"verdict"`
}

// ArmReport is one arm's figures.
type ArmReport struct {
	Name      string          `json:"name"`
	Control   bool            `json:"control,omitempty"`
	Weight    float64         `json:"weight"`
	Steering  json.RawMessage `json:"steering,omitempty"` // laid over the route's`
	Requests  int64           `json:"requests"`
	Errors    int64           `json:"errors"`
	ErrorRate Num             `json:"error_rate"`
	Outcome   OutcomeSum      `json:"outcome"`
	// Diff compares the arm with control (absent for control).
	Diff     *Diff         `json:"difference,omitempty"`
	Feedback FeedbackSum   `json:"feedback"`
	Cost     Cost          `json:"cost"`
	Series   []SeriesPoint `json:"series"`
	// Recent are the latest outcomes with their responses' tokens, newest
	// first: the histograms and reward-against-cost plots.
	Recent []Recent `json:"recent"`
}

// OutcomeSum is an arm's mean outcome with its t interval, robust to
// units that give many outcomes.
type OutcomeSum struct {
	N     int64    `json:"n"`
	Units int64    `json:"units"` // how many units gave them
	Mean  Num      `json:"mean"`
	SD    Num      `json:"sd"`
	CI    Interval `json:"ci"`
}

// Diff is an arm's difference from control: the always-valid confidence
// sequence that the verdict reads, and Welch's test beside it (valid only
// at a sample size fixed in advance).
type Diff struct {
	Estimate Num      `json:"estimate"`
	CS       Interval `json:"confidence_sequence"`
	Welch    struct {
		T  Num `json:"t"`
		DF Num `json:"df"`
		P  Num `json:"p"`
	} `json:"welch"`
	Verdict string `json:"verdict"` // better, worse, undecided, or too few outcomes
}

// FeedbackSum is an arm's feedback wins and losses.
type FeedbackSum struct {
	Wins    int64    `json:"wins"`
	Losses  int64    `json:"losses"`
	WinRate Num      `json:"win_rate"`
	CI      Interval `json:"ci"`
}

// Cost is what an arm spends per request.
type Cost struct {
	TokensPerRequest  Num `json:"tokens_per_request"`
	SamplesPerRequest Num `json:"samples_per_request"`
	LatencyMeanS      Num `json:"latency_mean_s"`
	LatencyP50S       Num `json:"latency_p50_s"` // upper bound of its histogram bucket
	LatencyP95S       Num `json:"latency_p95_s"`
}

// SeriesPoint is an arm's cumulative outcome at the end of one minute.
type SeriesPoint struct {
	T    int64    `json:"t"` // Unix seconds
	N    int64    `json:"n"`
	Mean Num      `json:"mean"`
	CI   Interval `json:"ci"`
}

// maxPoints bounds a series; older minutes merge into fewer points.
const maxPoints = 240

// Summarize computes the report from the arms' totals.
func Summarize(e *Experiment, totals map[string]*Totals, shares []float64) *Report {
	r := &Report{Name: e.Name, State: map[bool]string{true: "running", false: "stopped"}[e.Running], Unit: e.Unit,
		Outcome: e.Outcome, Reward: e.Reward, Control: e.Control, Alpha: e.Alpha, Shares: map[string]float64{},
		Allocation: map[bool]string{true: "thompson", false: "fixed"}[e.Thompson]}
	r.Models = slices.Sorted(maps.Keys(e.Models))
	var total float64
	for _, w := range shares {
		total += w
	}
	for i, a := range e.Arms {
		r.Shares[a.Name] = shares[i] / total
	}
	c := totals[e.Control]
	var decided []string
	for _, a := range e.Arms {
		t := totals[a.Name]
		ar := ArmReport{Name: a.Name, Control: a.Name == e.Control, Weight: a.Weight, Steering: a.Steering, Requests: t.Requests, Errors: t.Errors, ErrorRate: ratio(t.Errors, t.Requests)}
		m, v := meanVar(t.N, t.Sum, t.SumSq)
		_, _, g := unitMeanVar(t)
		ar.Outcome = OutcomeSum{N: t.N, Units: g, Mean: Num(m), SD: Num(math.Sqrt(v)), CI: UnitInterval(t, e.Alpha)}
		if !ar.Control {
			ar.Diff = diff(e, t, c)
			if ar.Diff.Verdict == "better" || ar.Diff.Verdict == "worse" {
				decided = append(decided, fmt.Sprintf("%s is %s than %s", a.Name, ar.Diff.Verdict, e.Control))
			}
		}
		fb := t.Wins + t.Losses
		ar.Feedback = FeedbackSum{Wins: t.Wins, Losses: t.Losses, WinRate: ratio(t.Wins, fb), CI: Wilson(t.Wins, fb, e.Alpha)}
		ar.Cost = Cost{TokensPerRequest: ratio(t.Tokens, t.Requests), SamplesPerRequest: ratio(t.Samples, t.Requests),
			LatencyMeanS: Num(t.LatSum / float64(t.Requests)), LatencyP50S: Num(quantileOf(t.Latency, 0.5)), LatencyP95S: Num(quantileOf(t.Latency, 0.95))}
		ar.Series = series(t, e.Alpha)
		ar.Recent = t.Recent
		if ar.Recent == nil {
			ar.Recent = []Recent{}
		}
		r.Arms = append(r.Arms, ar)
	}
	if len(decided) == 0 {
		r.Verdict = fmt.Sprintf("no verdict yet: no arm's always-valid confidence sequence for its difference from %s excludes 0 "+
			"(or it has outcomes from fewer than %d units)", e.Control, MinOutcomes)
	} else {
		r.Verdict = strings.Join(decided, "; ") + fmt.Sprintf(" (always-valid confidence sequence excludes 0; at most %g chance of any false verdict)", e.Alpha)
	}
	return r
}

// MinOutcomes is how many units' outcomes each of two arms needs before
// their confidence sequence is computed, counted as effective units
// (Kish's N²/Σ n_u², so that one user with most of the outcomes is not
// thirty): with a variance estimated from fewer, the boundary's
// asymptotic guarantee does not hold (a run of equal ratings reads as no
// variance at all).
const MinOutcomes = 30

// diff compares an arm's outcomes with control's. The confidence sequence
// runs at α/(k−1) for k arms (Bonferroni), so that the chance of any false
// verdict across the comparisons stays within α; the variance of each
// arm's mean is the unit-robust one (unitMeanVar), and at least half the
// pooled outcome variance over its outcomes, so that an arm whose outcomes
// happen to agree does not pass for a certain one.
func diff(e *Experiment, t, c *Totals) *Diff {
	d := &Diff{Verdict: "undecided"}
	ma, va := meanVar(t.N, t.Sum, t.SumSq)
	mc, vc := meanVar(c.N, c.Sum, c.SumSq)
	d.Estimate = Num(ma - mc)
	w := UnitWelch(t, c)
	d.Welch.T, d.Welch.DF, d.Welch.P = Num(w.T), Num(w.DF), Num(w.P)
	d.CS = nanInterval()
	_, vma, ga := unitMeanVar(t)
	_, vmc, gc := unitMeanVar(c)
	if ga < MinOutcomes || gc < MinOutcomes || effectiveUnits(t) < MinOutcomes || effectiveUnits(c) < MinOutcomes {
		d.Verdict = "too few outcomes"
		return d
	}
	pooled := (va*float64(t.N-1) + vc*float64(c.N-1)) / float64(t.N+c.N-2)
	v := max(vma, pooled/2/float64(t.N)) + max(vmc, pooled/2/float64(c.N))
	tau := e.MixingSD * math.Sqrt(pooled)
	d.CS = ConfidenceSequence(ma-mc, v, tau*tau, e.Alpha/float64(max(1, len(e.Arms)-1)))
	switch {
	case d.CS.Lo > 0:
		d.Verdict = "better"
	case d.CS.Hi < 0:
		d.Verdict = "worse"
	}
	return d
}

// series is the arm's cumulative mean and interval minute by minute.
func series(t *Totals, alpha float64) []SeriesPoint {
	mins := sortedMinutes(t)
	step := (len(mins) + maxPoints - 1) / maxPoints
	var out []SeriesPoint
	var n int64
	var sum, sq float64
	for i, m := range mins {
		mm := t.Minutes[m]
		n, sum, sq = n+mm.N, sum+mm.Sum, sq+mm.SumSq
		if step > 1 && (i+1)%step != 0 && i != len(mins)-1 {
			continue
		}
		mean, _ := meanVar(n, sum, sq)
		out = append(out, SeriesPoint{T: (m + 1) * 60, N: n, Mean: Num(mean), CI: TInterval(n, sum, sq, alpha)})
	}
	return out
}

func ratio(a, b int64) Num {
	if b == 0 {
		return Num(math.NaN())
	}
	return Num(float64(a) / float64(b))
}
