package gateway_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/experiment"
	"github.com/steergate/steergate/gateway"
	"github.com/steergate/steergate/prefs"
)

// An experiment on the reference model with feedback as its outcome.
func feedbackExperiment() *experiment.Set {
	return experiment.NewSet([]*experiment.Experiment{{Name: "fb", Models: map[string]bool{"reference": true}, Unit: experiment.UnitUser,
		Control: "four", Outcome: "feedback", Running: true, Alpha: 0.05, MixingSD: 0.1,
		Arms: []experiment.Arm{{Name: "four", Weight: 1, Steering: json.RawMessage(`{"strategy":"best_of_n","n":4}`)},
			{Name: "eight", Weight: 1, Steering: json.RawMessage(`{"strategy":"best_of_n","n":8}`)},
			{Name: "plain", Weight: 1, Steering: json.RawMessage(`{"strategy":"none"}`)}}}}, experiment.NewMemory())
}

func chatAs(t *testing.T, e *env, key, user, steering string) (int, string, string) {
	t.Helper()
	body := fmt.Sprintf(`{"model":"reference","user":%q,"seed":1,"max_tokens":24,"messages":[{"role":"user","content":"Why is the sky blue?"}]%s}`, user, steering)
	status, h, got := call(t, "POST", e.url+"/v1/chat/completions", key, body)
	return status, h.Get("X-Steering-Arm"), got
}

// userIn is a user of tenant acme whom experiment fb places in arm.
func userIn(t *testing.T, set *experiment.Set, arm string) string {
	t.Helper()
	for i := range 1000 {
		user := fmt.Sprintf("user-%d", i)
		en, _, err := set.Enroll(context.Background(), experiment.Request{Model: "reference", Route: "reference", Tenant: "acme", User: user})
		if err != nil {
			t.Fatal(err)
		}
		if en != nil && en.Arm == arm {
			return user
		}
	}
	t.Fatalf("no user in arm %s", arm)
	return ""
}

// Forcing an arm is for admin keys, and a forced answer is no sample of
// the experiment; results are for admin keys; feedback on an enrolled
// response lands in its arm's results, once per response.
func TestExperimentsOverHTTP(t *testing.T) {
	set := feedbackExperiment()
	e := prefsGateway(t, prefs.NewMemory(100, 100), `{}`, 0.5, func(o *gateway.Options) { o.Experiments = set })
	if status, _, body := chatAs(t, e, "sk-a", "alice", `,"steering":{"arm":"eight"}`); status != 403 || !strings.Contains(body, `"param":"steering.arm"`) {
		t.Errorf("a user key forcing an arm: %d %s", status, body)
	}
	// A key given twice is refused by name in an experiment too.
	if status, _, body := chatAs(t, e, "sk-a", "alice", `,"steering":{"n":2,"n":3}`); status != 400 || !strings.Contains(body, `"param":"steering.n"`) {
		t.Errorf("a repeated steering key: %d %s", status, body)
	}
	ask := func(user string, seed int, maxTokens int, content, arm string) (string, string) {
		t.Helper()
		body := fmt.Sprintf(`{"model":"reference","user":%q,"seed":%d,"max_tokens":%d,"messages":[{"role":"user","content":%q}]}`, user, seed, maxTokens, content)
		status, h, got := call(t, "POST", e.url+"/v1/chat/completions", "sk-a", body)
		if status != 200 || h.Get("X-Steering-Arm") != arm {
			t.Fatalf("%s in arm %s: %d, arm %q: %s", user, arm, status, h.Get("X-Steering-Arm"), got)
		}
		var r struct {
			ID string `json:"id"`
		}
		_ = json.Unmarshal([]byte(got), &r)
		return r.ID, got
	}
	feedback := func(body string) string {
		t.Helper()
		status, _, got := call(t, "POST", e.url+"/v1/feedback", "sk-a", body)
		if status != 200 {
			t.Fatalf("feedback %s: %d %s", body, status, got)
		}
		return got
	}
	rate := func(id, rating, fid string) string {
		return feedback(fmt.Sprintf(`{"response_id":%q,"rating":%s,"feedback_id":%q}`, id, rating, fid))
	}
	// An admin may force an arm: answered by it, counted in none, and its
	// feedback counts for no arm.
	status, h, got := call(t, "POST", e.url+"/v1/chat/completions", "sk-admin",
		`{"model":"reference","user":"alice","seed":1,"max_tokens":24,"messages":[{"role":"user","content":"Why is the sky blue?"}],"steering":{"arm":"eight"}}`)
	if status != 200 || h.Get("X-Steering-Arm") != "eight" || !strings.Contains(got, `"arm":"eight"`) || !strings.Contains(got, `"samples_used":8`) {
		t.Fatalf("an admin forcing arm eight: %d %s", status, got)
	}
	var forcedAnswer struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal([]byte(got), &forcedAnswer)
	if status, _, got := call(t, "POST", e.url+"/v1/feedback", "sk-admin", `{"response_id":"`+forcedAnswer.ID+`","rating":1}`); status != 200 || !strings.Contains(got, `"learned":true`) {
		t.Errorf("feedback on a forced answer: %d %s", status, got)
	}
	if status, _, got := call(t, "POST", e.url+"/v1/chat/completions", "sk-admin",
		`{"model":"reference","user":"alice","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"steering":{"arm":"plain","strategy":"best_of_n"}}`); status != 400 || !strings.Contains(got, `"param":"steering.strategy"`) {
		t.Errorf("a forced arm with a strategy: %d %s", status, got)
	}
	if status, _, got := call(t, "POST", e.url+"/v1/chat/completions", "sk-admin",
		`{"model":"reference","user":"alice","max_tokens":8,"messages":[{"role":"user","content":"hi"}],"steering":{"arm":"eight","n":1}}`); status != 400 || !strings.Contains(got, `"param":"steering.n"`) {
		t.Errorf("a forced arm with a parameter of its own: %d %s", status, got)
	}
	// A request that sets a parameter steers itself, outside the
	// experiment, as one naming a strategy does: here on the route's
	// strategy, none, which scores nothing (in arm eight it would have
	// chosen among eight).
	eightUser, plainUser := userIn(t, set, "eight"), userIn(t, set, "plain")
	if status, arm, got := chatAs(t, e, "sk-a", eightUser, `,"steering":{"reward":"default"}`); status != 400 || arm != "" || !strings.Contains(got, `"param":"steering.reward"`) {
		t.Errorf("a request with a reward of its own: %d, arm %q: %s", status, arm, got)
	}
	first, _ := ask(eightUser, 1, 24, "Why is the sky blue?", "eight")
	second, _ := ask(eightUser, 2, 24, "Why is the sky blue?", "eight")
	rate(first, `"up"`, "f0")
	rate(first, `"down"`, "f1") // the same response again: its arm keeps the first
	rate(first, `"up"`, "f0")   // a duplicate counts nowhere
	rate(second, `0.5`, "f2")
	// A choice between two answers of one arm says nothing of it.
	third, _ := ask(eightUser, 3, 24, "Why is the sky blue?", "eight")
	fourth, _ := ask(eightUser, 4, 24, "Why is the sky blue?", "eight")
	feedback(fmt.Sprintf(`{"chosen_id":%q,"rejected_id":%q}`, third, fourth))
	// An unsteered arm's answer has no candidates to learn from, and its
	// rating still counts for the arm.
	plainID, got := ask(plainUser, 9, 8, "hi", "plain")
	if !strings.Contains(got, `"steering":{"strategy":"none","experiment":"fb","arm":"plain"`) {
		t.Errorf("an unsteered arm's answer does not name its arm: %s", got)
	}
	// Its report says what its one call spent, as the answer's usage does.
	var unsteered struct {
		Usage    backend.Usage `json:"usage"`
		Steering struct {
			SamplesUsed  int           `json:"samples_used"`
			BackendUsage backend.Usage `json:"backend_usage"`
		} `json:"steering"`
	}
	if err := json.Unmarshal([]byte(got), &unsteered); err != nil || unsteered.Steering.SamplesUsed != 1 || unsteered.Usage.CompletionTokens == 0 ||
		unsteered.Steering.BackendUsage.CompletionTokens != unsteered.Usage.CompletionTokens || unsteered.Steering.BackendUsage.PromptTokens != unsteered.Usage.PromptTokens {
		t.Errorf("an unsteered arm's report of what it spent: %v %s", err, got)
	}
	// Served again from the cache, it spent nothing now, and its report
	// says what it spent when computed, as a steered arm's hit does.
	_, again := ask(plainUser, 9, 8, "hi", "plain")
	var hit struct {
		Usage    backend.Usage `json:"usage"`
		Steering struct {
			SamplesUsed  int           `json:"samples_used"`
			BackendUsage backend.Usage `json:"backend_usage"`
			Cached       bool          `json:"cached"`
			Arm          string        `json:"arm"`
		} `json:"steering"`
	}
	if err := json.Unmarshal([]byte(again), &hit); err != nil || !hit.Steering.Cached || hit.Steering.Arm != "plain" ||
		hit.Usage.CompletionTokens != 0 || hit.Steering.SamplesUsed != 1 || hit.Steering.BackendUsage != unsteered.Steering.BackendUsage {
		t.Errorf("an unsteered arm's hit: %v %s", err, again)
	}
	if got := rate(plainID, `"down"`, "f3"); !strings.Contains(got, `"learned":false`) {
		t.Errorf("a rating of an unsteered answer: %s", got)
	}
	if status, _, body := call(t, "GET", e.url+"/v1/experiments/fb", "sk-a", ""); status != 403 {
		t.Errorf("a user key reading results: %d %s", status, body)
	}
	if status, _, _ := call(t, "GET", e.url+"/v1/experiments/nope", "sk-admin", ""); status != 404 {
		t.Errorf("an unknown experiment: %d", status)
	}
	if status, _, _ := call(t, "POST", e.url+"/v1/experiments/fb", "sk-admin", ""); status != 405 {
		t.Errorf("POST on results: %d", status)
	}
	// Requests are recorded beside their answers: wait for all six.
	var rep *experiment.Report
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		var err error
		if rep, err = set.Results(context.Background(), set.Get("fb")); err != nil {
			t.Fatal(err)
		}
		if rep.Arms[1].Requests+rep.Arms[2].Requests >= 6 || time.Now().After(deadline) {
			break
		}
	}
	time.Sleep(50 * time.Millisecond) // and for any that should not be there
	if rep, _ = set.Results(context.Background(), set.Get("fb")); rep == nil {
		t.Fatal("no results")
	}
	eight, plain := rep.Arms[1], rep.Arms[2]
	// Both of arm eight's ratings are one user's: one unit.
	if eight.Requests != 4 || eight.Feedback.Wins != 2 || eight.Feedback.Losses != 0 || eight.Outcome.N != 2 || eight.Outcome.Units != 1 || float64(eight.Outcome.Mean) != 0.75 {
		t.Errorf("arm eight: %+v", eight)
	}
	if plain.Requests != 2 || plain.Feedback.Wins != 0 || plain.Feedback.Losses != 1 || plain.Outcome.N != 1 || float64(plain.Outcome.Mean) != -1 {
		t.Errorf("arm plain: %+v", plain)
	}
	// A rating's outcome sits beside the backend tokens its response spent.
	for _, arm := range []experiment.ArmReport{eight, plain} {
		for _, r := range arm.Recent {
			if r.Tokens <= 0 {
				t.Errorf("arm %s: a recent outcome %v without its response's tokens", arm.Name, r)
			}
		}
	}
	status, _, body := call(t, "GET", e.url+"/v1/experiments/fb", "sk-admin", "")
	if status != 200 || !strings.Contains(body, `"wins":2`) {
		t.Errorf("results: %d %s", status, body)
	}
}

// steering.arm on a gateway without experiments is refused as it is for a
// model in no experiment, not ignored.
// An experiment on an alias covers every spelling the router takes for
// it: "reference-ab:latest" is enrolled as "reference-ab" is.
func TestExperimentOnAliasCoversLatest(t *testing.T) {
	set := experiment.NewSet([]*experiment.Experiment{{Name: "ab", Models: map[string]bool{"reference-ab": true}, Unit: experiment.UnitUser,
		Control: "four", Outcome: "feedback", Running: true, Alpha: 0.05, MixingSD: 0.1,
		Arms: []experiment.Arm{{Name: "four", Weight: 1, Steering: json.RawMessage(`{"strategy":"best_of_n","n":4}`)}}}}, experiment.NewMemory())
	e := prefsGateway(t, prefs.NewMemory(100, 100), `{}`, 0.5, func(o *gateway.Options) { o.Experiments = set })
	for _, model := range []string{"reference-ab", "reference-ab:latest", "reference"} {
		body := fmt.Sprintf(`{"model":%q,"user":"alice","seed":1,"max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`, model)
		status, h, got := call(t, "POST", e.url+"/v1/chat/completions", "sk-a", body)
		want := "four"
		if model == "reference" {
			want = "" // the route itself is not in the experiment
		}
		if status != 200 || h.Get("X-Steering-Arm") != want {
			t.Errorf("model %s: %d, arm %q, want %q: %s", model, status, h.Get("X-Steering-Arm"), want, got)
		}
	}
}

func TestForcedArmWithoutExperiments(t *testing.T) {
	e := prefsGateway(t, prefs.NewMemory(100, 100), `{}`, 0.5)
	for _, c := range []struct {
		key, steer string
		status     int
	}{
		{"sk-a", `{"arm":"x"}`, 403},
		{"sk-admin", `{"arm":"x"}`, 400},
		{"sk-admin", `{"arm":"x","strategy":"best_of_n"}`, 400},
		{"sk-admin", `{"arm":""}`, 400},
	} {
		status, _, got := call(t, "POST", e.url+"/v1/chat/completions", c.key,
			`{"model":"reference","max_tokens":4,"messages":[{"role":"user","content":"hi"}],"steering":`+c.steer+`}`)
		if status != c.status || !strings.Contains(got, `"param":"steering.arm"`) {
			t.Errorf("%s %s: %d %s, want %d naming steering.arm", c.key, c.steer, status, got, c.status)
		}
	}
}
