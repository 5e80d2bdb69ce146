package steering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
	"go.uber.org/goleak"
)

// scripted answers "s<seed>" with seed+1 completion tokens; seeds in fail
// fail with err; block makes every call wait for its context.
type scripted struct {
	fail    map[int64]error
	block   bool
	started chan struct{} // with block: told of every call
	calls   atomic.Int64
	mu      sync.Mutex
	seeds   []int64
	reqs    []*backend.Request
}

func (s *scripted) Name() string { return "scripted" }
func (s *scripted) Caps() backend.Caps {
	return backend.Caps{Logprobs: true, MaxTopLogprobs: 20, Continuation: true}
}

func (s *scripted) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	s.calls.Add(1)
	s.mu.Lock()
	s.seeds = append(s.seeds, *r.Seed)
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	if s.block {
		s.started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err := s.fail[*r.Seed]; err != nil {
		return nil, err
	}
	text := fmt.Sprintf("s%d", *r.Seed)
	tokens := int(*r.Seed) + 1
	finish := backend.FinishStop
	if r.Continue {
		text, tokens = "+more", 2
	} else if r.MaxTokens > 0 && r.MaxTokens < tokens {
		tokens, finish = r.MaxTokens, backend.FinishLength
	}
	return &backend.Generation{Choices: []backend.Choice{{Text: text, FinishReason: finish, Tokens: tokens}},
		Usage: backend.Usage{PromptTokens: 5, CompletionTokens: tokens}, UsageExtra: map[string]json.RawMessage{"prompt_tokens_details": json.RawMessage(`{"cached_tokens":5}`)},
		SystemFingerprint: "fp-" + text,
		Extra:             map[string]json.RawMessage{"service_tier": json.RawMessage(`"tier-` + text + `"`)}}, nil
}

func (s *scripted) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	return s.Generate(ctx, r)
}

// table scores "s<seed>" responses: utility weights pick the columns.
func table() *rmtest.Table {
	t := &rmtest.Table{Name: "t", Names: []string{"good", "long"}, Rows: map[string][]float32{}}
	util := []float32{0.2, 0.9, 0.5, 0.9, 0.1, 0.3, 0.8, 0.95, 0.4, 0.6, 0.7, 0.65, 0.1, 0.1, 0.1, 0.1}
	for i, u := range util {
		t.Rows[fmt.Sprintf("s%d", i)] = []float32{u, float32(i)}
		t.Rows[fmt.Sprintf("s%d+more", i)] = []float32{u + 0.01, float32(i)}
	}
	return t
}

func call(steer string, n int) *Call {
	seed := int64(0)
	return &Call{Route: backend.Route{Name: "m"}, Request: &backend.Request{Model: "m", N: n, Seed: &seed,
		Messages: []backend.Message{{Role: "user", Content: "q"}}}, Steering: json.RawMessage(steer)}
}

func engine(b backend.Backend, reward rm.Rewarder, route string) (*Engine, func(*Call) *Call) {
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{"t": reward}, Routes: map[string]json.RawMessage{"m": json.RawMessage(route)},
		Limits: Limits{MaxSamples: 32}})
	return e, func(c *Call) *Call { c.Route.Backend = b; return c }
}

// run plans and runs a call, as the gateway does.
func run(ctx context.Context, e *Engine, c *Call, emit func(backend.Delta) error) (*Outcome, error) {
	p, err := e.Plan(c)
	if err != nil {
		return nil, err
	}
	return e.Run(ctx, c, p, emit)
}

func TestBestOfNPicksHighestUtilityTiesToLowestIndex(t *testing.T) {
	b := &scripted{}
	e, on := engine(b, table(), `{"weights":{"good":1,"long":0}}`)
	out, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":4}`, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	// s0..s3 have good 0.2, 0.9, 0.5, 0.9: s1 and s3 tie, s1 wins.
	if got := out.Generation.Choices[0].Text; got != "s1" {
		t.Errorf("chose %q, want s1", got)
	}
	// The answer keeps what its backend said beside the choice.
	if g := out.Generation; g.SystemFingerprint != "fp-s1" || string(g.Extra["service_tier"]) != `"tier-s1"` {
		t.Errorf("fingerprint %q, extra %s: want the chosen sample's", g.SystemFingerprint, g.Extra)
	}
	// Streamed, every delta carries the chosen sample's fingerprint.
	var deltas []backend.Delta
	if _, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":4}`, 1)), func(d backend.Delta) error {
		deltas = append(deltas, d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for _, d := range deltas {
		if d.Fingerprint != "fp-s1" || string(d.Extra["service_tier"]) != `"tier-s1"` {
			t.Errorf("streamed delta %+v: want fingerprint fp-s1 and service_tier tier-s1", d)
		}
	}
	if len(deltas) == 0 {
		t.Error("nothing streamed")
	}
	info := out.Info
	if info.SamplesUsed != 4 || len(info.Candidates) != 4 || !info.Candidates[1].Chosen || info.Candidates[3].Chosen {
		t.Errorf("report %+v", info)
	}
	// usage: 4 × prompt 5; completion 1+2+3+4; its details summed too
	if u := out.Generation.Usage; u.PromptTokens != 20 || u.CompletionTokens != 10 || info.BackendUsage != u {
		t.Errorf("usage %+v / %+v", u, info.BackendUsage)
	}
	if d := string(out.Generation.UsageExtra["prompt_tokens_details"]); d != `{"cached_tokens":20}` {
		t.Errorf("usage details %s, want the four samples' summed", d)
	}
	if info.Reward.Utility != info.Candidates[1].Utility || math.Abs(float64(info.Reward.Utility)-0.9) > 1e-6 {
		t.Errorf("reward %+v", info.Reward)
	}
	if b.seeds[0]+b.seeds[1]+b.seeds[2]+b.seeds[3] != 0+1+2+3 {
		t.Errorf("seeds %v, want 0..3", b.seeds)
	}
}

func TestBestOfNWeightsAndN(t *testing.T) {
	e, on := engine(&scripted{}, table(), `{"weights":{"good":1,"long":0}}`)
	// Request weights merge over the route's: long now counts −0.1 per unit.
	out, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":4,"weights":{"long":-0.1}}`, 2)), nil)
	if err != nil {
		t.Fatal(err)
	}
	// utilities: s0 0.2, s1 0.8, s2 0.3, s3 0.6 → best two s1, s3
	got := []string{out.Generation.Choices[0].Text, out.Generation.Choices[1].Text}
	if got[0] != "s1" || got[1] != "s3" || out.Generation.Choices[1].Index != 1 {
		t.Errorf("chose %v", got)
	}
	if math.Abs(float64(out.Info.Candidates[3].Utility)-0.6) > 1e-6 {
		t.Errorf("utility of s3 = %v", out.Info.Candidates[3].Utility)
	}
	if _, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":1}`, 2)), nil); !errors.Is(err, fault.ErrInvalid) {
		t.Errorf("n below the request's n: %v", err)
	}
	if _, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","weights":{"nope":1}}`, 1)), nil); !errors.Is(err, fault.ErrInvalid) {
		t.Errorf("unknown objective: %v", err)
	}
	if _, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","nn":3}`, 1)), nil); !errors.Is(err, fault.ErrInvalid) || !strings.Contains(err.Error(), "nn") {
		t.Errorf("misspelt parameter: %v", err)
	}
}

func TestBestOfNPartialFailure(t *testing.T) {
	boom := fmt.Errorf("%w: boom", fault.ErrUpstream)
	b := &scripted{fail: map[int64]error{1: boom}}
	e, on := engine(b, table(), `{"weights":{"good":1,"long":0}}`)
	out, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":4,"min_success":3}`, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Generation.Choices[0].Text != "s3" || out.Info.Failed != 1 || out.Info.SamplesUsed != 4 || len(out.Info.Candidates) != 3 {
		t.Errorf("outcome %+v / %+v", out.Generation.Choices, out.Info)
	}
	_, err = run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":4,"min_success":4}`, 1)), nil)
	if !errors.Is(err, fault.ErrUpstream) {
		t.Errorf("below min_success: %v", err)
	}
	all := &scripted{fail: map[int64]error{}}
	for i := range int64(4) {
		all.fail[i] = &fault.ParamError{Param: "model", Msg: "gone", Err: fault.ErrNotFound}
	}
	e, on = engine(all, table(), ``)
	if _, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":4}`, 1)), nil); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("all failed with 404: %v", err)
	}
}

func TestRewardFailure(t *testing.T) {
	tab := table()
	tab.Err = errors.New("model crashed")
	e, on := engine(&scripted{}, tab, ``)
	if _, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n"}`, 1)), nil); !errors.Is(err, fault.ErrReward) {
		t.Errorf("reward failure: %v", err)
	}
}

func TestCancelLeavesNothingBehind(t *testing.T) {
	defer goleak.VerifyNone(t)
	b := &scripted{block: true, started: make(chan struct{}, 64)}
	e, on := engine(b, table(), ``)
	for _, steer := range []string{`{"strategy":"best_of_n","n":8}`, `{"strategy":"adaptive","initial":4}`} {
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() {
			_, err := run(ctx, e, on(call(steer, 1)), nil)
			done <- err
		}()
		for range 4 {
			<-b.started
		}
		cancel()
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: %v", steer, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: not cancelled", steer)
		}
		b.calls.Store(0)
		for len(b.started) > 0 {
			<-b.started
		}
	}
}

func TestStreamingEmitsTheChosenAnswer(t *testing.T) {
	e, on := engine(&scripted{}, table(), `{"weights":{"good":1,"long":0}}`)
	var deltas []backend.Delta
	_, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":8}`, 1)), func(d backend.Delta) error {
		deltas = append(deltas, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(deltas) != 2 || deltas[0].Text != "s7" || deltas[1].FinishReason != backend.FinishStop {
		t.Errorf("deltas %+v", deltas)
	}
}

func TestAdaptiveStoppingRules(t *testing.T) {
	weights := `{"weights":{"good":1,"long":0}}`
	for _, c := range []struct {
		steer   string
		samples int
		reason  string
		chosen  string
	}{
		// s0 0.2, s1 0.9 meet threshold 0.85: an absolute threshold needs
		// no spread, so it stops after the first wave, before min_samples.
		{`{"strategy":"adaptive","initial":2,"threshold":0.85}`, 2, stopThreshold, "s1"},
		// Not met (0.95): the statistical rules wait for min_samples (3),
		// so the second wave runs (s2 0.5, s3 0.9); then expected
		// improvement 0.1069 < 0.3 × 0.3403 = 0.1021 is false, and a third
		// wave (s4 0.1, s5 0.3) leaves it below the cost.
		{`{"strategy":"adaptive","initial":2,"threshold":0.95}`, 6, stopLowGain, "s1"},
		// Never met: stops at max_samples.
		{`{"strategy":"adaptive","initial":2,"step":2,"max_samples":6,"threshold":5,"cost_sd":0}`, 6, stopMaxSamples, "s1"},
		// Utilities 0.2, 0.9, 0.5, 0.9 (mean 0.625, sd 0.3403, predictive
		// scale 0.3805, ν 3): beating 0.9 by 2 needs z = 5.98; q ≈ 0.005,
		// two samples ≈ 0.009 < p_min 0.05.
		{`{"strategy":"adaptive","initial":4,"delta":2,"p_min":0.05}`, 4, stopUnlikely, "s1"},
		// Same utilities: a new sample's expected improvement is 0.1069;
		// cost_sd 0.35 makes the cost 0.35 × 0.3403 = 0.1191 > 0.1069: stop.
		{`{"strategy":"adaptive","initial":4,"cost_sd":0.35}`, 4, stopLowGain, "s1"},
		// cost_sd 0.3 makes it 0.1021 < 0.1069: another wave (s4 0.1,
		// s5 0.3), after which the gain is smaller still.
		{`{"strategy":"adaptive","initial":4,"cost_sd":0.3}`, 6, stopLowGain, "s1"},
		// Relative threshold: the first wave's mean + 0.5 sd is 0.795;
		// the best, 0.9, is above it.
		{`{"strategy":"adaptive","initial":4,"threshold_sd":0.5,"cost_sd":0}`, 4, stopThresholdSD, "s1"},
	} {
		e, on := engine(&scripted{}, table(), weights)
		out, err := run(context.Background(), e, on(call(c.steer, 1)), nil)
		if err != nil {
			t.Fatalf("%s: %v", c.steer, err)
		}
		if out.Info.SamplesUsed != c.samples || out.Info.StopReason != c.reason || out.Generation.Choices[0].Text != c.chosen {
			t.Errorf("%s: used %d (%s), chose %q; want %d (%s), %q", c.steer, out.Info.SamplesUsed, out.Info.StopReason,
				out.Generation.Choices[0].Text, c.samples, c.reason, c.chosen)
		}
	}
	// Tied utilities never stop before min_samples; then there is nothing
	// to expect from more.
	tie := &rmtest.Table{Name: "tie", Names: []string{"good"}, Rows: map[string][]float32{}}
	for i := range 16 {
		tie.Rows[fmt.Sprintf("s%d", i)] = []float32{1}
	}
	e, on := engine(&scripted{}, tie, `{}`)
	out, err := run(context.Background(), e, on(call(`{"strategy":"adaptive","initial":2,"min_samples":5}`, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Info.SamplesUsed != 6 || out.Info.StopReason != stopNoSpread {
		t.Errorf("ties: %d samples (%s)", out.Info.SamplesUsed, out.Info.StopReason)
	}
}

// The predictive probabilities against values computed by hand.
func TestImproveProbability(t *testing.T) {
	// n = 2: ν = 1 (Cauchy); best − mean = 0.5·|a − b|, scale
	// |a − b|·√0.75, z = 1/√3: P = 1/2 − atan(1/√3)/π = 1/3 exactly, the
	// chance that a third exchangeable draw beats the best of two.
	if p := ImproveProbability([]float64{0.2, 0.9}, 0.9, 0, 1); math.Abs(p-1.0/3) > 1e-9 {
		t.Errorf("n=2: p = %v, want 1/3", p)
	}
	// A wave of two: 1 − (2/3)².
	if p := ImproveProbability([]float64{0.2, 0.9}, 0.9, 0, 2); math.Abs(p-5.0/9) > 1e-9 {
		t.Errorf("n=2, k=2: p = %v, want 5/9", p)
	}
	if ImproveProbability([]float64{1, 1, 1}, 1, 0.1, 4) != 0 {
		t.Error("no spread must mean no expected improvement")
	}
	// Expected improvement: {0, 1, 2}: m 1, s 1, scale √(4/3), z 0.866,
	// ν 2: √(4/3)·[(2 + 0.75)·f₂(0.866) − 0.866·(1 − F₂(0.866))] = 0.4574.
	if ei := ExpectedImprovement([]float64{0, 1, 2}, 2); math.Abs(ei-0.4574) > 1e-3 {
		t.Errorf("EI = %v, want 0.4574", ei)
	}
	if ei := ExpectedImprovement([]float64{0.2, 0.9, 0.5, 0.9}, 0.9); math.Abs(ei-0.1069) > 1e-3 {
		t.Errorf("EI = %v, want 0.1069", ei)
	}
	if ei := ExpectedImprovement([]float64{0, 1}, 1); !math.IsInf(ei, 1) {
		t.Errorf("EI with one degree of freedom = %v, want +Inf", ei)
	}
}

// The predictive rule is calibrated: for normal utilities, the average
// predictive chance that one new draw beats the best of n is exactly
// 1/(n + 1), the chance for exchangeable draws (the plug-in normal the rule
// replaced gave 0.240 at n = 2 and 0.080 at n = 8).
func TestPredictiveIsCalibrated(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{2, 3, 8} {
		const runs = 40000
		var sum float64
		us := make([]float64, n)
		for range runs {
			for i := range us {
				us[i] = 3 + 2*rng.NormFloat64()
			}
			sum += ImproveProbability(us, slices.Max(us), 0, 1)
		}
		if got, want := sum/runs, 1/float64(n+1); math.Abs(got-want) > 0.006 {
			t.Errorf("n = %d: mean predictive chance %.4f, want %.4f", n, got, want)
		}
	}
}

// Continuations draw fresh text: a seed for every (sample, step), and
// tied prefixes are ordered by a seeded draw, not by index.
func TestStepSeedsAndTies(t *testing.T) {
	seed := int64(5)
	seen := map[int64]bool{}
	for i := range 8 {
		for j := range 4 {
			s := *StepSeed(&seed, i, j)
			if seen[s] || s < 0 {
				t.Fatalf("seed %d for (%d, %d) repeats or is negative", s, i, j)
			}
			seen[s] = true
			if *StepSeed(&seed, i, j) != s {
				t.Fatal("not reproducible")
			}
		}
	}
	if StepSeed(nil, 1, 1) != nil {
		t.Error("an unseeded request got a seed")
	}
	mk := func(tie uint64, i int) *sample { return &sample{index: i, utility: 1, tie: tie} }
	got := orderTies([]*sample{mk(9, 0), mk(3, 1), mk(5, 2)})
	if got[0].index != 1 || got[1].index != 2 || got[2].index != 0 {
		t.Errorf("ties ordered %d %d %d", got[0].index, got[1].index, got[2].index)
	}
}

func TestAdaptivePruning(t *testing.T) {
	b := &scripted{}
	e, on := engine(b, table(), `{"weights":{"good":1,"long":0}}`)
	// Seeds 0..3 cut at 2 tokens: s0 and s1 end within them (1 and 2
	// tokens) and, being whole answers, are never pruned; s2, s3 are
	// partial. Keep half: by utility the top two are s1 (0.9) and s3 (0.9);
	// s3 is continued to "s3+more" (0.91), s2 (0.5) is pruned.
	out, err := run(context.Background(), e, on(call(`{"strategy":"adaptive","initial":4,"max_samples":4,"prune_tokens":2,"keep":0.5}`, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Generation.Choices[0].Text; got != "s3+more" {
		t.Errorf("chose %q", got)
	}
	pruned := 0
	for _, c := range out.Info.Candidates {
		if c.Pruned {
			pruned++
		}
	}
	if pruned != 1 || out.Info.SamplesUsed != 4 || !out.Info.Candidates[2].Pruned {
		t.Errorf("pruned %d of %d: %+v", pruned, out.Info.SamplesUsed, out.Info.Candidates)
	}
	// 4 partial calls + 1 continuation; the continuation asked to continue.
	if n := b.calls.Load(); n != 5 {
		t.Errorf("%d backend calls", n)
	}
	last := b.reqs[4]
	if !last.Continue || last.Messages[len(last.Messages)-1].Content != "s3" {
		t.Errorf("continuation request %+v", last)
	}
}

func TestRewardFailureFallsBackWhenConfigured(t *testing.T) {
	tab := table()
	tab.Err = errors.New("model crashed")
	e, on := engine(&scripted{}, tab, `{"on_reward_error":"first"}`)
	for _, steer := range []string{`{"strategy":"best_of_n","n":4}`, `{"strategy":"adaptive","initial":2}`} {
		out, err := run(context.Background(), e, on(call(steer, 1)), nil)
		if err != nil {
			t.Fatalf("%s: %v", steer, err)
		}
		if out.Generation.Choices[0].Text != "s0" || !strings.Contains(out.Info.RewardError, "model crashed") || out.Info.Reward != nil {
			t.Errorf("%s: %q, report %+v", steer, out.Generation.Choices[0].Text, out.Info)
		}
	}
}
