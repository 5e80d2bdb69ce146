package experiment

import (
	"context"
	"math"
	"time"
)

// LatencyBuckets are the upper bounds (seconds) of the latency histogram
// kept per arm; the last bucket is everything slower.
var LatencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}

// Observation is one thing to add to an arm's totals; zero fields add
// nothing.
type Observation struct {
	Request bool          // a request was served (or failed)
	Error   bool          // it failed
	Tokens  int           // backend tokens it spent
	Samples int           // samples it drew
	Latency time.Duration // its wall time, with Request
	Outcome *float64      // one outcome value (an evaluation or a rating)
	// OutcomeTokens are the backend tokens of the response the outcome
	// is about, kept beside it among the recent outcomes (not added to
	// Tokens).
	OutcomeTokens int
	// Unit is the user the outcome is about, under unit user, so that many
	// outcomes of one user count as that, not as many independent ones;
	// "" an outcome of its own (a request's, under unit request).
	Unit     string
	Feedback int // +1 a win, −1 a loss in feedback
}

// Totals are an arm's sums, as every replica added them.
type Totals struct {
	Requests int64   `json:"requests"`
	Errors   int64   `json:"errors"`
	Tokens   int64   `json:"tokens"`
	Samples  int64   `json:"samples"`
	LatSum   float64 `json:"latency_sum_s"`
	Latency  []int64 `json:"latency_buckets"` // counts per LatencyBuckets, then the rest
	N        int64   `json:"outcomes"`
	Sum      float64 `json:"outcome_sum"`
	SumSq    float64 `json:"outcome_sum_sq"`
	Wins     int64   `json:"feedback_wins"`
	Losses   int64   `json:"feedback_losses"`
	// Per unit, for intervals that hold when a unit gives many outcomes,
	// filled only where Totals is asked for them: how many units gave an
	// outcome, Σ_u n_u² over their outcome counts n_u (for the effective
	// number of units), and UnitResid, Σ_u (s_u − n_u·ȳ)²/(1 − n_u/N) over
	// their sums s_u (the CR2 meat of the mean). Outcomes whose unit is
	// not known (recorded before units were, or whose unit's record was
	// lost) count as one unit together: the worst case for them. Units 0
	// with outcomes: each outcome taken as its own unit.
	Units     int64   `json:"units"`
	UnitNSq   int64   `json:"unit_n_sq"`
	UnitResid float64 `json:"unit_resid"`
	// Minutes are the outcome moments added in each minute (Unix
	// minute → moments), for the history of the intervals.
	Minutes map[int64]*Moments `json:"-"`
	// Recent are the latest outcomes, newest first, at most MaxRecent:
	// what histograms and reward-against-cost plots draw.
	Recent []Recent `json:"-"`
}

// MaxRecent bounds the recent outcomes kept per arm.
const MaxRecent = 500

// Recent is one outcome with the backend tokens its response spent.
type Recent struct {
	Outcome float64 `json:"outcome"`
	Tokens  int     `json:"tokens"`
}

// Moments are outcome count, sum and sum of squares.
type Moments struct {
	N          int64
	Sum, SumSq float64
}

// Store keeps the arms' totals, shared by every replica that uses it.
type Store interface {
	Record(ctx context.Context, experiment, arm string, o Observation) error
	// Totals reads the arms' totals; with units, their per-unit sums
	// too (a read that grows with the units).
	Totals(ctx context.Context, experiment string, arms []string, units bool) (map[string]*Totals, error)
	// Sticky stores arm as the unit's if it has none, and returns the
	// unit's arm.
	Sticky(ctx context.Context, experiment, tenant, unit, arm string, ttl time.Duration) (string, error)
}

// fillUnits sets t's per-unit figures from the outcomes of their own
// (single) and each unit's count and sum (units calls yield for each);
// what the arm counted beyond them is one unit more.
func fillUnits(t *Totals, single Moments, units func(yield func(n int64, s float64))) {
	t.Units, t.UnitNSq, t.UnitResid = 0, 0, 0
	if t.N == 0 {
		return
	}
	nf, mean := float64(t.N), t.Sum/float64(t.N)
	one := func(n int64, s float64) {
		t.Units++
		t.UnitNSq += n * n
		if n < t.N {
			r := s - float64(n)*mean
			t.UnitResid += r * r / (1 - float64(n)/nf)
		}
	}
	// Outcomes of their own, each a unit: Σ (y − ȳ)² over 1 − 1/N.
	if single.N > 0 {
		t.Units += single.N
		t.UnitNSq += single.N
		if t.N > 1 {
			t.UnitResid += math.Max(single.SumSq-2*mean*single.Sum+mean*mean*float64(single.N), 0) / (1 - 1/nf)
		}
	}
	tracked, trackedSum := single.N, single.Sum
	units(func(n int64, s float64) {
		if n > 0 {
			one(n, s)
			tracked, trackedSum = tracked+n, trackedSum+s
		}
	})
	if n := t.N - tracked; n > 0 {
		one(n, t.Sum-trackedSum)
	}
}

func bucket(d time.Duration) int {
	s := d.Seconds()
	for i, b := range LatencyBuckets {
		if s <= b {
			return i
		}
	}
	return len(LatencyBuckets)
}
