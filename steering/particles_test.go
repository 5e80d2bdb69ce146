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
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// Systematic resampling against draws worked out by hand: weights 0.1,
// 0.2, 0.3, 0.4 (cumulative 0.1, 0.3, 0.6, 1) and u = 0.5 put the points
// 0.125, 0.375, 0.625, 0.875 in particles 1, 2, 3, 3; u = 0.05 puts
// 0.0125, 0.2625, 0.5125, 0.7625 in 0, 1, 2, 3.
func TestSystematicByHand(t *testing.T) {
	w := []float64{0.1, 0.2, 0.3, 0.4}
	if got := Systematic(w, 4, 0.5); !slices.Equal(got, []int{1, 2, 3, 3}) {
		t.Errorf("u=0.5: %v", got)
	}
	if got := Systematic(w, 4, 0.05); !slices.Equal(got, []int{0, 1, 2, 3}) {
		t.Errorf("u=0.05: %v", got)
	}
	// Each particle is drawn ⌊n·w⌋ or ⌈n·w⌉ times, whatever u.
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100 {
		counts := make([]int, 4)
		for _, a := range Systematic(w, 10, rng.Float64()) {
			counts[a]++
		}
		for j, c := range counts {
			if lo := math.Floor(10 * w[j]); float64(c) < lo || float64(c) > math.Ceil(10*w[j]) {
				t.Fatalf("particle %d drawn %d times of 10 with weight %v", j, c, w[j])
			}
		}
	}
	// Stratified and multinomial draw in proportion to the weights.
	for _, scheme := range []string{resampleStratified, resampleMultinomial} {
		counts := make([]float64, 4)
		for range 2000 {
			for _, a := range resample(scheme, w, 4, rng) {
				counts[a]++
			}
		}
		for j := range w {
			if share := counts[j] / 8000; math.Abs(share-w[j]) > 0.02 {
				t.Errorf("%s: particle %d drawn %.3f of the time, weight %v", scheme, j, share, w[j])
			}
		}
	}
}

func TestESSAndWeights(t *testing.T) {
	for _, c := range []struct {
		w    []float64
		want float64
	}{{[]float64{0.25, 0.25, 0.25, 0.25}, 4}, {[]float64{0.5, 0.5, 0, 0}, 2}, {[]float64{1, 0, 0}, 1}, {[]float64{0.1, 0.2, 0.3, 0.4}, 1 / 0.3}} {
		if got := ESS(c.w); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("ESS(%v) = %v, want %v", c.w, got, c.want)
		}
	}
	// Log-weights 0, log 2, −Inf: weights 1/3, 2/3, 0; huge ones do not
	// overflow; all −Inf is uniform.
	w := weightsOf([]float64{0, math.Log(2), math.Inf(-1)})
	if math.Abs(w[0]-1.0/3) > 1e-12 || math.Abs(w[1]-2.0/3) > 1e-12 || w[2] != 0 {
		t.Errorf("weights %v", w)
	}
	if w := weightsOf([]float64{1000, 1000}); w[0] != 0.5 {
		t.Errorf("large log-weights: %v", w)
	}
	if w := weightsOf([]float64{math.Inf(-1), math.Inf(-1)}); w[0] != 0.5 {
		t.Errorf("all −Inf: %v", w)
	}
	if w := weightsOf([]float64{math.Inf(1), 3, math.Inf(1)}); w[0] != 0.5 || w[1] != 0 || w[2] != 0.5 {
		t.Errorf("+Inf log-weights (λ·r overflowed): %v", w)
	}
}

// Potentials of rewards 1, 3, 2 (log G_t / λ): diff 2 − 3, max 3, sum 6,
// last 2; diff of the first step is r_1.
func TestPotentials(t *testing.T) {
	for kind, want := range map[string]float64{potentialDiff: -1, potentialMax: 3, potentialSum: 6, potentialLast: 2} {
		p := &particles{Potential: kind}
		if got := p.potential([]float64{1, 3, 2}); got != want {
			t.Errorf("%s: %v, want %v", kind, got, want)
		}
	}
	if got := (&particles{Potential: potentialDiff}).potential([]float64{0.7}); got != 0.7 {
		t.Errorf("diff of one step: %v", got)
	}
}

// stepper writes answers step by step: each step is " good" or " bad"
// (from its seed) followed by the delimiter ".", and answers end after
// three steps. reports says whether it names the stop sequence that matched.
type stepper struct {
	reports bool
	fail    func(r *backend.Request) error
	block   bool
	started chan struct{}
	mu      sync.Mutex
	reqs    []*backend.Request
}

func (s *stepper) Name() string { return "stepper" }
func (s *stepper) Caps() backend.Caps {
	return backend.Caps{Continuation: true, StopSequence: s.reports}
}

func (s *stepper) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	s.mu.Lock()
	s.reqs = append(s.reqs, r)
	s.mu.Unlock()
	if s.block {
		s.started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if s.fail != nil {
		if err := s.fail(r); err != nil {
			return nil, err
		}
	}
	partial := ""
	if r.Continue {
		partial = r.Messages[len(r.Messages)-1].Content
	}
	c := backend.Choice{FinishReason: backend.FinishStop}
	stop := ""
	if strings.Count(partial, ".") >= 3 {
		c.Tokens = 1 // the end of the answer
	} else {
		c.Text, c.Tokens, stop = " bad", 1, "."
		if *r.Seed%3 == 0 {
			c.Text = " good"
		}
	}
	if s.reports {
		c.StopSequence = &stop
	}
	return &backend.Generation{Choices: []backend.Choice{c}, Usage: backend.Usage{PromptTokens: 3, CompletionTokens: c.Tokens}}, nil
}

func (s *stepper) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	return s.Generate(ctx, r)
}

// goodShare scores an answer by its share of good steps.
type goodShare struct{}

func (goodShare) Objectives() []string { return []string{"good"} }
func (goodShare) Score(_ context.Context, ss []rm.Sample) ([][]float32, error) {
	out := make([][]float32, len(ss))
	for i, s := range ss {
		good, bad := strings.Count(s.Response, "good"), strings.Count(s.Response, "bad")
		out[i] = []float32{float32(good) / float32(max(1, good+bad))}
	}
	return out, nil
}

func particleRun(t *testing.T, b backend.Backend, steer string, emit func(backend.Delta) error) (*Outcome, error) {
	t.Helper()
	e, on := engine(b, goodShare{}, `{}`)
	return run(context.Background(), e, on(call(steer, 1)), emit)
}

// Particles move to the good answers, reproducibly with a seed, whether or
// not the backend says which stop matched; without resampling, the final
// weights are exp(λ·r_T) normalized (diff telescopes), by hand.
func TestParticles(t *testing.T) {
	for _, reports := range []bool{true, false} {
		t.Run(fmt.Sprint("reports stop ", reports), func(t *testing.T) {
			steer := `{"strategy":"particles","n":8,"lambda":3,"ess_threshold":1}`
			out, err := particleRun(t, &stepper{reports: reports}, steer, nil)
			if err != nil {
				t.Fatal(err)
			}
			text := out.Generation.Choices[0].Text
			if strings.Count(text, ".") != 3 || strings.Count(text, "good") < 2 || !reports && strings.HasSuffix(text, " ") {
				t.Errorf("answer %q", text)
			}
			// What ended the answer, where the backend says: its end ("").
			if stop := out.Generation.Choices[0].StopSequence; reports != (stop != nil) || stop != nil && *stop != "" {
				t.Errorf("stop sequence %v", stop)
			}
			again, err := particleRun(t, &stepper{reports: reports}, steer, nil)
			if err != nil || again.Generation.Choices[0].Text != text || fmt.Sprint(again.Info.Extra) != fmt.Sprint(out.Info.Extra) {
				t.Errorf("not reproducible: %q then %q", text, again.Generation.Choices[0].Text)
			}
			if out.Info.Extra["steps"] != 4 || len(out.Info.Extra["ess"].([]float64)) != 4 || len(out.Info.Extra["resamplings"].([]resampling)) == 0 {
				t.Errorf("report %v", out.Info.Extra)
			}
		})
	}
	out, err := particleRun(t, &stepper{reports: true}, `{"strategy":"particles","n":6,"lambda":2,"ess_threshold":0.0001}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	var z float64
	for _, c := range out.Info.Candidates {
		z += math.Exp(2 * float64(c.Utility))
	}
	for _, c := range out.Info.Candidates {
		want := math.Exp(2*float64(c.Utility)) / z
		if got := c.Extra["weight"].(float64); math.Abs(got-want) > 1e-9 || c.Extra["parent"] != -1 {
			t.Errorf("candidate %d: weight %v, want exp(2·%v)/Z = %v", c.Index, got, c.Utility, want)
		}
	}
}

// A lambda whose products with rewards overflow float64 still weighs the
// particles: every weight finite, summing to one, and the report encodes.
func TestParticlesHugeLambda(t *testing.T) {
	for _, potential := range []string{"sum", "diff", "max"} {
		out, err := particleRun(t, &stepper{reports: true}, `{"strategy":"particles","n":6,"lambda":1.7e308,"ess_threshold":0.0001,"potential":"`+potential+`"}`, nil)
		if err != nil {
			t.Fatal(err)
		}
		checkWeights(t, potential, out)
	}
}

func checkWeights(t *testing.T, potential string, out *Outcome) {
	t.Helper()
	var sum float64
	for _, c := range out.Info.Candidates {
		w := c.Extra["weight"].(float64)
		if math.IsNaN(w) || w < 0 || w > 1 {
			t.Errorf("potential %s, candidate %d: weight %v", potential, c.Index, w)
		}
		sum += w
	}
	if math.Abs(sum-1) > 1e-9 {
		t.Errorf("potential %s: weights sum to %v", potential, sum)
	}
	if _, err := json.Marshal(out.Info); err != nil {
		t.Errorf("potential %s: report does not encode: %v", potential, err)
	}
}

// A particle whose backend call fails is dropped; the request answers
// while min_success particles remain, and fails when none do.
func TestParticlesSurviveFailures(t *testing.T) {
	seed := int64(0)
	flaky := &stepper{reports: true, fail: func(r *backend.Request) error {
		if *r.Seed == *StepSeed(&seed, 2, 2) || *r.Seed == *StepSeed(&seed, 5, 3) {
			return fmt.Errorf("%w: down", fault.ErrUpstream)
		}
		return nil
	}}
	out, err := particleRun(t, flaky, `{"strategy":"particles","n":6,"ess_threshold":0.0001}`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Info.Failed != 2 || len(out.Info.Candidates) != 4 {
		t.Errorf("failed %d, %d candidates", out.Info.Failed, len(out.Info.Candidates))
	}
	_, err = particleRun(t, flaky, `{"strategy":"particles","n":6,"min_success":5,"ess_threshold":0.0001}`, nil)
	if !errors.Is(err, fault.ErrUpstream) {
		t.Errorf("min_success 5 of 4 left: %v", err)
	}
	down := &stepper{fail: func(*backend.Request) error { return fmt.Errorf("%w: down", fault.ErrUpstream) }}
	if _, err := particleRun(t, down, `{"strategy":"particles"}`, nil); !errors.Is(err, fault.ErrUpstream) {
		t.Errorf("every call failing: %v", err)
	}
	// Every particle timing out is a timeout (504), not a backend failure.
	slow := &stepper{fail: func(*backend.Request) error { return fmt.Errorf("%w: up: fasthttp: timeout", fault.ErrTimeout) }}
	if _, err := particleRun(t, slow, `{"strategy":"particles"}`, nil); !errors.Is(err, fault.ErrTimeout) || errors.Is(err, fault.ErrUpstream) {
		t.Errorf("every call timing out: %v", err)
	}
}

// A client that goes away cancels every particle's call.
func TestParticlesCancel(t *testing.T) {
	b := &stepper{block: true, started: make(chan struct{}, 8)}
	e, on := engine(b, goodShare{}, `{}`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, e, on(call(`{"strategy":"particles","n":8}`, 1)), nil)
		done <- err
	}()
	for range 8 {
		<-b.started
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// What a particles request cannot have is refused by name.
func TestParticlesRefusals(t *testing.T) {
	for steer, want := range map[string]string{
		`{"strategy":"particles","delimiter":"sentence"}`: "steering.delimiter",
		`{"strategy":"particles","potential":"best"}`:     "steering.potential",
		`{"strategy":"particles","ess_threshold":0}`:      "steering.ess_threshold",
		`{"strategy":"particles","select":"first"}`:       "steering.select",
		`{"strategy":"particles","n":99}`:                 "steering.n",
	} {
		_, err := particleRun(t, &stepper{}, steer, nil)
		if fault.Param(err) != want {
			t.Errorf("%s: %v, want a 400 naming %s", steer, err, want)
		}
	}
	e, on := engine(&scripted{}, goodShare{}, `{}`)
	c := on(call(`{"strategy":"particles"}`, 1))
	c.Request.Stop = []string{"END"}
	c.Route.Backend = &noContinuation{&stepper{}}
	if _, err := run(context.Background(), e, c, nil); !errors.Is(err, fault.ErrUnsupported) || !strings.Contains(err.Error(), "cannot continue") && !strings.Contains(err.Error(), "continue partial answers") {
		t.Errorf("no continuation: %v", err)
	}
	c = on(call(`{"strategy":"particles"}`, 1))
	c.Request.Stop = []string{"END"}
	c.Route.Backend = &stepper{}
	if _, err := run(context.Background(), e, c, nil); !errors.Is(err, fault.ErrUnsupported) || !strings.Contains(err.Error(), "stop") {
		t.Errorf("stop on a backend that does not say which matched: %v", err)
	}
}

type noContinuation struct{ *stepper }

func (n *noContinuation) Caps() backend.Caps { return backend.Caps{} }

// Streamed, the answer opens at once and its text arrives as the particles
// come to share it; the deltas add up to the answer.
func TestParticlesStream(t *testing.T) {
	var rec recorder
	out, err := particleRun(t, &stepper{reports: true}, `{"strategy":"particles","n":4,"lambda":50,"ess_threshold":1}`, rec.emit)
	if err != nil {
		t.Fatal(err)
	}
	deltas, text := rec.deltas, rec.text()
	if deltas[0].Text != "" || deltas[0].FinishReason != "" || text != out.Generation.Choices[0].Text || deltas[len(deltas)-1].FinishReason != backend.FinishStop {
		t.Errorf("deltas %+v for %q", deltas, out.Generation.Choices[0].Text)
	}
	if len(deltas) < 4 {
		t.Errorf("the answer came in %d deltas: not streamed as shared", len(deltas))
	}
}

// stepGood is a process reward: 1 for a good step, 0 for a bad one; the
// answer's score is its mean step.
type stepGood struct{}

func (stepGood) Objectives() []string { return []string{"prm"} }
func (stepGood) Rule() rm.StepRule    { return rm.StepRule{Aggregate: rm.StepMean} }
func (g stepGood) Score(ctx context.Context, ss []rm.Sample) ([][]float32, error) {
	steps, err := g.ScoreSteps(ctx, ss)
	out := make([][]float32, len(ss))
	for i := range ss {
		out[i] = []float32{float32(g.Rule().Of(steps[i]))}
	}
	return out, err
}
func (stepGood) ScoreSteps(_ context.Context, ss []rm.Sample) ([][]float64, error) {
	out := make([][]float64, len(ss))
	for i, s := range ss {
		if len(s.Steps) == 0 {
			return nil, fmt.Errorf("sample %d has no steps", i)
		}
		for _, st := range s.Steps {
			out[i] = append(out[i], map[bool]float64{true: 1, false: 0}[strings.TrimSpace(st) == "good"])
		}
	}
	return out, nil
}

// With a process reward, r_t is its score of the newest step: under diff
// without resampling the final weight is exp(λ·score of the last step).
func TestParticlesWithProcessReward(t *testing.T) {
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{"t": stepGood{}}, Routes: map[string]json.RawMessage{"m": json.RawMessage(`{}`)},
		Limits: Limits{MaxSamples: 32}})
	c := call(`{"strategy":"particles","n":6,"lambda":2,"ess_threshold":0.0001}`, 1)
	c.Route.Backend = &stepper{reports: true}
	out, err := run(context.Background(), e, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Without resampling particle i's third step is drawn with seed
	// StepSeed(0, i, 3): good when that is divisible by 3.
	var z float64
	last := map[int]float64{}
	seed := int64(0)
	for _, cand := range out.Info.Candidates {
		if *StepSeed(&seed, cand.Index, 3)%3 == 0 {
			last[cand.Index] = 1
		}
		z += math.Exp(2 * last[cand.Index])
	}
	for _, cand := range out.Info.Candidates {
		if want := math.Exp(2*last[cand.Index]) / z; math.Abs(cand.Extra["weight"].(float64)-want) > 1e-9 {
			t.Errorf("candidate %d: weight %v, want %v", cand.Index, cand.Extra["weight"], want)
		}
	}
}

// recorder keeps the deltas a strategy streams.
type recorder struct{ deltas []backend.Delta }

func (r *recorder) emit(d backend.Delta) error {
	r.deltas = append(r.deltas, d)
	return nil
}

// text is the streamed text.
func (r *recorder) text() string {
	var b strings.Builder
	for _, d := range r.deltas {
		b.WriteString(d.Text)
	}
	return b.String()
}

// A particle ends at max_tokens however its steps end: a step that stops
// at its delimiter on the last allowed token does not start another (which
// would ask the backend for 0 tokens, read as no limit).
func TestParticlesKeepToMaxTokens(t *testing.T) {
	b := reference.New("reference", reference.Options{})
	for seed := range int64(6) {
		c := call(`{"strategy":"particles","n":4,"step_tokens":4}`, 4)
		c.Request.Model, c.Request.MaxTokens, c.Request.Seed, c.Request.Logprobs = "reference", 24, &seed, true
		c.Request.Messages = []backend.Message{{Role: "user", Content: "Why is the sky blue?"}}
		e, on := engine(b, goodShare{}, `{}`)
		out, err := run(context.Background(), e, on(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range out.Generation.Choices {
			if len(ch.Logprobs) > 24 {
				t.Errorf("seed %d: choice %d has %d tokens, over max_tokens 24: %q", seed, ch.Index, len(ch.Logprobs), ch.Text)
			}
		}
		for _, cand := range out.Info.Candidates {
			if cand.CompletionTokens > 24 {
				t.Errorf("seed %d: candidate %d counts %d tokens", seed, cand.Index, cand.CompletionTokens)
			}
		}
	}
}

// uncounted writes as many words as it is asked for tokens, cut by length,
// and counts none of them, as an OpenAI-compatible server does for a
// choice among several, or one without usage.
type uncounted struct{}

func (uncounted) Name() string       { return "uncounted" }
func (uncounted) Caps() backend.Caps { return backend.Caps{Continuation: true, NativeN: true} }
func (u uncounted) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	return u.Stream(ctx, r, nil)
}
func (uncounted) Stream(_ context.Context, r *backend.Request, _ func(backend.Delta) error) (*backend.Generation, error) {
	g := &backend.Generation{}
	for i := range max(r.N, 1) {
		g.Choices = append(g.Choices, backend.Choice{Index: i, Text: strings.Repeat(" w", r.MaxTokens), FinishReason: backend.FinishLength})
	}
	return g, nil
}

// A step cut by length wrote all it was asked for: with a backend that
// counts no tokens, particles still end at max_tokens, not past it.
func TestParticlesKeepToMaxTokensUncounted(t *testing.T) {
	for _, most := range []int{3, 7} {
		e, on := engine(uncounted{}, goodShare{}, `{}`)
		c := call(`{"strategy":"particles","n":2,"step_tokens":4}`, 1)
		c.Request.MaxTokens = most
		out, err := run(context.Background(), e, on(c), nil)
		if err != nil {
			t.Fatal(err)
		}
		ch := out.Generation.Choices[0]
		if words := strings.Count(ch.Text, " w"); words != most || ch.Tokens != most || ch.FinishReason != backend.FinishLength {
			t.Errorf("max_tokens %d: %d words, %d tokens counted, finish %s", most, words, ch.Tokens, ch.FinishReason)
		}
	}
}

// server.max_tokens bounds particles as it bounds max_tokens: a step may
// not ask for more, and an answer without max_tokens keeps to it however
// large step_tokens × max_steps is.
func TestParticlesKeepToServerMaxTokens(t *testing.T) {
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{"t": goodShare{}}, Routes: map[string]json.RawMessage{"m": json.RawMessage(`{}`)},
		Limits: Limits{MaxSamples: 32, MaxTokens: 10}})
	c := call(`{"strategy":"particles","n":2,"step_tokens":11}`, 1)
	c.Route.Backend = uncounted{}
	if _, err := run(context.Background(), e, c, nil); fault.Param(err) != "steering.step_tokens" || !strings.Contains(err.Error(), "server.max_tokens") {
		t.Errorf("step_tokens over server.max_tokens: %v", err)
	}
	for _, steer := range []string{`{"strategy":"particles","n":2,"step_tokens":4}`, `{"strategy":"particles","n":2,"step_tokens":10,"max_steps":9223372036854775807}`,
		`{"strategy":"particles","n":2}`} { // the default step_tokens, 32, is held to 10 too
		c := call(steer, 1)
		c.Route.Backend = uncounted{}
		out, err := run(context.Background(), e, c, nil)
		if err != nil {
			t.Fatalf("%s: %v", steer, err)
		}
		if ch := out.Generation.Choices[0]; ch.Tokens != 10 || strings.Count(ch.Text, " w") != 10 || ch.FinishReason != backend.FinishLength {
			t.Errorf("%s: %d tokens, %d words, finish %s; want 10 cut by length", steer, ch.Tokens, strings.Count(ch.Text, " w"), ch.FinishReason)
		}
	}
}

// Guided and adaptive keep to server.max_tokens too: guided's own budget
// for a request without max_tokens, and the tokens a block or a pruned
// prefix asks for.
func TestServerMaxTokensBoundsGuidedAndAdaptive(t *testing.T) {
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{"t": goodShare{}}, Tokens: map[string]rm.TokenRewarder{"likes": likes{}},
		Routes: map[string]json.RawMessage{"m": json.RawMessage(`{}`)}, Limits: Limits{MaxSamples: 32, MaxTokens: 5}})
	for steer, param := range map[string]string{
		`{"strategy":"guided","block_tokens":6,"k":2}`:                    "steering.block_tokens",
		`{"strategy":"adaptive","prune_tokens":6,"keep":0.5,"initial":4}`: "steering.prune_tokens",
	} {
		c := call(steer, 1)
		c.Route.Backend = &topK{}
		if _, err := e.Plan(c); fault.Param(err) != param {
			t.Errorf("%s: %v, want a 400 naming %s", steer, err, param)
		}
	}
	c := call(`{"strategy":"guided","token_rewards":{"likes":0}}`, 1)
	c.Route.Backend, c.Request.MaxTokens = &topK{}, 0
	out, err := run(context.Background(), e, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ch := out.Generation.Choices[0]; ch.Tokens != 5 || ch.FinishReason != backend.FinishLength {
		t.Errorf("guided without max_tokens: %d tokens (%s), want 5", ch.Tokens, ch.FinishReason)
	}
}

// A request's stop sequence that is also the step delimiter ends the
// answer there, as it would without particles.
func TestParticlesRequestStopWinsOverDelimiter(t *testing.T) {
	e, on := engine(&stepper{reports: true}, goodShare{}, `{}`)
	c := call(`{"strategy":"particles","n":2}`, 1)
	c.Request.Stop = []string{"."}
	out, err := run(context.Background(), e, on(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	ch := out.Generation.Choices[0]
	if strings.Contains(ch.Text, ".") || strings.Count(ch.Text, " ") != 1 || ch.FinishReason != backend.FinishStop || ch.StopSequence == nil || *ch.StopSequence != "." {
		t.Errorf("answer %q, finish %s, stop %v", ch.Text, ch.FinishReason, ch.StopSequence)
	}
}
