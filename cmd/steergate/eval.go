package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/steering"
)

// defaultSettings are the strategies eval compares when none are given:
// best-of-N for N = 1..16 (N = 1 is a single sample) and adaptive settings.
var defaultSettings = []string{
	`{"strategy":"best_of_n","n":1}`,
	`{"strategy":"best_of_n","n":2}`,
	`{"strategy":"best_of_n","n":4}`,
	`{"strategy":"best_of_n","n":8}`,
	`{"strategy":"best_of_n","n":16}`,
	`{"strategy":"adaptive","initial":2,"step":1,"max_samples":16,"threshold":1.3,"p_min":0.05}`,
	`{"strategy":"adaptive","initial":2,"step":1,"max_samples":16,"p_min":0.15}`,
	`{"strategy":"adaptive","initial":3,"step":2,"max_samples":16,"p_min":0.1}`,
	`{"strategy":"adaptive","initial":8,"step":8,"max_samples":16,"p_min":0.05,"prune_tokens":6,"keep":0.25}`,
}

// evalRow is one run of one setting on one prompt with one seed.
type evalRow struct {
	setting  string
	strategy string
	prompt   int
	seed     int64
	samples  int
	tokens   int
	latency  time.Duration
	reward   float64
}

func evalCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	file := fs.String("config", configs.DefaultFile, "config file")
	model := fs.String("model", "reference", "model (route) to steer")
	prompts := fs.String("prompts", "eval/prompts.jsonl", `JSON lines {"prompt": "..."}`)
	seeds := fs.Int("seeds", 4, "seeds per prompt")
	maxTokens := fs.Int("max-tokens", 48, "max_tokens per sample")
	out := fs.String("out", "eval-results.csv", "CSV of every run")
	svg := fs.String("svg", "eval-curve.svg", "plot of mean reward against samples")
	var settings multiFlag
	fs.Var(&settings, "setting", "a steering object to evaluate (repeatable); default: best-of-N 1..16 and adaptive")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if len(settings) == 0 {
		settings = defaultSettings
	}
	a, err := buildOffline(ctx, *file, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	rt, err := a.router.Resolve(*model)
	if err != nil {
		return err
	}
	qs, err := readPrompts(*prompts)
	if err != nil {
		return err
	}
	var rows []evalRow
	for _, set := range settings {
		for pi, q := range qs {
			for s := range int64(*seeds) {
				seed := s * 1000 // sample i of this run uses seed+i: runs never share samples
				r := &backend.Request{Model: rt.Target, Messages: []backend.Message{{Role: "user", Content: q}}, Seed: &seed, MaxTokens: *maxTokens}
				t0 := time.Now()
				o, err := a.engine.Run(ctx, &steering.Call{Route: rt, Request: r, Steering: json.RawMessage(set)}, nil)
				if err != nil {
					return fmt.Errorf("setting %s, prompt %d: %w", set, pi+1, err)
				}
				rows = append(rows, evalRow{setting: set, strategy: o.Info.Strategy, prompt: pi, seed: seed, samples: o.Info.SamplesUsed,
					tokens: o.Info.BackendUsage.PromptTokens + o.Info.BackendUsage.CompletionTokens, latency: time.Since(t0), reward: o.Info.Reward.Utility})
			}
		}
		fmt.Fprintf(stderr, "evaluated %s\n", set)
	}
	if err := writeCSV(*out, rows); err != nil {
		return err
	}
	sum := summarize(rows, settings)
	if err := os.WriteFile(*svg, []byte(plotSVG(sum)), 0o644); err != nil {
		return err
	}
	fmt.Fprint(stdout, summaryTable(sum))
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func readPrompts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l struct {
			Prompt string `json:"prompt"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Prompt == "" {
			return nil, fmt.Errorf("%s:%d: want {\"prompt\": \"...\"}", path, n)
		}
		out = append(out, l.Prompt)
	}
	return out, sc.Err()
}

func writeCSV(path string, rows []evalRow) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	w := csv.NewWriter(f)
	w.Write([]string{"strategy", "parameters", "prompt", "seed", "samples", "backend_tokens", "latency_ms", "reward"})
	for _, r := range rows {
		w.Write([]string{r.strategy, r.setting, strconv.Itoa(r.prompt + 1), strconv.FormatInt(r.seed, 10), strconv.Itoa(r.samples),
			strconv.Itoa(r.tokens), strconv.FormatFloat(float64(r.latency.Microseconds())/1000, 'f', 3, 64), strconv.FormatFloat(r.reward, 'f', 6, 64)})
	}
	w.Flush()
	return w.Error()
}

// point is one setting's means.
type point struct {
	setting, strategy string
	samples, tokens   float64
	reward            float64
	latencyMS         float64
}

func summarize(rows []evalRow, settings []string) []point {
	by := map[string]*point{}
	count := map[string]float64{}
	for _, r := range rows {
		p := by[r.setting]
		if p == nil {
			p = &point{setting: r.setting, strategy: r.strategy}
			by[r.setting] = p
		}
		p.samples += float64(r.samples)
		p.tokens += float64(r.tokens)
		p.reward += r.reward
		p.latencyMS += float64(r.latency.Microseconds()) / 1000
		count[r.setting]++
	}
	var out []point
	for _, s := range settings {
		p := by[s]
		n := count[s]
		p.samples, p.tokens, p.reward, p.latencyMS = p.samples/n, p.tokens/n, p.reward/n, p.latencyMS/n
		out = append(out, *p)
	}
	return out
}

// gains reads the curve: the reward gain of each setting over a single
// sample, as a share of best-of-16's gain, and samples as a share of 16.
func gains(ps []point) (base, best float64, ok bool) {
	for _, p := range ps {
		if p.setting == defaultSettings[0] {
			base, ok = p.reward, true
		}
		if p.setting == defaultSettings[4] {
			best = p.reward
		}
	}
	return base, best, ok
}

func summaryTable(ps []point) string {
	var b strings.Builder
	base, best, ok := gains(ps)
	b.WriteString("| strategy | parameters | mean samples | mean backend tokens | mean latency (ms) | mean reward | share of best-of-16 gain | share of 16 samples |\n|---|---|---|---|---|---|---|---|\n")
	for _, p := range ps {
		share := "–"
		if ok && best != base {
			share = fmt.Sprintf("%.0f%%", 100*(p.reward-base)/(best-base))
		}
		fmt.Fprintf(&b, "| %s | `%s` | %.2f | %.0f | %.2f | %.4f | %s | %.0f%% |\n", p.strategy, p.setting, p.samples, p.tokens, p.latencyMS, p.reward, share, 100*p.samples/16)
	}
	return b.String()
}

// plotSVG draws mean reward against mean samples (log scale): best-of-N as
// a line, other settings as labelled points.
func plotSVG(ps []point) string {
	const w, h, m = 640.0, 400.0, 60.0
	minR, maxR := ps[0].reward, ps[0].reward
	for _, p := range ps {
		minR, maxR = min(minR, p.reward), max(maxR, p.reward)
	}
	if maxR == minR {
		maxR = minR + 1
	}
	pad := (maxR - minR) * 0.1
	minR, maxR = minR-pad, maxR+pad
	x := func(s float64) float64 { return m + (w-2*m)*log2(s)/4 }
	y := func(r float64) float64 { return h - m - (h-2*m)*(r-minR)/(maxR-minR) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="100%%" height="100%%" fill="white"/>`+"\n")
	fmt.Fprintf(&b, `<line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/><line x1="%.0f" y1="%.0f" x2="%.0f" y2="%.0f" stroke="black"/>`+"\n", m, h-m, w-m, h-m, m, m, m, h-m)
	for _, s := range []float64{1, 2, 4, 8, 16} {
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" text-anchor="middle">%g</text>`+"\n", x(s), h-m+18, s)
	}
	for i := range 5 {
		r := minR + (maxR-minR)*float64(i)/4
		fmt.Fprintf(&b, `<text x="%.0f" y="%.1f" text-anchor="end">%.3f</text>`+"\n", m-6, y(r)+4, r)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="%.0f" text-anchor="middle">mean samples per request (log scale)</text>`+"\n", w/2, h-15)
	fmt.Fprintf(&b, `<text x="15" y="%.0f" transform="rotate(-90 15 %.0f)" text-anchor="middle">mean reward (utility of the chosen answer)</text>`+"\n", h/2, h/2)
	var line []string
	var bon []point
	for _, p := range ps {
		if p.strategy == steering.BestOfN {
			bon = append(bon, p)
		}
	}
	sort.Slice(bon, func(i, j int) bool { return bon[i].samples < bon[j].samples })
	for _, p := range bon {
		line = append(line, fmt.Sprintf("%.1f,%.1f", x(p.samples), y(p.reward)))
	}
	fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="#1f77b4" stroke-width="2"/>`+"\n", strings.Join(line, " "))
	k := 0
	for _, p := range ps {
		color := "#1f77b4"
		if p.strategy != steering.BestOfN {
			color = "#d62728"
			k++
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" fill="%s">A%d</text>`+"\n", x(p.samples)+6, y(p.reward)-6, color, k)
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="4" fill="%s"/>`+"\n", x(p.samples), y(p.reward), color)
	}
	fmt.Fprintf(&b, `<text x="%.0f" y="20" fill="#1f77b4">— best-of-N (N = 1, 2, 4, 8, 16)</text>`+"\n", m)
	fmt.Fprintf(&b, `<text x="%.0f" y="36" fill="#d62728">● A1…A%d: adaptive settings, in the order of the table</text>`+"\n", m, k)
	b.WriteString("</svg>\n")
	return b.String()
}

func log2(x float64) float64 {
	l := 0.0
	for x >= 2 {
		x /= 2
		l++
	}
	// linear between powers of two is enough for a plot axis
	return l + (x - 1)
}
