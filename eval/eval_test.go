package eval

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"

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
// same figures.
func TestEveryStrategyRuns(t *testing.T) {
	o := setup(t)
	o.Settings = []string{`{"strategy":"none"}`, `{"strategy":"best_of_n","n":2,"reward":"broken","on_reward_error":"first"}`,
		`{"strategy":"adaptive","initial":2,"max_samples":4}`, `{"strategy":"best_of_n","n":3}`, `{"strategy":"best_of_n","n":3}`}
	rows, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(o.Settings)*len(o.Prompts)*len(o.Seeds) {
		t.Fatalf("%d rows", len(rows))
	}
	for _, r := range rows {
		if math.IsNaN(r.Reward) || r.Tokens == 0 || r.Samples == 0 {
			t.Errorf("row %+v", r)
		}
	}
	s := Summarize(rows, o.Settings, 1)
	if s[3].Reward != s[4].Reward || s[3].Samples != 3 || s[4].Runs != 4 {
		t.Errorf("repeated setting: %+v vs %+v", s[3], s[4])
	}
	if s[0].Strategy != steering.None || s[0].Samples != 1 {
		t.Errorf("none: %+v", s[0])
	}
	if !strings.Contains(Table(s), "| 5 | best_of_n |") {
		t.Errorf("table:\n%s", Table(s))
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
