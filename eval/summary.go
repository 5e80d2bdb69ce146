package eval

import (
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
)

// Interval is a mean with its 95% interval.
type Interval struct {
	Mean, Lo, Hi float64
}

func (i Interval) String() string { return i.format("%.4f", 1) }

// format writes the mean and its interval with verb, values times scale:
// "undefined" for a mean that is none (a share of no gain), and "no
// interval" where the resamples cannot give one (one prompt, or too many
// resamples where the statistic is undefined).
func (i Interval) format(verb string, scale float64) string {
	if math.IsNaN(i.Mean) || math.IsInf(i.Mean, 0) {
		return "undefined"
	}
	if math.IsNaN(i.Lo) || math.IsNaN(i.Hi) {
		return fmt.Sprintf(verb+" [no interval]", scale*i.Mean)
	}
	return fmt.Sprintf(verb+" ["+verb+", "+verb+"]", scale*i.Mean, scale*i.Lo, scale*i.Hi)
}

// Summary is one setting's results over every prompt and seed.
type Summary struct {
	Setting   int
	Params    string
	Strategy  string
	Runs      int
	Reward    Interval // prompt-clustered bootstrap
	Samples   float64
	Tokens    Interval
	LatencyMS float64
	Stops     map[string]int // stop reasons and how often

	// Against the budget-matched best-of-N (Baseline −1: none): the mean
	// paired difference in reward (this setting's minus the baseline's, on
	// the same prompt and seed) and the ratio of backend tokens.
	Baseline   int
	Diff       Interval
	TokenRatio float64
	// Unmatched is the N a budget-matched best-of-N would need, when that
	// is beyond what the gateway allows (0 otherwise).
	Unmatched int
}

// BootstrapRounds is how many resamples an interval takes.
const BootstrapRounds = 2000

// Summarize reduces a result to one summary per setting, in setting order.
// Intervals come from a bootstrap that resamples prompts (each prompt's
// runs stay together), since runs on one prompt are not independent.
func Summarize(res *Result, seed uint64) []Summary {
	out := make([]Summary, len(res.Settings))
	for i, s := range res.Settings {
		out[i] = Summary{Setting: i, Params: s, Stops: map[string]int{}, Baseline: -1}
	}
	for _, r := range res.Rows {
		s := &out[r.Setting]
		s.Strategy = r.Strategy
		s.Runs++
		s.Samples += float64(r.Samples)
		s.LatencyMS += float64(r.Latency.Microseconds()) / 1000
		if r.StopReason != "" {
			s.Stops[r.StopReason]++
		}
	}
	for i := range out {
		s := &out[i]
		if s.Runs == 0 {
			continue
		}
		s.Samples /= float64(s.Runs)
		s.LatencyMS /= float64(s.Runs)
		s.Reward = ClusteredBootstrap(perPrompt(res.Rows, i, func(r Row) float64 { return r.Reward }), BootstrapRounds, seed)
		s.Tokens = ClusteredBootstrap(perPrompt(res.Rows, i, func(r Row) float64 { return float64(r.Tokens) }), BootstrapRounds, seed)
	}
	for i, n := range res.Unmatched {
		out[i].Unmatched = n
	}
	for i, b := range res.Baseline {
		s := &out[i]
		s.Baseline = b
		s.Diff = ClusteredBootstrap(PairedDiffs(res.Rows, i, b), BootstrapRounds, seed)
		s.TokenRatio = s.Tokens.Mean / out[b].Tokens.Mean
	}
	return out
}

// PairedDiffs groups by prompt the differences in reward between two
// settings' runs with the same prompt and seed.
func PairedDiffs(rows []Row, a, b int) [][]float64 {
	type key struct {
		prompt int
		seed   int64
	}
	base := map[key]float64{}
	for _, r := range rows {
		if r.Setting == b {
			base[key{r.Prompt, r.Seed}] = r.Reward
		}
	}
	return perPrompt(rows, a, func(r Row) float64 { return r.Reward - base[key{r.Prompt, r.Seed}] })
}

// perPrompt groups a setting's values by prompt, in prompt order.
func perPrompt(rows []Row, setting int, v func(Row) float64) [][]float64 {
	by := map[int][]float64{}
	for _, r := range rows {
		if r.Setting == setting {
			by[r.Prompt] = append(by[r.Prompt], v(r))
		}
	}
	keys := slices.Sorted(maps.Keys(by))
	out := make([][]float64, len(keys))
	for i, k := range keys {
		out[i] = by[k]
	}
	return out
}

// ClusteredBootstrap is the mean of the clusters' means (each cluster one
// prompt's runs) with a 95% percentile interval from resampling clusters
// with replacement.
func ClusteredBootstrap(clusters [][]float64, rounds int, seed uint64) Interval {
	means := make([]float64, len(clusters))
	for i, c := range clusters {
		means[i] = mean(c)
	}
	return bootstrap(len(means), rounds, seed, func(idx []int) float64 {
		var s float64
		for _, i := range idx {
			s += means[i]
		}
		return s / float64(len(idx))
	})
}

// bootstrap is stat over all n clusters, with a 95% percentile interval
// from stat over n clusters drawn with replacement, rounds times. One
// cluster gives no interval (every resample is the point). A resample
// where stat is undefined (a ratio over no gain) is left out; when more
// than the interval's tail of them are, there is no interval.
func bootstrap(n, rounds int, seed uint64, stat func(idx []int) float64) Interval {
	if n == 0 {
		return Interval{math.NaN(), math.NaN(), math.NaN()}
	}
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	point := stat(idx)
	if n < 2 {
		return Interval{Mean: point, Lo: math.NaN(), Hi: math.NaN()}
	}
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	stats := make([]float64, 0, rounds)
	for range rounds {
		for i := range idx {
			idx[i] = rng.IntN(n)
		}
		if v := stat(idx); !math.IsNaN(v) && !math.IsInf(v, 0) {
			stats = append(stats, v)
		}
	}
	if float64(rounds-len(stats)) > 0.025*float64(rounds) {
		return Interval{Mean: point, Lo: math.NaN(), Hi: math.NaN()}
	}
	slices.Sort(stats)
	return Interval{Mean: point, Lo: quantile(stats, 0.025), Hi: quantile(stats, 0.975)}
}

// Share is a setting's share of the gain in mean reward from one setting
// (one sample) to another (the most samples), and its share of the latter's
// backend tokens, each with a prompt-clustered bootstrap interval: the
// same resampled prompts for the three settings, so the ratio's interval
// carries their correlation.
type Share struct {
	Gain, Tokens Interval
}

// GainShare computes Share for setting s between settings one and full.
func GainShare(rows []Row, s, one, full int, rounds int, seed uint64) Share {
	get := func(setting int, v func(Row) float64) []float64 {
		var out []float64
		for _, c := range perPrompt(rows, setting, v) {
			out = append(out, mean(c))
		}
		return out
	}
	reward := func(r Row) float64 { return r.Reward }
	tokens := func(r Row) float64 { return float64(r.Tokens) }
	rs, r1, rf := get(s, reward), get(one, reward), get(full, reward)
	ts, tf := get(s, tokens), get(full, tokens)
	n := min(len(rs), len(r1), len(rf))
	sum := func(xs []float64, idx []int) (t float64) {
		for _, i := range idx {
			t += xs[i]
		}
		return t
	}
	return Share{
		Gain: bootstrap(n, rounds, seed, func(idx []int) float64 {
			return (sum(rs, idx) - sum(r1, idx)) / (sum(rf, idx) - sum(r1, idx))
		}),
		Tokens: bootstrap(n, rounds, seed, func(idx []int) float64 { return sum(ts, idx) / sum(tf, idx) }),
	}
}

func mean(xs []float64) float64 {
	var s float64
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// quantile of sorted xs, interpolating linearly.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 1 {
		return xs[0]
	}
	pos := q * float64(len(xs)-1)
	lo := int(math.Floor(pos))
	hi := min(lo+1, len(xs)-1)
	return xs[lo] + (pos-float64(lo))*(xs[hi]-xs[lo])
}

// Table renders the summaries as Markdown: every setting, then each
// setting against its budget-matched best-of-N, then, where best-of-1 and
// a larger best-of-N ran, each setting's share of the largest one's gain
// and tokens.
func Table(ss []Summary, rows []Row) string {
	var b strings.Builder
	b.WriteString("| # | strategy | parameters | runs | mean samples | mean backend tokens | mean wall time (ms) | mean reward [95% CI] | stop reasons |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, s := range ss {
		var stops []string
		for _, k := range slices.Sorted(maps.Keys(s.Stops)) {
			stops = append(stops, fmt.Sprintf("%s %d", k, s.Stops[k]))
		}
		fmt.Fprintf(&b, "| %d | %s | `%s` | %d | %.2f | %.0f | %.2f | %s | %s |\n", s.Setting+1, s.Strategy, s.Params, s.Runs, s.Samples,
			s.Tokens.Mean, s.LatencyMS, s.Reward, strings.Join(stops, ", "))
	}
	var paired []Summary
	for _, s := range ss {
		if s.Baseline >= 0 || s.Unmatched > 0 {
			paired = append(paired, s)
		}
	}
	if len(paired) > 0 {
		b.WriteString("\nAgainst best-of-N with the same budget (N: the setting's mean backend tokens over one sample's, rounded), on the same prompts and seeds:\n\n" +
			"| # | vs # | reward difference [95% CI] | backend tokens, ratio | wall time, ratio |\n|---|---|---|---|---|\n")
		for _, s := range paired {
			if s.Unmatched > 0 {
				fmt.Fprintf(&b, "| %d | none: best-of-%d is beyond server.max_samples | | | |\n", s.Setting+1, s.Unmatched)
				continue
			}
			base := ss[s.Baseline]
			fmt.Fprintf(&b, "| %d | %d (`%s`) | %s | %.2f | %.2f |\n", s.Setting+1, base.Setting+1, base.Params,
				s.Diff.format("%+.4f", 1), s.TokenRatio, s.LatencyMS/base.LatencyMS)
		}
	}
	one, full, fullN := -1, -1, 1
	for _, s := range ss {
		if n, ok := plainBestOfN(s.Params); ok && s.Runs > 0 {
			if n == 1 {
				one = s.Setting
			} else if n > fullN {
				full, fullN = s.Setting, n
			}
		}
	}
	if one >= 0 && full >= 0 {
		fmt.Fprintf(&b, "\nShare of best-of-%d's gain in mean reward over one sample, and of its backend tokens:\n\n"+
			"| # | share of the gain [95%% CI] | share of the tokens [95%% CI] |\n|---|---|---|\n", fullN)
		for _, s := range ss {
			if s.Setting == one || s.Setting == full || s.Runs == 0 {
				continue
			}
			sh := GainShare(rows, s.Setting, one, full, BootstrapRounds, 1)
			fmt.Fprintf(&b, "| %d | %s | %s |\n", s.Setting+1, percent(sh.Gain), percent(sh.Tokens))
		}
	}
	return b.String()
}

func percent(i Interval) string { return i.format("%.0f%%", 100) }

// PlotSVG draws mean reward (with its interval) against mean backend
// tokens, log scale: the settings of each strategy joined by a line in
// its own colour, numbered as in the table.
func PlotSVG(ss []Summary) string {
	const w, h, m = 640.0, 400.0, 60.0
	var pts []Summary
	for _, s := range ss {
		if s.Runs > 0 {
			pts = append(pts, s)
		}
	}
	if len(pts) == 0 {
		return `<svg xmlns="http://www.w3.org/2000/svg" width="640" height="400"></svg>` + "\n"
	}
	minR, maxR := pts[0].Reward.Lo, pts[0].Reward.Hi
	minT, maxT := pts[0].Tokens.Mean, pts[0].Tokens.Mean
	for _, p := range pts {
		minR, maxR = math.Min(minR, p.Reward.Lo), math.Max(maxR, p.Reward.Hi)
		minT, maxT = math.Min(minT, p.Tokens.Mean), math.Max(maxT, p.Tokens.Mean)
	}
	if maxR == minR {
		maxR = minR + 1
	}
	pad := (maxR - minR) * 0.1
	minR, maxR = minR-pad, maxR+pad
	lminT, lmaxT := math.Log2(math.Max(minT, 1))-0.25, math.Log2(math.Max(maxT, 1))+0.25
	x := func(t float64) float64 { return m + (w-2*m)*(math.Log2(math.Max(t, 1))-lminT)/(lmaxT-lminT) }
	y := func(r float64) float64 { return h - m - (h-2*m)*(r-minR)/(maxR-minR) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", m, h-m, w-m, h-m, m, m, m, h-m)
	for e := math.Ceil(lminT); e <= lmaxT; e++ {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%g</text>`+"\n", x(math.Exp2(e)), h-m+18, math.Exp2(e))
	}
	for i := range 5 {
		r := minR + (maxR-minR)*float64(i)/4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%.3f</text>`+"\n", m-6, y(r)+4, r)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">mean backend tokens per request (log scale)</text>`+"\n", w/2, h-15)
	fmt.Fprintf(&b, `<text x="15" y="%.0f" transform="rotate(-90 15 %.0f)" text-anchor="middle">mean reward of the answer, 95%% CI</text>`+"\n", h/2, h/2)
	palette := []string{"#1f77b4", "#2ca02c", "#d62728", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"}
	var strategies []string
	for _, p := range pts {
		if !slices.Contains(strategies, p.Strategy) {
			strategies = append(strategies, p.Strategy)
		}
	}
	colour := func(st string) string { return palette[slices.Index(strategies, st)%len(palette)] }
	for i, st := range strategies {
		var line []Summary
		for _, p := range pts {
			if p.Strategy == st {
				line = append(line, p)
			}
		}
		sort.Slice(line, func(i, j int) bool { return line[i].Tokens.Mean < line[j].Tokens.Mean })
		if len(line) > 1 {
			var xy []string
			for _, p := range line {
				xy = append(xy, fmt.Sprintf("%.1f,%.1f", x(p.Tokens.Mean), y(p.Reward.Mean)))
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`+"\n", strings.Join(xy, " "), colour(st))
		}
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" fill="%s">● %s</text>`+"\n", m+10, 20+16*i, colour(st), st)
	}
	for _, p := range pts {
		c := colour(p.Strategy)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="%s"/>`+"\n", x(p.Tokens.Mean), y(p.Reward.Lo), x(p.Tokens.Mean), y(p.Reward.Hi), c)
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", x(p.Tokens.Mean), y(p.Reward.Mean), c)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s">%d</text>`+"\n", x(p.Tokens.Mean)+6, y(p.Reward.Mean)-6, c, p.Setting+1)
	}
	b.WriteString("</svg>\n")
	return b.String()
}
