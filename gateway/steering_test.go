package gateway_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
	"github.com/steergate/steergate/rm/rules"
	"github.com/steergate/steergate/steering"
)

func startSteered(t *testing.T) *env {
	t.Helper()
	rt := backend.NewRouter()
	if err := rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"}); err != nil {
		t.Fatal(err)
	}
	seq, err := rules.New(rules.Config{Keywords: map[string][]string{"helpfulness": {`\bbecause\b`, `\bfirst\b`, `\bhelps?\b`}}})
	if err != nil {
		t.Fatal(err)
	}
	words, err := rules.NewLexicon(map[string][]string{"helpfulness": {`\bbecause\b`, `\bfirst\b`, `\bhelps?\b`}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eng := steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": seq}, Tokens: map[string]rm.TokenRewarder{"words": words},
		Routes: map[string]json.RawMessage{"reference": json.RawMessage(`{"weights":{"helpfulness":1,"repetition":-1,"verbosity":0,"format":0}}`)},
		Limits: steering.Limits{MaxSamples: 16}})
	return serveWith(t, defaultOptions(), rt, eng)
}

type steeringObject struct {
	Strategy string `json:"strategy"`
	Reward   struct {
		Utility    float64            `json:"utility"`
		Objectives map[string]float64 `json:"objectives"`
	} `json:"reward"`
	Candidates []struct {
		Index            int     `json:"index"`
		Utility          float64 `json:"utility"`
		Chosen           bool    `json:"chosen"`
		CompletionTokens int     `json:"completion_tokens"`
		Pruned           bool    `json:"pruned"`
	} `json:"candidates"`
	SamplesUsed  int           `json:"samples_used"`
	BackendUsage backend.Usage `json:"backend_usage"`
	StopReason   string        `json:"stop_reason"`
}

func TestSDKSteeredRequests(t *testing.T) {
	e := startSteered(t)
	ctx := context.Background()
	for _, steer := range []map[string]any{
		{"strategy": "best_of_n", "n": 6},
		{"strategy": "adaptive", "initial": 2, "step": 2, "max_samples": 8},
	} {
		params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("How can I sleep better?"), Seed: openai.Int(3), MaxTokens: openai.Int(40)}
		var resp *http.Response
		a, err := e.client.Chat.Completions.New(ctx, params, option.WithJSONSet("steering", steer), option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		if resp.Header.Get("X-Steering-Strategy") != steer["strategy"] {
			t.Errorf("header %q", resp.Header.Get("X-Steering-Strategy"))
		}
		var s steeringObject
		if err := json.Unmarshal([]byte(a.JSON.ExtraFields["steering"].Raw()), &s); err != nil {
			t.Fatalf("no steering object: %v", err)
		}
		if s.Strategy != steer["strategy"] || s.SamplesUsed != len(s.Candidates) || s.SamplesUsed < 2 {
			t.Errorf("steering %+v", s)
		}
		best, chosen := -1e9, 0
		var completion int
		for _, c := range s.Candidates {
			best = max(best, c.Utility)
			completion += c.CompletionTokens
			if c.Chosen {
				chosen++
				if c.Utility != s.Reward.Utility {
					t.Errorf("chosen utility %v, reported %v", c.Utility, s.Reward.Utility)
				}
			}
		}
		if chosen != 1 || s.Reward.Utility != best {
			t.Errorf("chosen %d, utility %v, best %v", chosen, s.Reward.Utility, best)
		}
		if a.Usage.CompletionTokens != int64(completion) || a.Usage.CompletionTokens != int64(s.BackendUsage.CompletionTokens) ||
			a.Usage.PromptTokens != int64(s.BackendUsage.PromptTokens) {
			t.Errorf("usage %+v, candidates %d tokens, backend %+v", a.Usage, completion, s.BackendUsage)
		}
		again, err := e.client.Chat.Completions.New(ctx, params, option.WithJSONSet("steering", steer))
		if err != nil {
			t.Fatal(err)
		}
		if again.Choices[0].Message.Content != a.Choices[0].Message.Content {
			t.Errorf("%v: same seed, different answer", steer["strategy"])
		}
		// Streaming sends the same chosen answer.
		st := e.client.Chat.Completions.NewStreaming(ctx, params, option.WithJSONSet("steering", steer))
		acc := openai.ChatCompletionAccumulator{}
		for st.Next() {
			acc.AddChunk(st.Current())
		}
		if st.Err() != nil || acc.Choices[0].Message.Content != a.Choices[0].Message.Content {
			t.Errorf("stream %q (%v), want %q", acc.Choices[0].Message.Content, st.Err(), a.Choices[0].Message.Content)
		}
	}
	_, err := e.client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("hi")},
		option.WithJSONSet("steering", map[string]any{"strategy": "beam"}))
	apiErr(t, err, 400, "steering.strategy")
}

func TestRewardFailureIs502(t *testing.T) {
	rt := backend.NewRouter()
	rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"})
	broken := &rmtest.Table{Name: "broken", Names: []string{"x"}, Err: errors.New("reward server exploded")}
	eng := steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": broken}, Limits: steering.Limits{MaxSamples: 16}})
	e := serveWith(t, defaultOptions(), rt, eng)
	status, _, body := post(t, e.url+"/v1/chat/completions",
		`{"model":"reference","messages":[{"role":"user","content":"hi"}],"steering":{"strategy":"best_of_n","n":2}}`)
	if status != 502 || !strings.Contains(body, `"code":"reward_error"`) || !strings.Contains(body, "reward server exploded") {
		t.Errorf("%d %s", status, body)
	}
}

// panicky is a strategy that panics: a bug the gateway must contain.
type panicky struct{}

func (*panicky) Check(*steering.Check) error { return nil }
func (*panicky) Steer(context.Context, *backend.Request, *steering.Env) (*steering.Outcome, error) {
	panic("strategy bug")
}

func init() {
	steering.Register("test_panic", func() steering.Strategy { return &panicky{} }, steering.RewardNone)
}

// Faults inside a request end that request only: a panicking strategy is
// a 500 (and a 500 error event in a stream), a reward answering with the
// wrong shape a 502; the next request is served.
func TestFaultsAreContained(t *testing.T) {
	rt := backend.NewRouter()
	rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"})
	short := &rmtest.Table{Name: "short", Names: []string{"a", "b"}, Rows: map[string][]float32{}}
	e := serveWith(t, defaultOptions(), rt, steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": shortRows{short}},
		Limits: steering.Limits{MaxSamples: 16}}))
	url := e.url + "/v1/chat/completions"
	status, _, body := post(t, url, `{"model":"reference","messages":[{"role":"user","content":"hi"}],"steering":{"strategy":"test_panic"}}`)
	if status != 500 || !strings.Contains(body, `"code":"internal_error"`) {
		t.Errorf("panic: %d %s", status, body)
	}
	status, _, body = post(t, url, `{"model":"reference","stream":true,"messages":[{"role":"user","content":"hi"}],"steering":{"strategy":"test_panic"}}`)
	if status != 500 || !strings.Contains(body, `"code":"internal_error"`) {
		t.Errorf("panic in a stream: %d %s", status, body)
	}
	status, _, body = post(t, url, `{"model":"reference","messages":[{"role":"user","content":"hi"}],"steering":{"strategy":"best_of_n","n":2}}`)
	if status != 502 || !strings.Contains(body, `"code":"reward_error"`) {
		t.Errorf("short rows: %d %s", status, body)
	}
	if status, _, body := post(t, url, `{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`); status != 200 {
		t.Errorf("after the faults: %d %s", status, body)
	}
}

// shortRows answers one score per sample for a two-objective reward.
type shortRows struct{ *rmtest.Table }

func (s shortRows) Score(_ context.Context, ss []rm.Sample) ([][]float32, error) {
	out := make([][]float32, len(ss))
	for i := range out {
		out[i] = []float32{1}
	}
	return out, nil
}

// Self-consistency through the SDK on the reference model: the answer most
// samples agree on (here the last number each gives), with its votes.
func TestSDKSelfConsistency(t *testing.T) {
	e := startSteered(t)
	params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("How far away is the sun?"), Seed: openai.Int(1), MaxTokens: openai.Int(40)}
	for _, stream := range []bool{false, true} {
		steer := option.WithJSONSet("steering", map[string]any{"strategy": "self_consistency", "n": 6, "extract": "answer"})
		var raw string
		var content string
		if stream {
			st := e.client.Chat.Completions.NewStreaming(context.Background(), params, steer,
				option.WithJSONSet("stream_options", map[string]any{"include_usage": true}))
			acc := openai.ChatCompletionAccumulator{}
			for st.Next() {
				acc.AddChunk(st.Current())
				if c := st.Current(); len(c.Choices) == 0 {
					raw = c.JSON.ExtraFields["steering"].Raw()
				}
			}
			if st.Err() != nil {
				t.Fatal(st.Err())
			}
			content = acc.Choices[0].Message.Content
		} else {
			a, err := e.client.Chat.Completions.New(context.Background(), params, steer)
			if err != nil {
				t.Fatal(err)
			}
			raw, content = a.JSON.ExtraFields["steering"].Raw(), a.Choices[0].Message.Content
		}
		var s struct {
			Strategy    string         `json:"strategy"`
			Votes       map[string]int `json:"votes"`
			SamplesUsed int            `json:"samples_used"`
			TieBreak    string         `json:"tie_break"`
		}
		if err := json.Unmarshal([]byte(raw), &s); err != nil {
			t.Fatalf("stream=%v: %v in %q", stream, err, raw)
		}
		total := 0
		for _, v := range s.Votes {
			total += v
		}
		if s.Strategy != "self_consistency" || s.SamplesUsed != 6 || total != 6 || content == "" || s.TieBreak != "reward" {
			t.Errorf("stream=%v: %+v, answer %q", stream, s, content)
		}
	}
}

// Particles through the official Go SDK: the report carries steps, the
// effective sample size of each step and the resamplings, each candidate
// its parent and final weight; a seeded request streams the answer it
// returns unstreamed, as the particles come to share it.
func TestSDKParticles(t *testing.T) {
	e := startSteered(t)
	ctx := context.Background()
	steer := map[string]any{"strategy": "particles", "n": 6, "step_tokens": 12, "lambda": 30}
	params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("Why is the sky blue?"), Seed: openai.Int(8), MaxTokens: openai.Int(40)}
	var resp *http.Response
	a, err := e.client.Chat.Completions.New(ctx, params, option.WithJSONSet("steering", steer), option.WithResponseInto(&resp))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		steeringObject
		Steps       int       `json:"steps"`
		ESS         []float64 `json:"ess"`
		Resamplings []struct {
			Step int     `json:"step"`
			ESS  float64 `json:"ess"`
		} `json:"resamplings"`
		Candidates []struct {
			Chosen bool           `json:"chosen"`
			Extra  map[string]any `json:"extra"`
		} `json:"candidates"`
	}
	if err := json.Unmarshal([]byte(a.JSON.ExtraFields["steering"].Raw()), &s); err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("X-Steering-Strategy") != "particles" || s.Steps < 2 || len(s.ESS) != s.Steps || len(s.Candidates) != 6 {
		t.Fatalf("report %+v", s)
	}
	var weights float64
	for _, c := range s.Candidates {
		w, ok := c.Extra["weight"].(float64)
		if _, has := c.Extra["parent"]; !ok || !has {
			t.Fatalf("candidate extra %v", c.Extra)
		}
		weights += w
	}
	if math.Abs(weights-1) > 1e-9 {
		t.Errorf("final weights sum to %v", weights)
	}
	if a.Usage.PromptTokens != int64(s.BackendUsage.PromptTokens) || a.Usage.CompletionTokens != int64(s.BackendUsage.CompletionTokens) {
		t.Errorf("usage %+v, report %+v", a.Usage, s.BackendUsage)
	}
	if got, _, err := streamed(e, params, steer); err != nil || got != a.Choices[0].Message.Content {
		t.Errorf("stream %q (%v), want %q", got, err, a.Choices[0].Message.Content)
	}
	// A request its backend cannot serve is refused by name.
	_, err = e.client.Chat.Completions.New(ctx, params, option.WithJSONSet("steering", map[string]any{"strategy": "particles", "potential": "best"}))
	apiErr(t, err, 400, "steering.potential")
}

// Guided decoding through the official Go SDK: a seeded request streams,
// token by token, the answer it returns unstreamed; the report splits each
// step's time and says how much of the next-token mass the top k held.
func TestSDKGuided(t *testing.T) {
	e := startSteered(t)
	ctx := context.Background()
	steer := map[string]any{"strategy": "guided", "k": 10, "beta": 0.5}
	params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("Why is the sky blue?"), Seed: openai.Int(6), MaxTokens: openai.Int(30)}
	a, err := e.client.Chat.Completions.New(ctx, params, option.WithJSONSet("steering", steer))
	if err != nil {
		t.Fatal(err)
	}
	var s struct {
		Steps  int                `json:"steps"`
		Calls  int                `json:"backend_calls"`
		Mass   float64            `json:"topk_mass"`
		StepMS map[string]float64 `json:"step_ms"`
	}
	if err := json.Unmarshal([]byte(a.JSON.ExtraFields["steering"].Raw()), &s); err != nil {
		t.Fatal(err)
	}
	if s.Steps < 2 || s.Calls != s.Steps || s.Mass <= 0 || s.Mass > 1 || len(s.StepMS) != 3 || a.Usage.CompletionTokens < int64(s.Steps-1) {
		t.Errorf("report %+v, usage %+v", s, a.Usage)
	}
	if got, chunks, err := streamed(e, params, steer); err != nil || got != a.Choices[0].Message.Content || chunks < s.Steps {
		t.Errorf("stream %q in %d chunks (%v), want %q in at least %d", got, chunks, err, a.Choices[0].Message.Content, s.Steps)
	}
}

// streamed sends a steered request streamed through the Go SDK and returns
// the text it accumulated and the number of chunks.
func streamed(e *env, params openai.ChatCompletionNewParams, steer map[string]any) (string, int, error) {
	st := e.client.Chat.Completions.NewStreaming(context.Background(), params, option.WithJSONSet("steering", steer))
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for st.Next() {
		acc.AddChunk(st.Current())
		chunks++
	}
	if st.Err() != nil || len(acc.Choices) == 0 {
		return "", chunks, fmt.Errorf("stream: %v (%d choices)", st.Err(), len(acc.Choices))
	}
	return acc.Choices[0].Message.Content, chunks, nil
}
