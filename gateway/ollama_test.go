package gateway_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/ollama"
	"github.com/steergate/steergate/backend/ollama/ollamatest"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rules"
	"github.com/steergate/steergate/steering"
)

// Steering through the Ollama adapter against a real Ollama: best-of-N,
// adaptive with pruning, particles and guided decoding, which continue
// partial answers through raw generation on the model's own template;
// streamed and not, through the OpenAI SDK.
func TestSteeringThroughRealOllama(t *testing.T) {
	host := ollamatest.Start(t)
	c, err := ollama.New("ollama", host, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	rt := backend.NewRouter()
	if err := rt.Add(backend.Route{Name: "tiny", Backend: c, Target: ollamatest.Model}); err != nil {
		t.Fatal(err)
	}
	r, err := rules.New(rules.Config{})
	if err != nil {
		t.Fatal(err)
	}
	words, err := rules.NewLexicon(map[string][]string{"x": {`e`}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := serveWith(t, defaultOptions(), rt, steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": r},
		Tokens: map[string]rm.TokenRewarder{"words": words}, Limits: steering.Limits{MaxSamples: 16}}))
	for _, steer := range []map[string]any{
		{"strategy": "best_of_n", "n": 3},
		{"strategy": "adaptive", "initial": 4, "max_samples": 4, "prune_tokens": 3, "keep": 0.5},
		{"strategy": "particles", "n": 3, "step_tokens": 4, "ess_threshold": 1},
		{"strategy": "guided", "k": 5},
	} {
		params := openai.ChatCompletionNewParams{Model: "tiny", Messages: userMsg("Why is the sky blue?"), Seed: openai.Int(5), MaxTokens: openai.Int(12)}
		a, err := e.client.Chat.Completions.New(context.Background(), params, option.WithJSONSet("steering", steer))
		if err != nil {
			t.Fatalf("%v: %v", steer, err)
		}
		var s steeringObject
		if err := json.Unmarshal([]byte(a.JSON.ExtraFields["steering"].Raw()), &s); err != nil {
			t.Fatal(err)
		}
		if s.Strategy != steer["strategy"] || len(s.Candidates) < 3 && steer["strategy"] != "guided" || a.Choices[0].Message.Content == "" {
			t.Errorf("%v: %+v", steer, s)
		}
		pruned := 0
		for _, c := range s.Candidates {
			if c.Pruned {
				pruned++
			}
		}
		if steer["strategy"] == "adaptive" && pruned != 2 {
			t.Errorf("adaptive pruned %d of 4 prefixes, want 2", pruned)
		}
		if a.Usage.CompletionTokens != int64(s.BackendUsage.CompletionTokens) || a.Usage.CompletionTokens < 9 && steer["strategy"] != "particles" {
			t.Errorf("%v: usage %+v, report %+v", steer, a.Usage, s.BackendUsage)
		}
		st := e.client.Chat.Completions.NewStreaming(context.Background(), params, option.WithJSONSet("steering", steer))
		acc := openai.ChatCompletionAccumulator{}
		for st.Next() {
			acc.AddChunk(st.Current())
		}
		if st.Err() != nil || acc.Choices[0].Message.Content != a.Choices[0].Message.Content {
			t.Errorf("%v: stream %q (%v), want %q", steer, acc.Choices[0].Message.Content, st.Err(), a.Choices[0].Message.Content)
		}
	}
}
