package steering

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
)

// voting answers sample i (seed i) with texts[i], or calls[i] as a tool
// call.
type voting struct {
	scripted
	texts []string
	tools []string // tool call arguments, when the answers are calls
}

func (v *voting) Caps() backend.Caps {
	return backend.Caps{Logprobs: true, MaxTopLogprobs: 20, Tools: true}
}

func (v *voting) Generate(_ context.Context, r *backend.Request) (*backend.Generation, error) {
	v.scripted.calls.Add(1)
	i := int(*r.Seed)
	c := backend.Choice{FinishReason: backend.FinishStop, Tokens: 3}
	if v.tools != nil {
		c.ToolCalls = []backend.ToolCall{{ID: "c", Type: "function", Name: "f", Arguments: v.tools[i]}}
		c.FinishReason = backend.FinishToolCalls
	} else {
		c.Text = v.texts[i]
	}
	// Later samples are more confident, so logprob tie-breaks prefer them.
	c.Logprobs = []backend.TokenLogprob{{Token: c.Text, Logprob: -1 / float64(i+1)}}
	return &backend.Generation{Choices: []backend.Choice{c}, Usage: backend.Usage{PromptTokens: 2, CompletionTokens: 3}}, nil
}

func scRun(t *testing.T, b backend.Backend, reward rm.Rewarder, steer string) *Outcome {
	t.Helper()
	rewards := map[string]rm.Rewarder{}
	if reward != nil {
		rewards["t"] = reward
	}
	e := NewEngine(Options{Rewards: rewards, Limits: Limits{MaxSamples: 32}})
	c := call(steer, 1)
	c.Route.Backend = b
	out, err := run(context.Background(), e, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestSelfConsistencyMajority(t *testing.T) {
	b := &voting{texts: []string{"Paris.", "Lyon", " paris ", "Lyon", "PARIS", "Nice"}}
	out := scRun(t, b, nil, `{"strategy":"self_consistency","n":6}`)
	if got := out.Generation.Choices[0].Text; got != "PARIS" { // logprob tie-break: the most confident Paris
		t.Errorf("chose %q", got)
	}
	votes := out.Info.Extra["votes"].(map[string]int)
	if votes["paris"] != 3 || votes["lyon"] != 2 || votes["nice"] != 1 || out.Info.SamplesUsed != 6 {
		t.Errorf("votes %v, samples %d", votes, out.Info.SamplesUsed)
	}
	if b.scripted.calls.Load() != 6 || out.Info.StopReason != stopMaxSamples {
		t.Errorf("%d calls, stop %q", b.scripted.calls.Load(), out.Info.StopReason)
	}
}

// In waves it stops once the leader cannot be overtaken: after three
// agreeing answers, two more cannot change the result.
func TestSelfConsistencyStopsWhenDecided(t *testing.T) {
	b := &voting{texts: []string{"4", "4", "4", "5", "6"}}
	out := scRun(t, b, nil, `{"strategy":"self_consistency","n":5,"wave":1,"extract":"last_number"}`)
	if out.Info.SamplesUsed != 3 || out.Info.StopReason != stopDecided || b.scripted.calls.Load() != 3 {
		t.Errorf("used %d (%s), %d calls", out.Info.SamplesUsed, out.Info.StopReason, b.scripted.calls.Load())
	}
}

func TestSelfConsistencyExtraction(t *testing.T) {
	for _, c := range []struct {
		extract string
		texts   []string
		want    string
	}{
		{"last_number", []string{"It is 1,000.", "About 1000.0", "The answer is 998"}, "About 1000.0"},
		{"regex:answer: (\\w+)", []string{"answer: yes", "so, answer: no", "answer: YES because"}, "answer: YES because"},
		{`json:result.city`, []string{`{"result":{"city":"Rome"}}`, `{"result":{"city":"rome."}}`, `{"result":{"city":"Oslo"}}`}, `{"result":{"city":"rome."}}`},
	} {
		out := scRun(t, &voting{texts: c.texts}, nil, `{"strategy":"self_consistency","n":3,"extract":`+quote(c.extract)+`}`)
		if got := out.Generation.Choices[0].Text; got != c.want {
			t.Errorf("%s: chose %q, want %q", c.extract, got, c.want)
		}
	}
	// Tool calls vote by name and arguments, whatever their key order.
	b := &voting{tools: []string{`{"a":1,"b":2}`, `{"b": 2, "a": 1}`, `{"a":3}`}}
	out := scRun(t, b, nil, `{"strategy":"self_consistency","n":3,"extract":"tool_call"}`)
	if out.Info.Extra["votes"].(map[string]int)[`f {"a":1,"b":2}`] != 2 {
		t.Errorf("tool call votes %v", out.Info.Extra["votes"])
	}
	// A pattern that matches the empty text would vote for nothing.
	for _, extract := range []string{"regex:", "regex:(\\d*)"} {
		if _, err := extractorOf(extract); err == nil || !strings.Contains(err.Error(), "matches the empty text") {
			t.Errorf("%s: %v", extract, err)
		}
	}
}

// With a reward configured, ties between groups go to the best utility.
func TestSelfConsistencyRewardTieBreak(t *testing.T) {
	tab := &rmtest.Table{Name: "t", Names: []string{"good"}, Rows: map[string][]float32{
		"x": {0.1}, "X": {0.2}, "y": {0.9}, "Y": {0.3}}}
	out := scRun(t, &voting{texts: []string{"x", "y", "X", "Y"}}, tab, `{"strategy":"self_consistency","n":4}`)
	if got := out.Generation.Choices[0].Text; got != "y" {
		t.Errorf("chose %q", got)
	}
	if out.Info.Reward == nil || out.Info.Extra["tie_break"] != "reward" {
		t.Errorf("report %+v", out.Info)
	}
}

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
