package onnx

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
)

// cost is what plan minimises, for the tests to check it against.
func cost(lens []int, runs [][]int, overhead float64) float64 {
	var c float64
	for _, run := range runs {
		longest := 0
		for _, i := range run {
			longest = max(longest, lens[i])
		}
		c += overhead + float64(len(run)*longest)
	}
	return c
}

// checkRuns fails unless the runs hold every sample once, none over maxRows.
func checkRuns(t *testing.T, lens []int, runs [][]int, maxRows int) {
	t.Helper()
	var all []int
	for _, run := range runs {
		if len(run) == 0 || len(run) > maxRows {
			t.Fatalf("run of %d samples (max %d): %v", len(run), maxRows, runs)
		}
		all = append(all, run...)
	}
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("runs %v do not hold each of %d samples once", runs, len(lens))
		}
	}
}

func TestPlan(t *testing.T) {
	lens := []int{40, 10, 10, 40, 90, 10}
	// Unknown costs: arrival order, max_batch at a time, as before any run.
	if got := plan(lens, 4, 0, false); !slices.EqualFunc(got, [][]int{{0, 1, 2, 3}, {4, 5}}, slices.Equal) {
		t.Errorf("unknown overhead: %v", got)
	}
	// A run's fixed cost outweighs any padding: as few runs as max_batch allows.
	if got := plan(lens, 6, 1e9, true); len(got) != 1 {
		t.Errorf("huge overhead: %v", got)
	}
	if got := plan(lens, 4, 1e9, true); len(got) != 2 {
		t.Errorf("huge overhead, max_batch 4: %v", got)
	}
	// No fixed cost: no padding at all, equal lengths kept together.
	if got := plan(lens, 6, 0, true); !slices.EqualFunc(got, [][]int{{1, 2, 5}, {0, 3}, {4}}, slices.Equal) {
		t.Errorf("no overhead: %v", got)
	}
	// In between: at 50 a run, three runs cost 130 + 130 + 140 = 350, the
	// 10s and 40s together 250 + 140 = 390; at 100 a run, 490 against 500.
	if got := plan(lens, 6, 50, true); !slices.EqualFunc(got, [][]int{{1, 2, 5}, {0, 3}, {4}}, slices.Equal) {
		t.Errorf("overhead 50: %v", got)
	}
	if got := plan(lens, 6, 100, true); !slices.EqualFunc(got, [][]int{{1, 2, 5, 0, 3}, {4}}, slices.Equal) {
		t.Errorf("overhead 100: %v", got)
	}
	if got := plan(nil, 4, 10, true); len(got) != 0 {
		t.Errorf("no samples: %v", got)
	}
}

// TestPlanIsOptimal checks plan against every split of the samples sorted
// by length into contiguous runs.
func TestPlanIsOptimal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 300 {
		n, maxRows := 1+r.IntN(8), 1+r.IntN(5)
		lens := make([]int, n)
		for i := range lens {
			lens[i] = 1 + r.IntN(60)
		}
		overhead := float64(r.IntN(200))
		got := plan(lens, maxRows, overhead, true)
		checkRuns(t, lens, got, maxRows)
		sorted := slices.Sorted(slices.Values(lens))
		best := math.Inf(1)
		for mask := range 1 << (n - 1) { // bit i: a run ends after sorted sample i
			c, start := 0.0, 0
			for i := range n {
				if i == n-1 || mask&(1<<i) != 0 {
					if i+1-start > maxRows {
						c = math.Inf(1)
						break
					}
					c += overhead + float64((i+1-start)*sorted[i])
					start = i + 1
				}
			}
			best = min(best, c)
		}
		if c := cost(lens, got, overhead); c != best {
			t.Fatalf("lens %v max %d overhead %v: plan %v costs %v, best %v", lens, maxRows, overhead, got, c, best)
		}
	}
}

// warmed is a cost record past a session's first run, which it leaves out.
func warmed() *runCosts {
	c := &runCosts{}
	c.add(1, time.Hour)
	return c
}

func TestRunCostsOverhead(t *testing.T) {
	c := warmed()
	run := func(tokens int) { // 1 ms fixed, 1 µs a padded token
		c.add(tokens, time.Millisecond+time.Duration(tokens)*time.Microsecond)
	}
	for range 7 {
		run(100)
		run(400)
	}
	if o, ok, _ := c.overhead(); !ok || math.Abs(o-1000) > 1e-6 {
		t.Errorf("overhead %v %v, want 1000 tokens", o, ok)
	}
	few := warmed()
	for i := range 7 {
		few.add(100*(i+1), time.Millisecond)
	}
	if _, ok, explore := few.overhead(); ok || explore {
		t.Errorf("from 7 runs: overhead %v, explore %v", ok, explore)
	}
	same := warmed()
	explored := 0
	for i := range 40 {
		same.add(300+200*(i%2), time.Duration(1+i%2)*time.Millisecond)
		_, ok, explore := same.overhead()
		if ok {
			t.Fatal("an overhead from runs of nearly one size")
		}
		if explore {
			explored++
		}
	}
	if explored != 5 { // after runs 8, 16, 24, 32 and 40
		t.Errorf("explored after %d of 40 runs of nearly one size, want every 8th", explored)
	}
	flat := warmed()
	for i := range 20 {
		flat.add(100*(1+i%4), time.Duration(5-i%4)*time.Millisecond) // longer runs faster: no per-token cost
	}
	if _, ok, explore := flat.overhead(); ok || explore {
		t.Errorf("no positive per-token cost: overhead %v, explore %v", ok, explore)
	}
	// A slow outlier that tilts the fit to no fixed cost makes the next call
	// split by length, and the runs it makes right the fit.
	tilted := warmed()
	for i := range 64 {
		tilted.add(100*(1+i%4), time.Millisecond+time.Duration(100*(1+i%4))*time.Microsecond)
	}
	tilted.add(2000, 50*time.Millisecond)
	if o, ok, _ := tilted.overhead(); !ok || o != 0 {
		t.Fatalf("tilted: overhead %v %v, want 0", o, ok)
	}
	for _, run := range plan(slices.Repeat([]int{100, 200, 300, 400}, 16), 64, 0, true) {
		tilted.add(100*len(run)*(1+run[0]%4), time.Millisecond+time.Duration(100*len(run)*(1+run[0]%4))*time.Microsecond)
	}
	if o, ok, _ := tilted.overhead(); !ok || o < 500 {
		t.Errorf("after one call of small runs: overhead %v %v, want about 1000 tokens", o, ok)
	}
	// The first run of a session (its set-up) is not recorded.
	cold := &runCosts{}
	cold.add(100, time.Second)
	if cold.n != 0 {
		t.Error("the first run was recorded")
	}
	// Exploring is every 8 runs, however many runs a call makes.
	calls := warmed()
	asked := 0
	for range 10 {
		for range 3 { // each call makes 3 runs of one size
			calls.add(500, time.Millisecond)
		}
		if _, _, explore := calls.overhead(); explore {
			asked++
		}
	}
	if asked != 3 { // at 9, 18 and 27 runs
		t.Errorf("asked to explore %d times in 30 runs, want 3", asked)
	}
	// The window: old runs age out.
	for range costWindow {
		run(50)
		run(800)
	}
	if o, ok, _ := c.overhead(); !ok || math.Abs(o-1000) > 1e-6 {
		t.Errorf("overhead %v %v after a full window", o, ok)
	}
}

// TestSplitRunsKeepOrder scores samples of varied length in several runs
// (a cost model with no fixed cost splits them by length) and checks each
// caller gets its own samples' scores, in order.
func TestSplitRunsKeepOrder(t *testing.T) {
	cfg := config(t, "seq_reward_types.onnx")
	cfg.MaxBatch, cfg.MaxLength = 64, 128
	r, err := NewRewarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.costs.add(1, time.Hour) // the session's first run, left out
	for i := range 16 {       // 1 µs a token, 1 µs a run: every length its own run
		r.costs.add(100*(1+i%4), time.Duration(1+100*(1+i%4))*time.Microsecond)
	}
	var ss []rm.Sample
	for i := range 12 {
		word := []string{"sky", "sun", "tea"}[i%3] // one token each: same lengths, other scores
		ss = append(ss, rm.Sample{Prompt: "why is the sky blue?", Response: strings.Repeat(word+" air is blue. ", 1+(i*7)%5)})
	}
	runs0, _ := r.Stats()
	got, err := r.Score(context.Background(), ss)
	if err != nil {
		t.Fatal(err)
	}
	if runs, _ := r.Stats(); runs-runs0 != 5 {
		t.Errorf("%d runs for answers of 5 lengths", runs-runs0)
	}
	near(t, "split runs", got, want(t, r, rmtest.Seq(true), ss))

	// steadyScore scores ss with a rewarder whose runs so far were all of
	// one size, and returns its runs and samples.
	steadyScore := func(maxBatch int) (runs, n int, r *Rewarder) {
		cfg.MaxBatch = maxBatch
		r, err := NewRewarder(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Close)
		for range 9 { // slower than any real run here, so the fit after them has a positive slope
			r.costs.add(1000, time.Second)
		}
		got, err := r.Score(context.Background(), ss)
		if err != nil {
			t.Fatal(err)
		}
		near(t, fmt.Sprintf("explored runs, max_batch %d", maxBatch), got, want(t, r, rmtest.Seq(true), ss))
		runs, n = r.Stats()
		return runs, n, r
	}
	// Runs all of one size teach the cost model nothing: after 8 (and the
	// session's first, left out) the next batch splits in two, shortest half
	// first, so that the fit has two sizes.
	if runs, _, r := steadyScore(64); runs != 2 {
		t.Errorf("%d runs exploring, want 2", runs)
	} else if _, ok, _ := r.costs.overhead(); !ok {
		t.Error("no cost model after runs of two sizes")
	}
	// Exploring keeps to max_batch: 12 samples at 4 a run are 3 runs.
	if runs, n, _ := steadyScore(4); runs != 3 || n != 12 {
		t.Errorf("%d runs of %d samples exploring at max_batch 4, want 3 of 12", runs, n)
	}
}
