package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

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
	prompts := fs.String("prompts", "eval/prompts.jsonl", `JSON lines {"prompt": "..."}`)
	seeds := fs.Int("seeds", 4, "seeds per prompt")
	firstSeed := fs.Int64("first-seed", 0, "the first seed; run k uses first-seed + 1000·k (sample i adds i)")
	maxTokens := fs.Int("max-tokens", 48, "max_tokens per sample")
	judgeName := fs.String("judge", "", "reward that scores every final answer (default: the reward the settings select with)")
	out := fs.String("out", "eval-results.csv", "CSV of every run")
	svg := fs.String("svg", "eval-curve.svg", "plot of mean reward against backend tokens")
	var settings multiFlag
	fs.Var(&settings, "setting", "a steering object to evaluate (repeatable); default: best-of-N 1..16 and adaptive")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *seeds < 1 {
		return fmt.Errorf("--seeds must be at least 1")
	}
	if len(settings) == 0 {
		settings = defaultSettings
	}
	qs, err := eval.ReadPrompts(*prompts)
	if err != nil {
		return err
	}
	a, err := loadOffline(*file, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	rt, err := a.router.Resolve(*model)
	if err != nil {
		return err
	}
	name := *judgeName
	if name == "" {
		name = a.engine.Resolver().Default
	}
	judge, ok := a.rewards.Rewarders[name]
	if !ok {
		return fmt.Errorf("--judge %q: no such reward in %s", name, *file)
	}
	info := a.engine.Resolver().Rewards[name]
	var seedList []int64
	for k := range int64(*seeds) {
		seedList = append(seedList, *firstSeed+1000*k)
	}
	rows, err := eval.Run(ctx, eval.Options{Engine: a.engine, Route: rt, Prompts: qs, Seeds: seedList, MaxTokens: *maxTokens,
		Settings: settings, Judge: eval.Judge{Reward: judge, Weights: steering.DefaultWeights(info.Objectives, info.Weights)}})
	if err != nil {
		return err
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := eval.WriteCSV(f, rows); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	sum := eval.Summarize(rows, settings, 1)
	if err := os.WriteFile(*svg, []byte(eval.PlotSVG(sum)), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "judged by reward %q; intervals: prompt-clustered bootstrap, 95%%\n\n", name)
	fmt.Fprint(stdout, eval.Table(sum))
	return nil
}
