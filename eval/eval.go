package eval

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/steering"
)

// Engine is what eval runs settings through: the gateway's own engine.
type Engine interface {
	Plan(c *steering.Call) (*steering.Plan, error)
	Run(ctx context.Context, c *steering.Call, p *steering.Plan, emit func(backend.Delta) error) (*steering.Outcome, error)
}

// Judge measures each final answer the same way whatever setting produced
// it: a reward and the weights that make its utility. It may be the reward
// the settings select with, or another one that did not take part in the
// selection.
type Judge struct {
	Reward  rm.Rewarder
	Weights map[string]float64
}

// Options describe one evaluation.
type Options struct {
	Engine      Engine
	Route       backend.Route
	Prompts     []string
	Seeds       []int64
	MaxTokens   int
	Settings    []string // steering objects
	Judge       Judge
	Concurrency int // runs in flight at once; 0: 1
	MaxN        int // the largest best-of-N the gateway allows (server.max_samples); 0: no limit
}

// Row is one run of one setting on one prompt with one seed.
type Row struct {
	Setting    int // index into Result.Settings
	Params     string
	Strategy   string
	Prompt     int
	Seed       int64
	Samples    int
	Tokens     int // backend tokens, prompt and completion, every call
	Latency    time.Duration
	Reward     float64 // the judge's utility of the final answer
	StopReason string
}

// Result is every run, the settings they ran (the given ones, then the
// baselines eval added), and for each setting that is neither best-of-N
// nor none, the index of its budget-matched best-of-N.
type Result struct {
	Rows     []Row
	Settings []string
	Baseline map[int]int
	// Unmatched are the settings whose budget-matched best-of-N would
	// draw more than MaxN samples, with that N.
	Unmatched map[int]int
}

// Run evaluates every setting on every prompt with every seed. For each
// setting that is neither best-of-N nor none it then runs best-of-N with
// the same budget on the same prompts and seeds, for paired comparison:
// N is the setting's mean backend tokens over one sample's (best-of-1,
// added when not given), rounded, so that pruned prefixes count by their
// tokens. The response cache is always off: every run computes. Sample i
// of a run with seed s uses seed s+i, so best-of-N and adaptive with one
// seed draw the same samples in the same order.
func Run(ctx context.Context, o Options) (*Result, error) {
	switch {
	case len(o.Prompts) == 0:
		return nil, errors.New("no prompts to evaluate")
	case len(o.Seeds) == 0:
		return nil, errors.New("no seeds: give at least one")
	case len(o.Settings) == 0:
		return nil, errors.New("no settings to evaluate")
	case o.Judge.Reward == nil:
		return nil, errors.New("no reward to judge the answers with")
	}
	res := &Result{Settings: append([]string(nil), o.Settings...), Baseline: map[int]int{}, Unmatched: map[int]int{}}
	rows, err := o.run(ctx, 0, o.Settings)
	if err != nil {
		return nil, err
	}
	res.Rows = rows
	have := map[int]int{} // n → a plain best-of-N setting already run
	for i, s := range res.Settings {
		if n, ok := plainBestOfN(s); ok {
			have[n] = i
		}
	}
	more := func(sets ...string) error {
		extra, err := o.run(ctx, len(res.Settings), sets)
		res.Rows = append(res.Rows, extra...)
		res.Settings = append(res.Settings, sets...)
		return err
	}
	var matched []int
	for i := range o.Settings {
		if st := strategyOf(rows, i); st != steering.BestOfN && st != steering.None {
			matched = append(matched, i)
		}
	}
	if len(matched) == 0 {
		return res, nil
	}
	if _, ok := have[1]; !ok {
		have[1] = len(res.Settings)
		if err := more(`{"strategy":"best_of_n","n":1}`); err != nil {
			return nil, err
		}
	}
	one := mean(values(res.Rows, have[1], func(r Row) float64 { return float64(r.Tokens) }))
	var extra []string
	for _, i := range matched {
		n := max(1, int(math.Round(mean(values(rows, i, func(r Row) float64 { return float64(r.Tokens) }))/one)))
		if o.MaxN > 0 && n > o.MaxN {
			res.Unmatched[i] = n
			continue
		}
		j, ok := have[n]
		if !ok {
			j = len(res.Settings) + len(extra)
			have[n] = j
			extra = append(extra, fmt.Sprintf(`{"strategy":"best_of_n","n":%d}`, n))
		}
		res.Baseline[i] = j
	}
	if len(extra) > 0 {
		if err := more(extra...); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// run evaluates settings numbered from first, rows in setting, prompt,
// seed order whatever the concurrency.
func (o Options) run(ctx context.Context, first int, settings []string) ([]Row, error) {
	per := len(o.Prompts) * len(o.Seeds)
	rows := make([]Row, len(settings)*per)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, o.Concurrency))
	for si, set := range settings {
		raw, err := cacheOff(set)
		if err != nil {
			return nil, fmt.Errorf("setting %d %s: %w", first+si+1, set, err)
		}
		for pi, q := range o.Prompts {
			for ki, seed := range o.Seeds {
				row := &rows[si*per+pi*len(o.Seeds)+ki]
				*row = Row{Setting: first + si, Params: set, Prompt: pi, Seed: seed}
				g.Go(func() error { return o.one(gctx, row, raw, q) })
			}
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return rows, nil
}

// one runs one setting on one prompt with one seed and judges the answer.
func (o Options) one(ctx context.Context, row *Row, raw json.RawMessage, prompt string) error {
	seed := row.Seed
	r := &backend.Request{Model: o.Route.Target, Messages: []backend.Message{{Role: "user", Content: prompt}}, Seed: &seed, MaxTokens: o.MaxTokens}
	call := &steering.Call{Route: o.Route, Request: r, Steering: raw}
	where := fmt.Sprintf("setting %d %s, prompt %d, seed %d", row.Setting+1, row.Params, row.Prompt+1, seed)
	plan, err := o.Engine.Plan(call)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	t0 := time.Now()
	out, err := o.Engine.Run(ctx, call, plan, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", where, err)
	}
	row.Latency = time.Since(t0)
	row.Strategy, row.Samples = plan.Name, 1
	row.Tokens = out.Generation.Usage.PromptTokens + out.Generation.Usage.CompletionTokens
	if out.Info != nil {
		row.Samples, row.StopReason = out.Info.SamplesUsed, out.Info.StopReason
	}
	if row.Reward, err = o.Judge.utility(ctx, r, out.Generation); err != nil {
		return fmt.Errorf("judging %s: %w", where, err)
	}
	return nil
}

// plainBestOfN reports n for a setting that is exactly best-of-N.
func plainBestOfN(set string) (int, bool) {
	var s struct {
		Strategy string `json:"strategy"`
		N        int    `json:"n"`
	}
	var keys map[string]json.RawMessage
	if json.Unmarshal([]byte(set), &keys) != nil || len(keys) != 2 || json.Unmarshal([]byte(set), &s) != nil {
		return 0, false
	}
	return s.N, s.Strategy == steering.BestOfN && s.N > 0
}

func strategyOf(rows []Row, setting int) string {
	for _, r := range rows {
		if r.Setting == setting {
			return r.Strategy
		}
	}
	return ""
}

// values lists one value of each of a setting's runs.
func values(rows []Row, setting int, v func(Row) float64) []float64 {
	var out []float64
	for _, r := range rows {
		if r.Setting == setting {
			out = append(out, v(r))
		}
	}
	return out
}

// cacheOff lays "cache": {"mode": "off"} over a setting.
func cacheOff(set string) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal([]byte(set), &m); err != nil || m == nil {
		return nil, fmt.Errorf("a setting must be a JSON object: %v", err)
	}
	m["cache"] = json.RawMessage(`{"mode":"off"}`)
	return json.Marshal(m)
}

func (j Judge) utility(ctx context.Context, r *backend.Request, g *backend.Generation) (float64, error) {
	if len(g.Choices) == 0 {
		return math.NaN(), nil
	}
	c := g.Choices[0]
	scores, err := j.Reward.Score(ctx, []rm.Sample{{Messages: r.Messages, Response: rm.Render(c)}})
	if err == nil {
		err = rm.CheckShape(scores, 1, len(j.Reward.Objectives()))
	}
	if err != nil {
		return 0, err
	}
	return rm.UtilityFor(j.Reward, j.Weights, 0, 0).Of(j.Reward.Objectives(), scores[0], c.Tokens), nil
}

// The shipped prompt sets: dev for tuning, test for reporting. They share
// no topic.
var (
	//go:embed dev.jsonl
	devPrompts []byte
	//go:embed test.jsonl
	testPrompts []byte
)

// Splits names the shipped prompt sets.
var Splits = map[string][]byte{"dev": devPrompts, "test": testPrompts}

// ReadPrompts reads JSON lines {"prompt": "..."} from a file, or one of
// the shipped splits by name ("dev", "test").
func ReadPrompts(path string) ([]string, error) {
	if b, ok := Splits[path]; ok {
		return parsePrompts(bytes.NewReader(b), "the "+path+" split")
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parsePrompts(f, path)
}

func parsePrompts(r io.Reader, name string) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		if strings.TrimSpace(sc.Text()) == "" {
			continue
		}
		var l struct {
			Prompt string `json:"prompt"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil || l.Prompt == "" {
			return nil, fmt.Errorf("%s:%d: want {\"prompt\": \"...\"}", name, n)
		}
		out = append(out, l.Prompt)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no prompts", name)
	}
	return out, nil
}

var csvHeader = []string{"setting", "strategy", "parameters", "prompt", "seed", "samples", "backend_tokens", "latency_ms", "reward", "stop_reason"}

// WriteCSV writes every run.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	cw.Write(csvHeader)
	for _, r := range rows {
		cw.Write([]string{strconv.Itoa(r.Setting + 1), r.Strategy, r.Params, strconv.Itoa(r.Prompt + 1), strconv.FormatInt(r.Seed, 10),
			strconv.Itoa(r.Samples), strconv.Itoa(r.Tokens), strconv.FormatFloat(float64(r.Latency.Microseconds())/1000, 'f', 3, 64),
			strconv.FormatFloat(r.Reward, 'g', -1, 64), r.StopReason})
	}
	cw.Flush()
	return cw.Error()
}

// ReadCSV reads what WriteCSV wrote.
func ReadCSV(r io.Reader) ([]Row, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || strings.Join(recs[0], ",") != strings.Join(csvHeader, ",") {
		return nil, errors.New("not an eval CSV (its header differs)")
	}
	rows := make([]Row, 0, len(recs)-1)
	for i, f := range recs[1:] {
		var r Row
		var errs []error
		num := func(s string) int { v, err := strconv.Atoi(s); errs = append(errs, err); return v }
		flt := func(s string) float64 { v, err := strconv.ParseFloat(s, 64); errs = append(errs, err); return v }
		r.Setting, r.Strategy, r.Params, r.Prompt = num(f[0])-1, f[1], f[2], num(f[3])-1
		seed, err := strconv.ParseInt(f[4], 10, 64)
		r.Seed, errs = seed, append(errs, err)
		r.Samples, r.Tokens = num(f[5]), num(f[6])
		r.Latency = time.Duration(math.Round(flt(f[7])*1000)) * time.Microsecond
		r.Reward, r.StopReason = flt(f[8]), f[9]
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("line %d: %w", i+2, err)
		}
		rows = append(rows, r)
	}
	return rows, nil
}
