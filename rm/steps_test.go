package rm_test

import (
	"context"
	"encoding/json"
	"math"
	"testing"
	"time"

	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
)

// Step rules against values computed by hand, on steps 0.9, 0.4, 0.7.
func TestStepRule(t *testing.T) {
	steps := []float64{0.9, 0.4, 0.7}
	half := 0.5
	for _, c := range []struct {
		rule rm.StepRule
		want float64
	}{
		{rm.StepRule{Aggregate: rm.StepMin}, 0.4},
		{rm.StepRule{Aggregate: rm.StepLast}, 0.7},
		{rm.StepRule{Aggregate: rm.StepMean}, 2.0 / 3},
		{rm.StepRule{Aggregate: rm.StepProd}, 0.9 * 0.4 * 0.7},
		{rm.StepRule{Aggregate: rm.StepSum}, 2.0},
		// clip 0.5: min(r − 0.5, 0) = 0, −0.1, 0: no step adds reward.
		{rm.StepRule{Aggregate: rm.StepSum, Clip: &half}, -0.1},
		// delta: 0.9, −0.5, 0.3; the sum telescopes to the last step.
		{rm.StepRule{Aggregate: rm.StepSum, Delta: true}, 0.7},
		{rm.StepRule{Aggregate: rm.StepMin, Delta: true}, -0.5},
	} {
		if got := c.rule.Of(steps); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("%+v: %v, want %v", c.rule, got, c.want)
		}
	}
	// Repeating a good step cannot raise a clipped sum.
	clipped := rm.StepRule{Aggregate: rm.StepSum, Clip: &half}
	if a, b := clipped.Of([]float64{0.9}), clipped.Of([]float64{0.9, 0.9, 0.9}); b > a {
		t.Errorf("repeated steps raised the clipped sum: %v > %v", b, a)
	}
	if !math.IsNaN((rm.StepRule{Aggregate: rm.StepMin}).Of(nil)) {
		t.Error("no steps scored a number")
	}
	for _, bad := range []rm.StepRule{{Aggregate: "max"}, {Aggregate: rm.StepProd, Delta: true}, {Aggregate: rm.StepProd, Clip: &half}} {
		if bad.Check() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	if got := rm.SplitSteps("a\n\n\n\nb\n\n  \n\nc", "\n\n"); len(got) != 3 || got[2] != "c" {
		t.Errorf("steps %q", got)
	}
}

// explained is a reward with a detail per sample.
type explained struct{ *rmtest.Table }

func (e explained) Explain(ctx context.Context, s []rm.Sample) ([][]float32, []json.RawMessage, error) {
	scores, err := e.Table.Score(ctx, s)
	details := make([]json.RawMessage, len(s))
	for i := range s {
		details[i], _ = json.Marshal(map[string]string{"why": s[i].Response})
	}
	return scores, details, err
}

// Details survive the score cache and shaping, and an ensemble gathers
// them by member; what an ensemble is survives wrapping.
func TestDetailsAndWrapping(t *testing.T) {
	tab := &rmtest.Table{Name: "t", Names: []string{"x"}, Rows: map[string][]float32{"a": {1}, "b": {2}}}
	mem := cache.NewMemory(1 << 20)
	wrapped, err := rm.NewShaped(rm.NewCached(explained{tab}, "t@1", mem, time.Minute, nil), map[string]rm.Normalization{"x": {Mean: 1, Std: 2}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 2 { // a miss, then a hit
		scores, details, err := rm.ScoreExplained(context.Background(), wrapped, samples("a", "b"))
		if err != nil {
			t.Fatal(err)
		}
		near(t, "b normalized", scores[1][0], 0.5)
		if string(details[1]) != `{"why":"b"}` {
			t.Errorf("round %d: detail %s", round, details[1])
		}
	}
	if n := tab.Scored.Load(); n != 2 {
		t.Errorf("scored %d samples, want 2", n)
	}
	other := &rmtest.Table{Name: "o", Names: []string{"x"}, Rows: map[string][]float32{"a": {3}, "b": {0}}}
	e, err := rm.NewEnsemble("e", []string{"one", "two"}, []rm.Rewarder{wrapped, other}, nil, rm.AggMin, 0)
	if err != nil {
		t.Fatal(err)
	}
	cached := rm.NewCached(e, "e@1", mem, time.Minute, nil)
	scores, details, err := rm.ScoreExplained(context.Background(), cached, samples("a"))
	if err != nil {
		t.Fatal(err)
	}
	if string(details[0]) != `{"one":{"why":"a"}}` {
		t.Errorf("ensemble detail %s", details[0])
	}
	// min over members of 2·x: one has x = 0 (normalized 1), two 3.
	u := rm.UtilityFor(cached, map[string]float64{"x": 2}, 0, 0)
	if got := u.Of(cached.Objectives(), scores[0], 0); got != 0 {
		t.Errorf("utility through the cache %v, want 0", got)
	}
	if got := rm.WeightedObjectives(cached); len(got) != 1 || got[0] != "x" {
		t.Errorf("weighted objectives through the cache %v", got)
	}
}

// A sequence reward as a value function: each candidate is the utility of
// the partial answer with it appended, scored as one batch of partial
// answers (the end of the answer as a whole one).
func TestValue(t *testing.T) {
	tab := &rmtest.Table{Name: "t", Names: []string{"a", "b"}, Rows: map[string][]float32{
		"The sky is blue": {1, 2}, "The sky is green": {0, 1}, "The sky is": {0.5, 0.5}}}
	v := rm.Value{Reward: tab, Weights: map[string]float64{"a": 2, "b": -1}}
	got, err := v.LogProbs(context.Background(), rm.Sample{Prompt: "q", Response: "The sky is"}, []string{" blue", " green", ""})
	if err != nil {
		t.Fatal(err)
	}
	// 2·1 − 2 = 0; 2·0 − 1 = −1; 2·0.5 − 0.5 = 0.5.
	if got[0] != 0 || got[1] != -1 || got[2] != 0.5 || tab.Scored.Load() != 3 {
		t.Errorf("values %v after %d samples", got, tab.Scored.Load())
	}
}
