package eval

import (
	"bytes"
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
	"github.com/steergate/steergate/rm/rules"
	"github.com/steergate/steergate/steering"
)

func setup(t *testing.T) Options {
	t.Helper()
	r, err := rules.New(rules.Config{Keywords: map[string][]string{"helpfulness": {`\bbecause\b`}}})
	if err != nil {
		t.Fatal(err)
	}
	broken := &rmtest.Table{Name: "broken", Names: []string{"x"}, Err: errors.New("down")}
	e := steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": r, "broken": broken}, Limits: steering.Limits{MaxSamples: 16}})
	return Options{Engine: e, Route: backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"},
		Prompts: []string{"Why is the sky blue?", "How can I sleep better?"}, Seeds: []int64{0, 1000}, MaxTokens: 16,
		Judge: Judge{Reward: r, Weights: rules.DefaultWeights(r.Objectives())}}
}

// Every strategy runs, none included, and a failing selection reward under
// on_reward_error: first; a setting given twice is two settings with the
// same figures; adaptive gets a best-of-N baseline with its mean number of
// samples, run on the same prompts and seeds.
func TestEveryStrategyRuns(t *testing.T) {
	o := setup(t)
	o.Settings = []string{`{"strategy":"none"}`, `{"strategy":"best_of_n","n":2,"reward":"broken","on_reward_error":"first"}`,
		`{"strategy":"adaptive","initial":3,"max_samples":3}`, `{"strategy":"best_of_n","n":3}`, `{"strategy":"best_of_n","n":3}`,
		`{"strategy":"adaptive","initial":2,"max_samples":2}`}
	o.Concurrency = 3
	res, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	// Best-of-1 is added to measure one sample's tokens. Adaptive with 3
	// samples pairs with the given best-of-3 (the last one given); with 2,
	// with an added best-of-2 (the given best-of-2 has other parameters).
	if len(res.Settings) != 8 || res.Settings[6] != `{"strategy":"best_of_n","n":1}` || res.Settings[7] != `{"strategy":"best_of_n","n":2}` ||
		res.Baseline[2] != 4 || res.Baseline[5] != 7 || len(res.Baseline) != 2 {
		t.Fatalf("settings %v, baselines %v", res.Settings, res.Baseline)
	}
	if len(res.Rows) != len(res.Settings)*len(o.Prompts)*len(o.Seeds) {
		t.Fatalf("%d rows", len(res.Rows))
	}
	for i, r := range res.Rows {
		if math.IsNaN(r.Reward) || r.Tokens == 0 || r.Samples == 0 || r.Setting != i/4 || r.Prompt != i/2%2 || r.Seed != o.Seeds[i%2] {
			t.Errorf("row %d %+v", i, r)
		}
	}
	s := Summarize(res, 1)
	if s[3].Reward != s[4].Reward || s[3].Samples != 3 || s[4].Runs != 4 {
		t.Errorf("repeated setting: %+v vs %+v", s[3], s[4])
	}
	if s[0].Strategy != steering.None || s[0].Samples != 1 || s[0].Baseline != -1 {
		t.Errorf("none: %+v", s[0])
	}
	// Adaptive that may not stop early draws what best-of-N with the same
	// seeds draws, so the paired difference is exactly 0.
	if s[2].Baseline != 4 || s[2].Diff != (Interval{}) || s[2].TokenRatio != 1 {
		t.Errorf("adaptive against best-of-3: %+v", s[2])
	}
	table := Table(s, res.Rows)
	for _, want := range []string{"| 5 | best_of_n |", "| 3 | 5 (`{\"strategy\":\"best_of_n\",\"n\":3}`) | +0.0000 [+0.0000, +0.0000] | 1.00 |", "| 6 | 8 ("} {
		if !strings.Contains(table, want) {
			t.Errorf("table has no %q:\n%s", want, table)
		}
	}
	// The CSV keeps every run and reads back as written.
	var buf bytes.Buffer
	if err := WriteCSV(&buf, res.Rows); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	for i := range back {
		a, b := back[i], res.Rows[i]
		if a.Setting != b.Setting || a.Params != b.Params || a.Prompt != b.Prompt || a.Seed != b.Seed || a.Reward != b.Reward ||
			a.Tokens != b.Tokens || a.Samples != b.Samples || a.StopReason != b.StopReason || a.Latency != b.Latency.Truncate(time.Microsecond) {
			t.Errorf("row %d read back as %+v, was %+v", i, a, b)
		}
	}
	if _, err := ReadCSV(strings.NewReader("a,b\n1,2\n")); err == nil {
		t.Error("a CSV with another header was read")
	}
}

// The share of the gain against a case computed by hand: one prompt where
// best-of-1 scores 1, best-of-16 3 and the setting 2.5 with a quarter of
// the tokens: 75% of the gain, 25% of the tokens; one prompt gives no
// interval (every resample would be the same).
func TestGainShare(t *testing.T) {
	rows := []Row{
		{Setting: 0, Reward: 1, Tokens: 10}, {Setting: 1, Reward: 3, Tokens: 160}, {Setting: 2, Reward: 2, Tokens: 30}, {Setting: 2, Reward: 3, Tokens: 50, Seed: 1},
	}
	sh := GainShare(rows, 2, 0, 1, 100, 1)
	if sh.Gain.Mean != 0.75 || sh.Tokens.Mean != 0.25 || !math.IsNaN(sh.Gain.Lo) || !math.IsNaN(sh.Tokens.Hi) {
		t.Errorf("%+v", sh)
	}
	if got := percent(sh.Gain); got != "75% [no interval]" {
		t.Errorf("printed %q", got)
	}
	// Two prompts, one without any gain: a resample of it alone has no
	// share, and more than the interval's tail of them leave no interval.
	rows = append(rows, Row{Prompt: 1, Setting: 0, Reward: 2, Tokens: 10}, Row{Prompt: 1, Setting: 1, Reward: 2, Tokens: 160}, Row{Prompt: 1, Setting: 2, Reward: 2, Tokens: 30})
	if sh := GainShare(rows, 2, 0, 1, 1000, 1); math.Abs(sh.Gain.Mean-0.75) > 1e-12 || !math.IsNaN(sh.Gain.Lo) || math.IsNaN(sh.Tokens.Lo) {
		t.Errorf("a prompt without gain: %+v", sh)
	}
	// No gain anywhere: the share is undefined, not NaN%.
	flat := []Row{{Setting: 0, Reward: 2}, {Setting: 1, Reward: 2}, {Setting: 2, Reward: 2}, {Prompt: 1, Setting: 0, Reward: 1}, {Prompt: 1, Setting: 1, Reward: 1}, {Prompt: 1, Setting: 2, Reward: 1}}
	if got := percent(GainShare(flat, 2, 0, 1, 100, 1).Gain); got != "undefined" {
		t.Errorf("no gain: %q", got)
	}
}

// The shipped splits: at least 200 prompts in all, none twice, none in
// both.
func TestSplits(t *testing.T) {
	dev, err := ReadPrompts("dev")
	if err != nil {
		t.Fatal(err)
	}
	test, err := ReadPrompts("test")
	if err != nil {
		t.Fatal(err)
	}
	if len(dev)+len(test) < 200 || len(test) < 100 {
		t.Errorf("%d dev and %d test prompts", len(dev), len(test))
	}
	seen := map[string]string{}
	for split, ps := range map[string][]string{"dev": dev, "test": test} {
		for _, p := range ps {
			if other, ok := seen[strings.ToLower(p)]; ok {
				t.Errorf("%q is in %s and %s", p, other, split)
			}
			seen[strings.ToLower(p)] = split
		}
	}
}

func TestRefusesEmptyInput(t *testing.T) {
	o := setup(t)
	o.Settings = []string{`{"strategy":"none"}`}
	for name, mod := range map[string]func(*Options){
		"no seeds":    func(o *Options) { o.Seeds = nil },
		"no prompts":  func(o *Options) { o.Prompts = nil },
		"no settings": func(o *Options) { o.Settings = nil },
		"not object":  func(o *Options) { o.Settings = []string{`[1]`} },
	} {
		c := o
		mod(&c)
		if _, err := Run(context.Background(), c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// The bootstrap interval against a case computed by hand: two prompts with
// means 0 and 1 resample to 0, 0.5 or 1 with chances ¼, ½, ¼.
func TestClusteredBootstrap(t *testing.T) {
	iv := ClusteredBootstrap([][]float64{{0, 0}, {1, 1, 1}}, 4000, 7)
	if iv.Mean != 0.5 || iv.Lo != 0 || iv.Hi != 1 {
		t.Errorf("%+v", iv)
	}
	iv = ClusteredBootstrap([][]float64{{2}, {2}, {2}}, 100, 7)
	if iv.Mean != 2 || iv.Lo != 2 || iv.Hi != 2 {
		t.Errorf("constant: %+v", iv)
	}
}
