package experiment

import (
	"context"
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
	// Per unit, for intervals that hold when a unit gives many outcomes:
	// how many units gave one, and Σ s_u², Σ n_u·s_u and Σ n_u² over the
	// units' outcome counts n_u and sums s_u; filled only where Totals is
	// asked for them. Outcomes whose unit is not known (recorded before
	// units were, or whose unit's record failed) count as one unit
	// together: the worst case for them. Units 0 with outcomes: each
	// outcome taken as its own unit.
	Units     int64   `json:"units"`
	UnitSq    float64 `json:"unit_sum_sq"`
	UnitCross float64 `json:"unit_cross"`
	UnitNSq   int64   `json:"unit_n_sq"`
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

// unitStep is what one outcome y adds to the per-unit sums, its unit
// having had n outcomes summing to s before it.
type unitStep struct {
	newUnit bool
	dSq     float64 // (s+y)² − s²
	dCross  float64 // (n+1)(s+y) − n·s
	dNSq    int64   // (n+1)² − n²
}

func stepOf(n int64, s, y float64) unitStep {
	return unitStep{newUnit: n == 0, dSq: 2*s*y + y*y, dCross: float64(n)*y + s + y, dNSq: 2*n + 1}
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
