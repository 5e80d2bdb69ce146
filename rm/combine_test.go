package rm_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
)

func near(t *testing.T, what string, got float32, want float64) {
	t.Helper()
	if math.Abs(float64(got)-want) > 1e-5 {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

func samples(resp ...string) []rm.Sample {
	out := make([]rm.Sample, len(resp))
	for i, r := range resp {
		out[i] = rm.Sample{Prompt: "q", Response: r}
	}
	return out
}

func TestShapedNormalizeAndTransform(t *testing.T) {
	tab := &rmtest.Table{Names: []string{"help", "len"}, Rows: map[string][]float32{"a": {3, 10}, "b": {1, -10}}}
	s, err := rm.NewShaped(tab,
		map[string]rm.Normalization{"help": {Mean: 1, Std: 2}},
		map[string]rm.Transform{"help": {Kind: rm.TransformLogSigmoid, Reference: 0}, "len": {Kind: rm.TransformClip, Min: -1, Max: 1}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Score(context.Background(), samples("a", "b"))
	if err != nil {
		t.Fatal(err)
	}
	// a: help (3−1)/2 = 1 → log σ(1) = −0.313262; len clipped to 1.
	near(t, "a.help", got[0][0], -0.31326168751822286)
	near(t, "a.len", got[0][1], 1)
	// b: help 0 → log σ(0) = −log 2; len clipped to −1.
	near(t, "b.help", got[1][0], -math.Ln2)
	near(t, "b.len", got[1][1], -1)
	if _, err := rm.NewShaped(tab, map[string]rm.Normalization{"nope": {Std: 1}}, nil); err == nil {
		t.Error("unknown objective accepted")
	}
}

func TestRunningNormalization(t *testing.T) {
	tab := &rmtest.Table{Names: []string{"r"}, Rows: map[string][]float32{}}
	var resp []string
	for i := range 10 {
		k := string(rune('a' + i))
		tab.Rows[k] = []float32{float32(i)}
		resp = append(resp, k)
	}
	s, _ := rm.NewShaped(tab, map[string]rm.Normalization{"r": {Mean: 100, Std: 1, Running: true}}, nil)
	got, _ := s.Score(context.Background(), samples(resp...))
	// The first scores use the fixed mean 100 until 8 are seen.
	near(t, "first", got[0][0], -100)
	// The ninth (value 8) sees mean 3.5 and std of 0..7 = 2.449490.
	near(t, "ninth", got[8][0], (8-3.5)/2.449489742783178)
}

func TestEnsembles(t *testing.T) {
	m1 := &rmtest.Table{Name: "1", Names: []string{"x", "y"}, Rows: map[string][]float32{"a": {1, 5}}}
	m2 := &rmtest.Table{Name: "2", Names: []string{"y", "x"}, Rows: map[string][]float32{"a": {1, 3}}}
	m3 := &rmtest.Table{Name: "3", Names: []string{"x"}, Rows: map[string][]float32{"a": {5}}}
	for _, c := range []struct {
		agg  string
		want float64
	}{
		{rm.AggMean, 3},
		{rm.AggMin, 1},
		{rm.AggMeanMinusStd, 3 - 0.5*math.Sqrt(8.0/3)}, // x = {1, 3, 5}: population std √(8/3)
	} {
		e, err := rm.NewEnsemble("e", []rm.Rewarder{m1, m2, m3}, nil, c.agg, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		if o := e.Objectives(); len(o) != 1 || o[0] != "x" {
			t.Fatalf("shared objectives %v", o)
		}
		got, err := e.Score(context.Background(), samples("a"))
		if err != nil {
			t.Fatal(err)
		}
		near(t, c.agg, got[0][0], c.want)
	}
	if _, err := rm.NewEnsemble("e", []rm.Rewarder{m1, m3}, []string{"y"}, rm.AggMean, 0); err == nil {
		t.Error("member without the objective accepted")
	}
	m2.Err = fault.ErrReward
	e, _ := rm.NewEnsemble("e", []rm.Rewarder{m1, m2}, nil, rm.AggMean, 0)
	if _, err := e.Score(context.Background(), samples("a")); err == nil {
		t.Error("a failing member must fail the ensemble")
	}
}

func TestUtility(t *testing.T) {
	u := rm.Utility{Weights: map[string]float64{"help": 1, "verbosity": -0.5}, LengthPenalty: 0.1, LengthFree: 10}
	got := u.Of([]string{"help", "verbosity", "other"}, []float32{2, 4, 100}, 15)
	// 2 − 0.5·4 + 0·100 − 0.1·(15 − 10)
	if math.Abs(got-(-0.5)) > 1e-9 {
		t.Errorf("utility %v", got)
	}
}

func TestCachedScoresOnlyMisses(t *testing.T) {
	tab := &rmtest.Table{Name: "t", Names: []string{"x"}, Rows: map[string][]float32{"a": {1}, "b": {2}, "c": {3}}}
	mem := cache.NewMemory(1 << 20)
	c := rm.NewCached(tab, "t@v1", mem, time.Minute, nil)
	ctx := context.Background()
	if _, err := c.Score(ctx, samples("a", "b")); err != nil {
		t.Fatal(err)
	}
	got, err := c.Score(ctx, samples("b", "c", "a"))
	if err != nil {
		t.Fatal(err)
	}
	near(t, "b", got[0][0], 2)
	near(t, "c", got[1][0], 3)
	near(t, "a", got[2][0], 1)
	if n := tab.Scored.Load(); n != 3 {
		t.Errorf("scored %d samples, want 3 (each once)", n)
	}
	// Another version of the model does not see these scores.
	c2 := rm.NewCached(tab, "t@v2", mem, time.Minute, nil)
	if _, err := c2.Score(ctx, samples("a")); err != nil {
		t.Fatal(err)
	}
	if n := tab.Scored.Load(); n != 4 {
		t.Errorf("v2 read v1's cache (scored %d)", n)
	}
}
