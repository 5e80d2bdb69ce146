package rm_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
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

// Running normalization reads its statistics as they were before a call
// and learns from the call after it: three identical raw scores of one call
// get one normalized value. Statistics are kept per scope (route), and
// freeze_after stops them.
func TestRunningNormalization(t *testing.T) {
	tab := &rmtest.Table{Names: []string{"r"}, Rows: map[string][]float32{}}
	var resp []string
	for i := range 10 {
		k := string(rune('a' + i))
		tab.Rows[k] = []float32{float32(i)}
		resp = append(resp, k)
	}
	tab.Rows["x"] = []float32{55}
	s, _ := rm.NewShaped(tab, map[string]rm.Normalization{"r": {Mean: 100, Std: 1, Running: true}}, nil)
	scoped := func(scope string, resp ...string) []rm.Sample {
		ss := samples(resp...)
		for i := range ss {
			ss[i].Scope = scope
		}
		return ss
	}
	ctx := context.Background()
	got, _ := s.Score(ctx, scoped("route-a", resp...))
	// The whole first call uses the fixed mean 100 and std 1.
	near(t, "first", got[0][0], -100)
	near(t, "tenth", got[9][0], 9-100)
	// The next call of the scope reads the ten it saw: mean 4.5, std
	// 3.027650; three identical raw 55s become one value.
	got, _ = s.Score(ctx, scoped("route-a", "x", "x", "x"))
	for i := range 3 {
		near(t, "55", got[i][0], (55-4.5)/3.0276503540974917)
	}
	// Another route has learnt nothing yet.
	got, _ = s.Score(ctx, scoped("route-b", "x"))
	near(t, "route-b", got[0][0], 55-100)
	if !s.Drifts() {
		t.Error("a running normalization without freeze_after drifts")
	}
	// Frozen after 10 scores: what comes later changes nothing.
	f, _ := rm.NewShaped(tab, map[string]rm.Normalization{"r": {Mean: 100, Std: 1, Running: true, FreezeAfter: 10}}, nil)
	f.Score(ctx, samples(resp...))
	f.Score(ctx, samples("x", "x", "x", "x", "x"))
	got, _ = f.Score(ctx, samples("x"))
	near(t, "frozen", got[0][0], (55-4.5)/3.0276503540974917)
	if f.Drifts() {
		t.Error("a frozen normalization does not drift")
	}
	// An unusable score (an empty answer's NaN) stays unusable and teaches
	// the statistics nothing; the quantile reference leaves it out.
	tab.Rows["nan"] = []float32{float32(math.NaN())}
	with, _ := rm.NewShaped(tab, map[string]rm.Normalization{"r": {Mean: 100, Std: 1, Running: true}}, nil)
	without, _ := rm.NewShaped(tab, map[string]rm.Normalization{"r": {Mean: 100, Std: 1, Running: true}}, nil)
	with.Score(ctx, samples(append(resp, "nan")...))
	without.Score(ctx, samples(resp...))
	got, _ = with.Score(ctx, samples("nan", "x"))
	want, _ := without.Score(ctx, samples("x"))
	if !math.IsNaN(float64(got[0][0])) || got[1][0] != want[0][0] {
		t.Errorf("beside NaNs: %v, want NaN and %v", got, want[0][0])
	}
	q, _ := rm.NewShaped(tab, nil, map[string]rm.Transform{"r": {Kind: rm.TransformLogSigmoid, ReferenceQuantile: new(0.5)}})
	got, _ = q.Score(ctx, samples("nan", "a", "c"))
	if !math.IsNaN(float64(got[0][0])) || math.IsNaN(float64(got[1][0])) || math.IsNaN(float64(got[2][0])) {
		t.Errorf("a quantile reference beside a NaN: %v", got)
	}
}

// log_sigmoid against a per-prompt reference: the median of the call's
// candidates.
func TestQuantileReference(t *testing.T) {
	tab := &rmtest.Table{Names: []string{"r"}, Rows: map[string][]float32{"a": {1}, "b": {2}, "c": {6}}}
	q := 0.5
	s, err := rm.NewShaped(tab, nil, map[string]rm.Transform{"r": {Kind: rm.TransformLogSigmoid, ReferenceQuantile: &q}})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := s.Score(context.Background(), samples("a", "b", "c"))
	// The median is 2: log σ(−1), log σ(0), log σ(4).
	near(t, "a", got[0][0], -1.3132616875182228)
	near(t, "b", got[1][0], -math.Ln2)
	near(t, "c", got[2][0], -0.01814992791780978)
}

// Ensembles weigh each member's scores into its utility, then aggregate
// the members' utilities; with a negative weight, min is still the most
// pessimistic member.
func TestEnsembles(t *testing.T) {
	m1 := &rmtest.Table{Name: "1", Names: []string{"x", "y"}, Rows: map[string][]float32{"a": {1, 5}}}
	m2 := &rmtest.Table{Name: "2", Names: []string{"y", "x"}, Rows: map[string][]float32{"a": {1, 3}}}
	m3 := &rmtest.Table{Name: "3", Names: []string{"x", "y"}, Rows: map[string][]float32{"a": {5, 0}}}
	names := []string{"m1", "m2", "m3"}
	for _, c := range []struct {
		agg     string
		weights map[string]float64
		want    float64
	}{
		// Member utilities with x 1, y 0: 1, 3, 5.
		{rm.AggMean, map[string]float64{"x": 1}, 3},
		{rm.AggMin, map[string]float64{"x": 1}, 1},
		{rm.AggMeanMinusStd, map[string]float64{"x": 1}, 3 - 0.5*math.Sqrt(8.0/3)}, // population std √(8/3)
		{rm.AggMeanMinusVar, map[string]float64{"x": 1}, 3 - 0.5*8.0/3},            // population variance 8/3
		// x −1, y 1: member utilities 4, −2, −5: min is −5, the member
		// that likes the answer least, not the most optimistic one.
		{rm.AggMin, map[string]float64{"x": -1, "y": 1}, -5},
	} {
		e, err := rm.NewEnsemble("e", names, []rm.Rewarder{m1, m2, m3}, nil, c.agg, 0.5)
		if err != nil {
			t.Fatal(err)
		}
		if o := e.Objectives(); len(o) != 6 || o[0] != "x@m1" || o[3] != "y@m2" {
			t.Fatalf("columns %v", o)
		}
		got, err := e.Score(context.Background(), samples("a"))
		if err != nil {
			t.Fatal(err)
		}
		u := rm.UtilityFor(e, c.weights, 0, 0).Of(e.Objectives(), got[0], 0)
		if math.Abs(u-c.want) > 1e-9 {
			t.Errorf("%s %v: utility %v, want %v", c.agg, c.weights, u, c.want)
		}
	}
	if _, err := rm.NewEnsemble("e", []string{"m1", "x"}, []rm.Rewarder{m1, &rmtest.Table{Names: []string{"z"}}}, nil, rm.AggMean, 0); err == nil {
		t.Error("members sharing no objective accepted")
	}
	m2.Err = fault.ErrReward
	e, _ := rm.NewEnsemble("e", names[:2], []rm.Rewarder{m1, m2}, nil, rm.AggMean, 0)
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
	// A tool call and a text that renders alike are two answers.
	call := rm.Sample{Response: "a", Calls: []backend.ToolCall{{Name: "f", Arguments: `{"x":1}`}}}
	text := rm.Sample{Response: "a", Text: "a"}
	if _, err := c.Score(ctx, []rm.Sample{call, text}); err != nil {
		t.Fatal(err)
	}
	if n := tab.Scored.Load(); n != 6 {
		t.Errorf("a tool call and a text rendered alike shared a score (scored %d)", n)
	}
	// The same call with the backend's fresh id is the same answer.
	again := rm.Sample{Response: "a", Calls: []backend.ToolCall{{ID: "call_2", Name: "f", Arguments: `{"x":1}`}}}
	if _, err := c.Score(ctx, []rm.Sample{again}); err != nil {
		t.Fatal(err)
	}
	if n := tab.Scored.Load(); n != 6 {
		t.Errorf("a call's id took it out of the cache (scored %d)", n)
	}
}
