package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/eval"
	"github.com/steergate/steergate/steering"
)

// defaultSettings are the strategies eval compares when none are given:
// best-of-N for N = 1..16 (N = 1 is a single sample) and adaptive with its
// defaults.
var defaultSettings = []string{
	`{"strategy":"best_of_n","n":1}`,
	`{"strategy":"best_of_n","n":2}`,
	`{"strategy":"best_of_n","n":4}`,
	`{"strategy":"best_of_n","n":8}`,
	`{"strategy":"best_of_n","n":16}`,
	`{"strategy":"adaptive"}`,
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func evalCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("eval", flag.ContinueOnError)
	file := fs.String("config", configs.DefaultFile, "config file")
	model := fs.String("model", "reference", "model (route) to steer")
	prompts := fs.String("prompts", "dev", `the shipped split "dev" (tune on it) or "test" (report on it), or a file of JSON lines {"prompt": "..."}`)
	seeds := fs.Int("seeds", 4, "seeds per prompt")
	firstSeed := fs.Int64("first-seed", 0, "the first seed; run k uses first-seed + 1000·k (sample i adds i)")
	maxTokens := fs.Int("max-tokens", 48, "max_tokens per sample")
	judgeName := fs.String("judge", "", "reward that scores every final answer, with its own default weights (default: the route's reward and weights, the ones the settings select with)")
	delay := fs.Duration("token-delay", 0, "time between tokens for every reference backend, so that wall time means something (0: the config's)")
	concurrency := fs.Int("concurrency", 4, "runs in flight at once")
	out := fs.String("out", "eval-results.csv", "CSV of every run")
	svg := fs.String("svg", "eval-curve.svg", "plot of mean reward against backend tokens")
	var settings multiFlag
	fs.Var(&settings, "setting", "a steering object to evaluate (repeatable); default: best-of-N 1..16 and adaptive")
	if err := parseAll(fs, args); err != nil {
		return err
	}
	if *seeds < 1 {
		return fmt.Errorf("--seeds must be at least 1")
	}
	if *concurrency < 1 {
		return fmt.Errorf("--concurrency must be at least 1")
	}
	if len(settings) == 0 {
		settings = defaultSettings
	}
	qs, err := eval.ReadPrompts(*prompts)
	if err != nil {
		return err
	}
	cfg, err := configs.Load(*file)
	if err != nil {
		return err
	}
	if *delay > 0 {
		for name, b := range cfg.Backends {
			if b.Type == configs.TypeReference {
				b.TokenDelay = *delay
				cfg.Backends[name] = b
			}
		}
	}
	a, err := assemble(cfg, newLogger(configs.Log{Level: "warn", Format: cfg.Log.Format}, stderr), offline)
	if err != nil {
		return err
	}
	defer a.close()
	rt, err := a.router.Resolve(*model)
	if err != nil {
		return err
	}
	judge, name, err := evalJudge(a, rt, *judgeName, *file)
	if err != nil {
		return err
	}
	var seedList []int64
	for k := range int64(*seeds) {
		seedList = append(seedList, *firstSeed+1000*k)
	}
	res, err := eval.Run(ctx, eval.Options{Engine: a.engine, Route: rt, Prompts: qs, Seeds: seedList, MaxTokens: *maxTokens,
		Settings: settings, Judge: judge, Concurrency: *concurrency, MaxN: cfg.Server.MaxSamples})
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := eval.WriteCSV(f, res.Rows); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	sum := eval.Summarize(res, 1)
	if err := os.WriteFile(*svg, []byte(eval.PlotSVG(sum)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d prompts × %d seeds; judged by reward %q; intervals: prompt-clustered bootstrap, 95%%\n\n", len(qs), *seeds, name)
	fmt.Fprint(stdout, eval.Table(sum, res.Rows))
	return nil
}

// evalJudge picks the reward and weights that measure every answer: the
// named reward with its own default weights, or the route's reward with
// the weights its steering selects by.
func evalJudge(a *app, rt backend.Route, name, file string) (eval.Judge, string, error) {
	if name != "" {
		r, ok := a.rewards.Rewarders[name]
		if !ok {
			return eval.Judge{}, "", a.noReward("--judge", name, file)
		}
		info := a.engine.Resolver().Rewards[name]
		return eval.Judge{Reward: r, Weights: steering.DefaultWeights(info.Objectives, info.Weights)}, name, nil
	}
	zero := int64(0)
	plan, err := a.engine.Plan(&steering.Call{Route: rt, Steering: json.RawMessage(`{"strategy":"best_of_n","n":2}`),
		Request: &backend.Request{Model: rt.Target, Messages: []backend.Message{{Role: "user", Content: "x"}}, Seed: &zero}})
	if err != nil {
		return eval.Judge{}, "", fmt.Errorf("the route's reward: %w (name one with --judge)", err)
	}
	return eval.Judge{Reward: a.rewards.Rewarders[plan.RewardName], Weights: plan.Weights()}, plan.RewardName, nil
}
