package eval

import (
	"bufio"
	"context"
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
// it: a reward and the weights that make its utility.
type Judge struct {
	Reward  rm.Rewarder
	Weights map[string]float64
}

// Options describe one evaluation.
type Options struct {
	Engine    Engine
	Route     backend.Route
	Prompts   []string
	Seeds     []int64
	MaxTokens int
	Settings  []string // steering objects
	Judge     Judge
}

// Row is one run of one setting on one prompt with one seed.
type Row struct {
	Setting    int // index into Options.Settings
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

// Run evaluates every setting on every prompt with every seed. The
// response cache is always off: every run computes. Sample i of a run with
// seed s uses seed s+i, so seeds are spaced 1000 apart by the caller to
// keep runs from sharing samples.
func Run(ctx context.Context, o Options) ([]Row, error) {
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
	var rows []Row
	for si, set := range o.Settings {
		raw, err := cacheOff(set)
		if err != nil {
			return nil, fmt.Errorf("setting %d %s: %w", si+1, set, err)
		}
		for pi, q := range o.Prompts {
			for _, seed := range o.Seeds {
				r := &backend.Request{Model: o.Route.Target, Messages: []backend.Message{{Role: "user", Content: q}}, Seed: &seed, MaxTokens: o.MaxTokens}
				call := &steering.Call{Route: o.Route, Request: r, Steering: raw}
				plan, err := o.Engine.Plan(call)
				if err != nil {
					return nil, fmt.Errorf("setting %d %s: %w", si+1, set, err)
				}
				t0 := time.Now()
				out, err := o.Engine.Run(ctx, call, plan, nil)
				if err != nil {
					return nil, fmt.Errorf("setting %d %s, prompt %d, seed %d: %w", si+1, set, pi+1, seed, err)
				}
				took := time.Since(t0)
				row := Row{Setting: si, Params: set, Strategy: plan.Name, Prompt: pi, Seed: seed, Samples: 1, Latency: took,
					Tokens: out.Generation.Usage.PromptTokens + out.Generation.Usage.CompletionTokens}
				if out.Info != nil {
					row.Samples, row.StopReason = out.Info.SamplesUsed, out.Info.StopReason
				}
				if row.Reward, err = o.Judge.utility(ctx, r, out.Generation); err != nil {
					return nil, fmt.Errorf("judging setting %d, prompt %d: %w", si+1, pi+1, err)
				}
				rows = append(rows, row)
			}
		}
	}
	return rows, nil
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
	u := rm.Utility{Weights: j.Weights}
	return u.Of(j.Reward.Objectives(), scores[0], c.Tokens), nil
}

// ReadPrompts reads JSON lines {"prompt": "..."}.
func ReadPrompts(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
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
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s: no prompts", path)
	}
	return out, nil
}

// WriteCSV writes every run.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"setting", "strategy", "parameters", "prompt", "seed", "samples", "backend_tokens", "latency_ms", "reward", "stop_reason"})
	for _, r := range rows {
		cw.Write([]string{strconv.Itoa(r.Setting + 1), r.Strategy, r.Params, strconv.Itoa(r.Prompt + 1), strconv.FormatInt(r.Seed, 10),
			strconv.Itoa(r.Samples), strconv.Itoa(r.Tokens), strconv.FormatFloat(float64(r.Latency.Microseconds())/1000, 'f', 3, 64),
			strconv.FormatFloat(r.Reward, 'f', 6, 64), r.StopReason})
	}
	cw.Flush()
	return cw.Error()
}
