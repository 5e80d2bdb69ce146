package onnx

import (
	"context"
	"encoding/json"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
)

// A gated model's columns are its objective scores then their gates, as
// Go computes them; its utility is the gated sum under the user's weights.
func TestGatedModelMatchesGo(t *testing.T) {
	cfg := config(t, "gated.onnx")
	cfg.GateOutput = "gates"
	r, err := NewRewarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	reward := r.AsReward()
	if got := reward.Objectives(); strings.Join(got, ",") != "helpfulness,correctness,verbosity,gate:helpfulness,gate:correctness,gate:verbosity" {
		t.Fatalf("columns %v", got)
	}
	if got := rm.WeightedObjectives(reward); strings.Join(got, ",") != strings.Join(rmtest.Objectives, ",") {
		t.Errorf("weighted objectives %v", got)
	}
	got, err := reward.Score(context.Background(), samples)
	if err != nil {
		t.Fatal(err)
	}
	var ids [][]int64
	for _, s := range samples {
		ids = append(ids, ids64(t, r.enc, s))
	}
	scores, gates := rmtest.Gated().Forward(ids)
	for i := range samples {
		near(t, "gated", [][]float32{got[i]}, [][]float32{append(append([]float32(nil), scores[i]...), gates[i]...)})
	}
	// Σ w_k·g_k·s_k, by hand, with one objective weighed down.
	w := map[string]float64{"helpfulness": 1, "correctness": 2, "verbosity": -0.5}
	u := rm.UtilityFor(reward, w, 0, 0)
	for i := range samples {
		want := 1*float64(gates[i][0])*float64(scores[i][0]) + 2*float64(gates[i][1])*float64(scores[i][1]) - 0.5*float64(gates[i][2])*float64(scores[i][2])
		if got := u.Of(reward.Objectives(), got[i], 0); math.Abs(got-want) > 1e-5 {
			t.Errorf("sample %d: utility %v, hand-computed gated sum %v", i, got, want)
		}
	}
}

// Without its second output a gated model does not load, and the error
// names the key and the outputs it has.
func TestGatedModelMissingGates(t *testing.T) {
	cfg := config(t, "seq_reward.onnx")
	cfg.GateOutput = "gates"
	_, err := NewRewarder(cfg)
	if err == nil || !strings.Contains(err.Error(), `no output "gates" (onnx.gate_output)`) || !strings.Contains(err.Error(), "[logits]") {
		t.Errorf("got %v", err)
	}
}

func prmConfig(agg string) PRMConfig {
	return PRMConfig{Objective: "prm", Separator: rmtest.StepToken, Delimiter: "\n\n", Positive: 1, Rule: rm.StepRule{Aggregate: agg}}
}

// minPRM loads the test process reward model with aggregate min, for the
// test's lifetime.
func minPRM(t *testing.T) *PRM {
	t.Helper()
	cfg := config(t, "prm.onnx")
	cfg.Objectives = nil
	m, err := NewPRM(cfg, prmConfig(rm.StepMin))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

// The process reward model reads one score per step, at the separators,
// as Go computes it: the softmax probability of class 1 of the causal
// mean embedding.
func TestPRMMatchesGo(t *testing.T) {
	m := minPRM(t)
	s := []rm.Sample{
		{Prompt: "why is the sky blue?", Response: "first, the sun.\n\nthen air scatters blue light.\n\nso the sky is blue."},
		{Prompt: "what is a cache?", Steps: []string{"a cache is", " a short list"}},
	}
	steps, err := m.ScoreSteps(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	w := rmtest.PRM()
	for i, want := range []int{3, 2} {
		if len(steps[i]) != want {
			t.Fatalf("sample %d: %d step scores, want %d", i, len(steps[i]), want)
		}
		rendered := s[i]
		rendered.Response = m.render(m.steps(s[i]))
		row := ids64(t, m.enc, rendered)
		logits := w.Logits(row)
		var goSteps []float64
		for t, id := range row {
			if int(id) == rmtest.StepID() {
				goSteps = append(goSteps, math.Exp(float64(logits[t][1])-rm.LogNormalizer(logits[t][:])))
			}
		}
		for j := range goSteps {
			if math.Abs(steps[i][j]-goSteps[j]) > 1e-5 {
				t.Errorf("sample %d step %d: %v, Go computes %v", i, j, steps[i][j], goSteps[j])
			}
		}
	}
	// The score is the rule over the steps, and the detail lists them.
	scores, details, err := m.Explain(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	for i := range s {
		if want := float32(min(steps[i][0], steps[i][1], steps[i][len(steps[i])-1])); math.Abs(float64(scores[i][0]-want)) > 1e-6 {
			t.Errorf("sample %d: min %v, want %v", i, scores[i][0], want)
		}
		var d struct {
			Steps []float64 `json:"steps"`
			Total int       `json:"steps_total"`
		}
		if err := json.Unmarshal(details[i], &d); err != nil || len(d.Steps) != len(steps[i]) || d.Total != len(steps[i]) {
			t.Errorf("detail %s (%v)", details[i], err)
		}
	}
}

// An empty answer has no step: it gets no step scores and a NaN score (an
// unusable one, never chosen), and the batch's other answers theirs.
func TestPRMEmptyAnswer(t *testing.T) {
	m := minPRM(t)
	s := []rm.Sample{{Prompt: "why?", Response: ""}, {Prompt: "why?", Response: "first.\n\nthen."}, {Prompt: "why?", Response: "  "}}
	steps, err := m.ScoreSteps(context.Background(), s)
	if err != nil {
		t.Fatal(err)
	}
	if len(steps) != 3 || len(steps[0]) != 0 || len(steps[1]) != 2 || len(steps[2]) != 0 {
		t.Fatalf("step scores %v", steps)
	}
	scores, err := m.Score(context.Background(), s)
	if err != nil || !math.IsNaN(float64(scores[0][0])) || math.IsNaN(float64(scores[1][0])) || !math.IsNaN(float64(scores[2][0])) {
		t.Errorf("scores %v (%v)", scores, err)
	}
	if steps, err := m.ScoreSteps(context.Background(), s[:1]); err != nil || len(steps) != 1 || len(steps[0]) != 0 {
		t.Errorf("a batch of empty answers: %v %v", steps, err)
	}
}

// A separator that is not one token, or missing, refuses to load; a
// truncation that leaves no separator is a reward error.
func TestPRMRefusals(t *testing.T) {
	cfg := config(t, "prm.onnx")
	for sep, want := range map[string]string{"": "needs a step separator (prm.separator)", "sky blue": "is 2 tokens, not one"} {
		p := prmConfig(rm.StepLast)
		p.Separator = sep
		if _, err := NewPRM(cfg, p); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("separator %q: %v", sep, err)
		}
	}
	cfg.MaxLength, cfg.Truncation = 4, "right"
	m, err := NewPRM(cfg, prmConfig(rm.StepLast))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	_, err = m.Score(context.Background(), []rm.Sample{{Prompt: "why is the sky blue? because the sun", Response: "first.\n\nthen."}})
	if err == nil || !strings.Contains(err.Error(), "no step separator survived truncation") {
		t.Errorf("truncated: %v", err)
	}
}

// Inspect reads names from the file alone, as ONNX Runtime reports them.
func TestInspect(t *testing.T) {
	g, err := Inspect(filepath.Join(testdata, "gated.onnx"))
	if err != nil || strings.Join(g.Inputs, ",") != "input_ids,attention_mask" || strings.Join(g.Outputs, ",") != "scores,gates" {
		t.Errorf("%+v %v", g, err)
	}
	if _, err := Inspect(filepath.Join(testdata, "tokenizer.json")); err == nil {
		t.Error("a JSON file inspected as a model")
	}
}

// ids64 is a sample's token ids as the model is fed them.
func ids64(t *testing.T, e *encoder, s rm.Sample) []int64 {
	t.Helper()
	ids, _, err := e.encode(s)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]int64, len(ids))
	for i, id := range ids {
		out[i] = int64(id)
	}
	return out
}
