package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/steergate/steergate/rm/onnx"
	"github.com/steergate/steergate/rm/rmtest"
)

// onnxLibrary is the ONNX Runtime library make test fetches; without it
// the test skips, and fails under CI.
func onnxLibrary(t *testing.T) string {
	t.Helper()
	lib := onnx.LibraryPath("")
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ONNX Runtime library missing in CI: %v", err)
		}
		t.Skip("ONNX Runtime library missing: make test fetches it")
	}
	return lib
}

// serveONNXRewards serves the reference backend with the given rewards
// (YAML under rewards:, %[1]s standing for the test models' folder) and
// returns the gateway's address.
func serveONNXRewards(t *testing.T, rewards string) string {
	t.Helper()
	lib := onnxLibrary(t)
	wd, _ := os.Getwd()
	td := filepath.Join(wd, "..", "..", "rm", "rmtest", "testdata")
	cfg := filepath.Join(t.TempDir(), "rewards.yaml")
	body := "backends:\n  ref: {type: reference}\nmodels:\n  - {name: reference, backend: ref}\nonnx: {library: " + lib + "}\nrewards:" + fmt.Sprintf(rewards, td)
	if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return serveConfig(t, cfg)
}

// steered posts a chat request to a served config and returns the
// response's status and body.
func steered(t *testing.T, addr, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, out
}

func candidates(t *testing.T, out map[string]any) []map[string]any {
	t.Helper()
	st, _ := out["steering"].(map[string]any)
	cs, _ := st["candidates"].([]any)
	if len(cs) == 0 {
		t.Fatalf("no candidates in %v", out)
	}
	var res []map[string]any
	for _, c := range cs {
		res = append(res, c.(map[string]any))
	}
	return res
}

// Best-of-N and particles over the embedded demo backend, steered by a
// process reward model (every sentence a step), and best-of-N by a gated
// model: each candidate reports its step scores, and the gated utility is
// Σ w·gate·score of the reported columns.
func TestONNXRewardsThroughTheGateway(t *testing.T) {
	addr := serveONNXRewards(t, `
  steps:
    type: onnx_prm
    onnx: {path: %[1]s/prm.onnx, tokenizer: %[1]s/tokenizer.json, max_length: 128}
    prm: {separator: "[STEP]", delimiter: ". ", aggregate: min}
  armo:
    type: onnx
    objectives: [helpfulness, correctness, verbosity]
    onnx: {path: %[1]s/gated.onnx, tokenizer: %[1]s/tokenizer.json, output: scores, gate_output: gates}
`)

	status, out := steered(t, addr, `{"model":"reference","seed":5,"max_tokens":40,"messages":[{"role":"user","content":"Why is the sky blue?"}],
		"steering":{"strategy":"best_of_n","n":4,"reward":"steps"}}`)
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	for _, c := range candidates(t, out) {
		var d struct {
			Steps []float64 `json:"steps"`
			Total int       `json:"steps_total"`
		}
		raw, _ := json.Marshal(c["reward_detail"])
		if err := json.Unmarshal(raw, &d); err != nil || len(d.Steps) == 0 || d.Total < len(d.Steps) {
			t.Fatalf("candidate %v: detail %s", c["index"], raw)
		}
		lowest := math.Inf(1)
		for _, s := range d.Steps {
			lowest = math.Min(lowest, s)
		}
		if got := c["objectives"].(map[string]any)["prm"].(float64); math.Abs(got-lowest) > 1e-6 {
			t.Errorf("candidate %v: prm %v, min of its steps %v", c["index"], got, lowest)
		}
	}

	// Particles weigh each step by the process reward's score of it; the
	// final answers are scored whole, with their steps.
	status, out = steered(t, addr, `{"model":"reference","seed":5,"max_tokens":40,"messages":[{"role":"user","content":"Why is the sky blue?"}],
		"steering":{"strategy":"particles","n":4,"step_tokens":10,"reward":"steps"}}`)
	if status != 200 {
		t.Fatalf("particles: %d %v", status, out)
	}
	for _, c := range candidates(t, out) {
		d, _ := c["reward_detail"].(map[string]any)
		if steps, _ := d["steps"].([]any); len(steps) == 0 {
			t.Errorf("particles candidate %v: no steps in %v", c["index"], d)
		}
	}
	if st := out["steering"].(map[string]any); st["steps"].(float64) < 2 {
		t.Errorf("particles took %v steps", st["steps"])
	}

	status, out = steered(t, addr, `{"model":"reference","seed":5,"max_tokens":40,"messages":[{"role":"user","content":"Why is the sky blue?"}],
		"steering":{"strategy":"best_of_n","n":4,"reward":"armo","weights":{"helpfulness":1,"correctness":2,"verbosity":-0.5}}}`)
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	w := map[string]float64{"helpfulness": 1, "correctness": 2, "verbosity": -0.5}
	for _, c := range candidates(t, out) {
		o := c["objectives"].(map[string]any)
		var want float64
		for k, wk := range w {
			if o["gate:"+k] == nil {
				t.Fatalf("objectives %v", o)
			}
			want += wk * o["gate:"+k].(float64) * o[k].(float64)
		}
		if got := c["utility"].(float64); math.Abs(got-want) > 1e-5 {
			t.Errorf("candidate %v: utility %v, gated sum %v", c["index"], got, want)
		}
	}
	// Weights may name objectives, not gates.
	status, out = steered(t, addr, `{"model":"reference","messages":[{"role":"user","content":"Hi"}],"steering":{"strategy":"best_of_n","reward":"armo","weights":{"gate:helpfulness":1}}}`)
	if status != 400 || !strings.Contains(fmt.Sprint(out), "gate:helpfulness") {
		t.Errorf("a weight on a gate: %d %v", status, out)
	}
}

// judgeServer is an OpenAI-compatible backend whose every answer is text.
func judgeServer(t *testing.T, text *atomic.Value) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/models" {
			fmt.Fprint(w, `{"object":"list","data":[{"id":"critic","object":"model"}]}`)
			return
		}
		body, _ := json.Marshal(text.Load().(string))
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","model":"critic","choices":[{"index":0,"message":{"role":"assistant","content":%s},"finish_reason":"stop"}],"usage":{"prompt_tokens":50,"completion_tokens":20,"total_tokens":70}}`, body)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/v1"
}

// A critique judge's critique is in each candidate's report; a judge that
// writes no score fails the request with reward_error.
func TestCritiqueJudgeThroughTheGateway(t *testing.T) {
	var text atomic.Value
	text.Store("The answer names the cause and stays short.\nScore: 7")
	url := judgeServer(t, &text)
	cfg := filepath.Join(t.TempDir(), "critic.yaml")
	os.WriteFile(cfg, []byte(`backends:
  ref: {type: reference}
  critic: {type: openai, url: "`+url+`"}
models:
  - {name: reference, backend: ref}
rewards:
  critic:
    type: judge
    judge: {mode: critique, backend: critic, model: critic, max_critique: 30}
`), 0o644)
	addr := serveConfig(t, cfg)
	req := `{"model":"reference","seed":1,"max_tokens":16,"messages":[{"role":"user","content":"Why is the sky blue?"}],"steering":{"strategy":"best_of_n","n":2,"reward":"critic"}}`
	status, out := steered(t, addr, req)
	if status != 200 {
		t.Fatalf("%d %v", status, out)
	}
	for _, c := range candidates(t, out) {
		d, _ := c["reward_detail"].(map[string]any)
		if d["critique"] != "The answer names the cause and…" || c["objectives"].(map[string]any)["judge_critique"] != 7.0 {
			t.Errorf("candidate %v", c)
		}
	}
	text.Store("I'd rather not say.")
	status, out = steered(t, addr, strings.Replace(req, `"seed":1`, `"seed":2`, 1))
	e, _ := out["error"].(map[string]any)
	if status != 502 || e["code"] != "reward_error" || !strings.Contains(fmt.Sprint(e["message"]), `no "Score: N" line`) {
		t.Errorf("nonsense: %d %v", status, out)
	}
}

// Guided decoding with the test ARM, whose preferred words are known
// (rmtest.Preferred): over the same seeds, the share of preferred words in
// the answers rises as 1/β does, from the base model's own (weight 0).
func TestGuidedWithTestARM(t *testing.T) {
	addr := serveONNXRewards(t, `
  arm:
    type: onnx_arm
    onnx: {path: %[1]s/arm.onnx, tokenizer: %[1]s/tokenizer.json}
`)
	share := func(steer string) float64 {
		var preferred, words int
		for seed := range 12 {
			status, out := steered(t, addr, fmt.Sprintf(`{"model":"reference","seed":%d,"max_tokens":24,"messages":[{"role":"user","content":"Why is the sky blue?"}],"steering":%s}`, seed, steer))
			if status != 200 {
				t.Fatalf("%s: %d %v", steer, status, out)
			}
			text := out["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)["content"].(string)
			for _, w := range strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return r < 'a' || r > 'z' }) {
				words++
				if slices.Contains(rmtest.Preferred, w) {
					preferred++
				}
			}
		}
		return float64(preferred) / float64(words)
	}
	base := share(`{"strategy":"guided","token_rewards":{"arm":0}}`)
	one := share(`{"strategy":"guided","token_rewards":{"arm":1},"beta":1}`)
	strong := share(`{"strategy":"guided","token_rewards":{"arm":1},"beta":0.25}`)
	if !(base < one && one < strong) {
		t.Errorf("share of preferred words: %.3f (1/β 0), %.3f (1/β 1), %.3f (1/β 4): not rising", base, one, strong)
	}
	t.Logf("share of preferred words: %.3f, %.3f, %.3f", base, one, strong)
	// Through the official Go SDK, streamed and not.
	c := openai.NewClient(option.WithBaseURL("http://"+addr+"/v1/"), option.WithAPIKey("sk-none"), option.WithMaxRetries(0))
	params := openai.ChatCompletionNewParams{Model: "reference", Seed: openai.Int(2), MaxTokens: openai.Int(20),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("How do plants make food?")}}
	steer := option.WithJSONSet("steering", map[string]any{"strategy": "guided", "token_rewards": map[string]float64{"arm": 1}})
	a, err := c.Chat.Completions.New(context.Background(), params, steer)
	if err != nil {
		t.Fatal(err)
	}
	st := c.Chat.Completions.NewStreaming(context.Background(), params, steer)
	acc := openai.ChatCompletionAccumulator{}
	for st.Next() {
		acc.AddChunk(st.Current())
	}
	if st.Err() != nil || a.Choices[0].Message.Content == "" || acc.Choices[0].Message.Content != a.Choices[0].Message.Content {
		t.Errorf("stream %q (%v), want %q", acc.Choices[0].Message.Content, st.Err(), a.Choices[0].Message.Content)
	}
}
