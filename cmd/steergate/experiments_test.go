package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
)

// The embedded default's demo experiment through the OpenAI SDK: 200
// users on reference-ab split between its two arms as configured (1:1),
// each response names its arm, and the results endpoint shows every
// figure for both arms.
func TestDemoExperimentThroughTheSDK(t *testing.T) {
	t.Chdir("../..")
	addr := serveConfig(t, "configs/default.yaml")
	c := openai.NewClient(option.WithBaseURL("http://"+addr+"/v1/"), option.WithAPIKey("none"), option.WithMaxRetries(0))
	ctx := context.Background()
	arms := map[string]int{}
	for i := range 200 {
		var resp *http.Response
		out, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
			Model: "reference-ab", User: openai.String(fmt.Sprintf("user-%d", i)), Seed: openai.Int(int64(i)), MaxTokens: openai.Int(32),
			Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("How do plants make food?")},
		}, option.WithResponseInto(&resp))
		if err != nil {
			t.Fatal(err)
		}
		var steer struct {
			Experiment string `json:"experiment"`
			Arm        string `json:"arm"`
			Strategy   string `json:"strategy"`
		}
		if err := json.Unmarshal([]byte(out.JSON.ExtraFields["steering"].Raw()), &steer); err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"best_of_4": "best_of_n", "adaptive": "adaptive"}[steer.Arm]
		if steer.Experiment != "demo" || want == "" || steer.Strategy != want || resp.Header.Get("X-Steering-Arm") != steer.Arm {
			t.Fatalf("user %d: steering %+v, header %q", i, steer, resp.Header.Get("X-Steering-Arm"))
		}
		arms[steer.Arm]++
	}
	// 1:1 over 200 users: a binomial's 99.9% range is 100 ± 23.
	if d := arms["adaptive"] - 100; d < -23 || d > 23 {
		t.Errorf("arms %v, want about 100 each", arms)
	}
	// A request naming its own strategy is not enrolled.
	var resp *http.Response
	if _, err := c.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "reference-ab", User: openai.String("user-1"), MaxTokens: openai.Int(8),
		Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}}, option.WithJSONSet("steering", map[string]any{"strategy": "none"}),
		option.WithResponseInto(&resp)); err != nil || resp.Header.Get("X-Steering-Arm") != "" {
		t.Errorf("a request with its own strategy: %v, arm %q", err, resp.Header.Get("X-Steering-Arm"))
	}
	var report struct {
		Arms []struct {
			Name     string `json:"name"`
			Requests int    `json:"requests"`
			Outcome  struct {
				N    int                       `json:"n"`
				Mean *float64                  `json:"mean"`
				CI   struct{ Lo, Hi *float64 } `json:"ci"`
			} `json:"outcome"`
			Difference *struct {
				CS      struct{ Lo, Hi *float64 } `json:"confidence_sequence"`
				Welch   struct{ P *float64 }      `json:"welch"`
				Verdict string                    `json:"verdict"`
			} `json:"difference"`
			Cost struct {
				Tokens  *float64 `json:"tokens_per_request"`
				Samples *float64 `json:"samples_per_request"`
				P50     *float64 `json:"latency_p50_s"`
			} `json:"cost"`
		} `json:"arms"`
		Verdict string `json:"verdict"`
	}
	// Records and evaluations run beside the answers: wait for all 200.
	// An evaluation that finds every slot busy is skipped, and counted.
	deadline := time.Now().Add(30 * time.Second)
	for {
		body := get(t, "http://"+addr+"/v1/experiments/demo")
		if err := json.Unmarshal([]byte(body), &report); err != nil {
			t.Fatal(err)
		}
		n, served := report.Arms[0].Outcome.N+report.Arms[1].Outcome.N, report.Arms[0].Requests+report.Arms[1].Requests
		skipped := counter(t, get(t, "http://"+addr+"/metrics"), `steergate_experiment_evaluations_skipped_total{experiment="demo"}`)
		if n+skipped == 200 && served == 200 || time.Now().After(deadline) {
			if n+skipped != 200 || served != 200 || n < 150 {
				t.Fatalf("%d of 200 answers evaluated (%d skipped), %d recorded: %s", n, skipped, served, body)
			}
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, a := range report.Arms {
		if a.Requests != arms[a.Name] || a.Outcome.Mean == nil || a.Outcome.CI.Lo == nil || a.Cost.Tokens == nil || a.Cost.Samples == nil || a.Cost.P50 == nil {
			t.Errorf("arm %s: %+v (served %d)", a.Name, a, arms[a.Name])
		}
	}
	t.Logf("arms %v; verdict: %s", arms, report.Verdict)
	if d := report.Arms[1].Difference; d == nil || d.CS.Lo == nil || d.Welch.P == nil || d.Verdict == "" || report.Verdict == "" {
		t.Errorf("difference %+v, verdict %q", d, report.Verdict)
	}
	if m := get(t, "http://"+addr+"/metrics"); !strings.Contains(m, `arm="adaptive"`) || !strings.Contains(m, `steergate_experiment_requests_total{arm="best_of_4",experiment="demo"}`) {
		t.Error("/metrics has no arm labels")
	}
	if list := get(t, "http://"+addr+"/v1/experiments"); !strings.Contains(list, `"name":"demo"`) {
		t.Errorf("list: %s", list)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// counter reads one series of a Prometheus text exposition; absent, 0.
func counter(t *testing.T, metrics, series string) int {
	t.Helper()
	for line := range strings.Lines(metrics) {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var n int
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return n
		}
	}
	return 0
}
