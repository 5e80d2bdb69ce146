package onnx

import (
	"math"
	"slices"
	"sync"
	"time"
)

// A batch is padded to its longest sample, so one run of samples of varied
// length computes tokens nobody asked for, while several runs each pay the
// model's fixed cost (kernel launches, copies, thread start-up). The
// batcher learns the two from its own runs, time ≈ fixed + per-token ×
// padded tokens, and splits what it has queued into the runs that cost
// least under that model: where the fixed cost outweighs the padding,
// samples run together; with a compute-bound model, or on a CPU (where one
// run already uses every core), samples of similar length run together and
// padding goes.

// costWindow is how many recent runs the cost model is fitted to.
const costWindow = 64

// runCosts records recent runs' padded tokens and durations.
type runCosts struct {
	mu       sync.Mutex
	tokens   [costWindow]float64
	secs     [costWindow]float64
	n        int  // runs recorded, all time
	warm     bool // a first run was seen: it sets up kernels and memory, and is not recorded
	explored int  // n at the last exploring split
}

func (c *runCosts) add(tokens int, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.warm {
		c.warm = true
		return
	}
	c.tokens[c.n%costWindow], c.secs[c.n%costWindow] = float64(tokens), d.Seconds()
	c.n++
}

// overhead is the fixed cost of a run in padded tokens (fixed / per-token),
// fitted by least squares to the recent runs; a fit below 0 is 0 (on a CPU
// a compute-bound model's fixed cost is near 0, and noise puts it either
// side). ok is false until there are 8 runs whose sizes differ by a factor
// of 2 or more, or when the fit has no positive per-token cost: then
// nothing is split. A slow outlier can tilt the fit to split too much; the
// runs of the call that follows, of other sizes, right it. While the runs are too alike to fit (a steady load of full
// batches), explore asks for one split in two every 8 runs, to give the
// fit runs of another size; it counts as done when it is asked for.
func (c *runCosts) overhead() (tokens float64, ok, explore bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(c.n, costWindow)
	if n < 8 {
		return 0, false, false
	}
	xs, ys := c.tokens[:n], c.secs[:n]
	if slices.Max(xs) < 2*slices.Min(xs) {
		if c.n-c.explored < 8 {
			return 0, false, false
		}
		c.explored = c.n
		return 0, false, true
	}
	var mx, my float64
	for i := range n {
		mx, my = mx+xs[i], my+ys[i]
	}
	mx, my = mx/float64(n), my/float64(n)
	var sxx, sxy float64
	for i := range n {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	perToken := sxy / sxx
	if !(perToken > 0) {
		return 0, false, false
	}
	return max(my-perToken*mx, 0) / perToken, true, false
}

// plan splits samples of the given lengths into runs of at most maxRows:
// in arrival order when the overhead is unknown, else, over the samples
// sorted by length, the contiguous runs that minimise Σ (overhead + rows ×
// longest). It returns the samples' indices, run by run.
func plan(lens []int, maxRows int, overhead float64, known bool) [][]int {
	order := make([]int, len(lens))
	for i := range order {
		order[i] = i
	}
	overhead = min(overhead, 1e15) // a finite cost: every split stays comparable
	if !known || !(overhead >= 0) {
		var runs [][]int
		for start := 0; start < len(order); start += maxRows {
			runs = append(runs, order[start:min(start+maxRows, len(order))])
		}
		return runs
	}
	slices.SortStableFunc(order, func(a, b int) int { return lens[a] - lens[b] })
	// cost[i] is the least cost of the first i sorted samples, cut[i] where
	// its last run starts.
	cost, cut := make([]float64, len(order)+1), make([]int, len(order)+1)
	for i := 1; i <= len(order); i++ {
		cost[i] = math.Inf(1)
		longest := float64(lens[order[i-1]])
		for j := max(0, i-maxRows); j < i; j++ { // longest runs first: a tie keeps samples together
			if c := cost[j] + overhead + float64(i-j)*longest; c < cost[i] {
				cost[i], cut[i] = c, j
			}
		}
	}
	var runs [][]int
	for i := len(order); i > 0; i = cut[i] {
		runs = append(runs, order[cut[i]:i])
	}
	slices.Reverse(runs)
	return runs
}
