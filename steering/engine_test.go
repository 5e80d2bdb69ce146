package steering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/judge"
)

// A request's steering object never changes its route's defaults, however
// many requests override them at once (run under -race).
func TestOverridesLeaveRouteDefaultsAlone(t *testing.T) {
	route := `{"strategy":"adaptive","initial":2,"max_samples":4,"threshold":1.0,"cache":{"mode":"on","ttl_s":60},"weights":{"good":1,"long":0}}`
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{"t": table()}, Routes: map[string]json.RawMessage{"m": json.RawMessage(route)},
		Limits: Limits{MaxSamples: 32, MaxCacheTTL: 3600}, Responses: NewResponseCache(cache.NewMemory(1<<20), true, 0, 1<<20, nil)})
	overrides := []string{
		`{"threshold":99,"cache":{"mode":"off"},"weights":{"good":5}}`,
		`{"threshold":-1,"cache":{"ttl_s":1},"weights":{"long":3}}`,
		`{"strategy":"best_of_n","n":3,"weights":{"good":-1}}`,
		`{"threshold":"x"}`,              // refused
		`{"cache":{"mode":"sometimes"}}`, // refused
		`{"initial":100}`,                // refused
	}
	var wg sync.WaitGroup
	for i := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := call(overrides[i%len(overrides)], 1)
			c.Route.Backend = &scripted{}
			_, _ = run(context.Background(), e, c, nil)
		}()
	}
	wg.Wait()
	c := call("", 1)
	c.Route.Backend = &scripted{}
	p, err := e.Plan(c)
	if err != nil {
		t.Fatal(err)
	}
	a := p.Strategy.(*adaptive)
	if p.Name != Adaptive || a.Threshold == nil || *a.Threshold != 1.0 || a.MaxSamples != 4 {
		t.Errorf("route defaults changed: %s %+v", p.Name, a)
	}
	if cp := p.Common.Cache; cp == nil || cp.Mode != CacheOn || cp.TTLS != 60 {
		t.Errorf("route cache changed: %+v", cp)
	}
	if w := p.Weights(); w["good"] != 1 || w["long"] != 0 {
		t.Errorf("route weights changed: %v", w)
	}
}

// shaped scores sample s<k> value(k) in every column, with rows and
// columns as set (-1: as asked), less drop rows. Samples may reach it in
// batches of any size, so a short answer is one row short of each batch.
type shaped struct {
	rows, cols, drop int
	value            func(k int) float32
}

func (s *shaped) Objectives() []string { return []string{"good", "long"} }
func (s *shaped) Score(_ context.Context, ss []rm.Sample) ([][]float32, error) {
	rows, cols := s.rows, s.cols
	if rows < 0 {
		rows = len(ss)
	}
	rows -= s.drop
	if cols < 0 {
		cols = 2
	}
	out := make([][]float32, rows)
	for i := range out {
		k := i // the sample's number (its answer is "s<k>"), whatever batch it came in
		if i < len(ss) {
			fmt.Sscanf(ss[i].Response, "s%d", &k)
		}
		out[i] = make([]float32, cols)
		for j := range out[i] {
			out[i][j] = s.value(k)
		}
	}
	return out, nil
}

func TestRewardShapeAndValueFaults(t *testing.T) {
	one := func(int) float32 { return 1 }
	for name, r := range map[string]*shaped{
		"short rows":    {rows: -1, cols: 1, value: one},
		"extra columns": {rows: -1, cols: 3, value: one},
		"missing rows":  {rows: -1, cols: -1, drop: 1, value: one},
	} {
		e, on := engine(&scripted{}, r, `{"weights":{"good":1}}`)
		_, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":4}`, 1)), nil)
		if !errors.Is(err, fault.ErrReward) {
			t.Errorf("%s: %v, want a reward error", name, err)
		}
	}
	// NaN and ±Inf utilities are unusable: ranked last, never chosen,
	// counted in the report.
	nan := &shaped{rows: -1, cols: -1, value: func(i int) float32 {
		switch i {
		case 0:
			return float32(math.NaN())
		case 2:
			return float32(math.Inf(1))
		}
		return float32(i)
	}}
	e, on := engine(&scripted{}, nan, `{"weights":{"good":1}}`)
	out, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":4,"min_success":1}`, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Generation.Choices[0].Text != "s3" || out.Info.InvalidScores != 2 || out.Info.Candidates[0].Chosen {
		t.Errorf("chose %q, invalid %d: %+v", out.Generation.Choices[0].Text, out.Info.InvalidScores, out.Info.Candidates)
	}
	if b, err := json.Marshal(out.Info); err != nil || !strings.Contains(string(b), `"utility":null`) {
		t.Errorf("report %s (%v): a NaN utility must read null", b, err)
	}
	// Every utility unusable and no backend failed: its own class.
	allNaN := &shaped{rows: -1, cols: -1, value: func(int) float32 { return float32(math.NaN()) }}
	e, on = engine(&scripted{}, allNaN, `{"weights":{"good":1}}`)
	_, err = run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":2}`, 1)), nil)
	if !errors.Is(err, fault.ErrInsufficient) || errors.Is(err, fault.ErrUpstream) {
		t.Errorf("all NaN: %v", err)
	}
}

// Adaptive never stops on a statistical rule before min_success usable
// answers exist, and refuses a keep share that cannot yield n answers.
func TestAdaptiveWaitsForMinSuccess(t *testing.T) {
	e, on := engine(&scripted{}, table(), `{"weights":{"good":1,"long":0}}`)
	out, err := run(context.Background(), e, on(call(`{"strategy":"adaptive","initial":3,"step":1,"max_samples":8,"threshold":-100,"min_success":5}`, 3)), nil)
	if err != nil {
		t.Fatal(err)
	}
	if out.Info.SamplesUsed < 5 || out.Info.StopReason != stopThreshold {
		t.Errorf("stopped after %d samples (%s)", out.Info.SamplesUsed, out.Info.StopReason)
	}
	_, err = run(context.Background(), e, on(call(`{"strategy":"adaptive","initial":3,"prune_tokens":2,"keep":0.5}`, 3)), nil)
	if !errors.Is(err, fault.ErrInvalid) || fault.Param(err) != "steering.keep" {
		t.Errorf("keep × initial below n: %v", err)
	}
	_, err = run(context.Background(), e, on(call(`{"strategy":"adaptive","min_success":100}`, 1)), nil)
	if !errors.Is(err, fault.ErrInvalid) || fault.Param(err) != "steering.min_success" {
		t.Errorf("min_success above max_samples: %v", err)
	}
}

// A stopping parameter of the other rule has no effect, and is refused
// where it is given: p_min without delta, cost or cost_sd with it. A
// route's parameter that the request's own delta idles is let be.
func TestAdaptiveRefusesIdleStopParameters(t *testing.T) {
	for _, tc := range []struct{ route, req, param string }{
		{`{}`, `{"strategy":"adaptive","p_min":0.2}`, "steering.p_min"},
		{`{}`, `{"strategy":"adaptive","delta":0.1,"cost":0.1}`, "steering.cost"},
		{`{}`, `{"strategy":"adaptive","delta":0.1,"cost_sd":0.5}`, "steering.cost_sd"},
		{`{"strategy":"adaptive","delta":0.1}`, `{"cost":0.1}`, "steering.cost"},
		{`{"strategy":"adaptive","p_min":0.2}`, `{"initial":4}`, "steering.p_min"},
		{`{"strategy":"adaptive","delta":0.1,"p_min":0.2}`, `{"delta":0}`, ""},
		{`{"strategy":"adaptive","cost":0.1}`, `{"delta":0.1}`, ""},
		{`{}`, `{"strategy":"adaptive","delta":0.1,"p_min":0.2}`, ""},
		{`{}`, `{"strategy":"adaptive","cost":0.1,"cost_sd":0.2}`, ""},
	} {
		e, on := engine(&scripted{}, table(), tc.route)
		_, err := e.Plan(on(call(tc.req, 1)))
		if tc.param == "" && err != nil || tc.param != "" && (!errors.Is(err, fault.ErrInvalid) || fault.Param(err) != tc.param) {
			t.Errorf("route %s, request %s: %v, want a 400 naming %q", tc.route, tc.req, err, tc.param)
		}
	}
}

// counting sums the usage every call to a backend reported.
type counting struct {
	backend.Backend
	mu    sync.Mutex
	usage backend.Usage
}

func (c *counting) add(u backend.Usage) {
	c.mu.Lock()
	c.usage.Add(u)
	c.mu.Unlock()
}

func (c *counting) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	g, err := c.Backend.Generate(ctx, r)
	if g != nil {
		c.add(g.Usage)
	}
	return g, err
}

func (c *counting) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	g, err := c.Backend.Stream(ctx, r, emit)
	if g != nil {
		c.add(g.Usage)
	}
	return g, err
}

func (c *counting) ScoreText(ctx context.Context, r *backend.Request, text string) (*backend.Score, error) {
	s, err := c.Backend.(backend.Scorer).ScoreText(ctx, r, text)
	if s != nil {
		c.add(s.Usage)
	}
	return s, err
}

// usage and steering.backend_usage are everything the backends spent for
// the request: samples, a judge's scoring calls, samples that failed after
// spending.
func TestUsageIsEveryBackendToken(t *testing.T) {
	gen := &counting{Backend: reference.New("reference", reference.Options{})}
	strong := &counting{Backend: reference.New("strong", reference.Options{})}
	weak := &counting{Backend: reference.New("weak", reference.Options{})}
	dr, err := judge.NewDensityRatio(backend.Metered(strong), "reference", backend.Metered(weak), "reference", "", nil, false)
	if err != nil {
		t.Fatal(err)
	}
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{"dr": dr}, Limits: Limits{MaxSamples: 32}})
	for _, steer := range []string{`{"strategy":"best_of_n","n":4}`, `{"strategy":"adaptive","initial":2,"prune_tokens":3,"keep":0.5,"max_samples":4}`} {
		gen.usage, strong.usage, weak.usage = backend.Usage{}, backend.Usage{}, backend.Usage{}
		seed := int64(5)
		c := &Call{Route: backend.Route{Name: "reference", Backend: gen, Target: "reference"}, Steering: json.RawMessage(steer),
			Request: &backend.Request{Model: "reference", Seed: &seed, MaxTokens: 12, Messages: []backend.Message{{Role: "user", Content: "Why is the sky blue?"}}}}
		out, err := run(context.Background(), e, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		want := gen.usage
		want.Add(strong.usage)
		want.Add(weak.usage)
		if strong.usage.PromptTokens == 0 || out.Generation.Usage != want || out.Info.BackendUsage != want {
			t.Errorf("%s: usage %+v, report %+v; the backends saw %+v (judge %+v + %+v)", steer, out.Generation.Usage, out.Info.BackendUsage,
				want, strong.usage, weak.usage)
		}
	}
}

// A sample that fails after the backend reported what it spent still
// counts.
type spendsThenFails struct{ scripted }

func (s *spendsThenFails) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	g, err := s.scripted.Generate(ctx, r)
	if err == nil && *r.Seed == 1 {
		return g, fmt.Errorf("%w: broke after answering", fault.ErrUpstream)
	}
	return g, err
}

func TestUsageCountsFailedSamples(t *testing.T) {
	b := &spendsThenFails{}
	e, on := engine(b, table(), `{"weights":{"good":1,"long":0}}`)
	out, err := run(context.Background(), e, on(call(`{"strategy":"best_of_n","n":3,"min_success":2}`, 1)), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Three calls of prompt 5; completions 1, 2 (the failed one) and 3.
	if u := out.Generation.Usage; u.PromptTokens != 15 || u.CompletionTokens != 6 || out.Info.Failed != 1 {
		t.Errorf("usage %+v, failed %d", u, out.Info.Failed)
	}
}

// A steering object's keys are read as they are spelled, escapes
// included, and one that repeats another in any letter case is refused.
func TestSteeringObjectKeys(t *testing.T) {
	e, on := engine(&scripted{}, table(), `{}`)
	for steer, want := range map[string]string{
		`{"strategy":"best_of_n","n":2,"n":3}`:      `key "n" repeats "n"`,
		`{"strategy":"best_of_n","n":2,"N":3}`:      `key "N" repeats "n"`,
		`{"strategy":"best_of_n","n":2,"\u004e":3}`: `key "N" repeats "n"`,
		`{"strategy":"best_of_n","n":2,"n":3,"x":1`: `not valid JSON`,
		`["best_of_n"]`: `steering must be an object`,
		`{"strategy":"best_of_n","n":2,"bogus\"q":1}`: `unknown parameter "bogus\"q"`,
		// Wrong types say what was wanted in JSON's words, with the path.
		`{"strategy":"best_of_n","n":"2"}`:               `invalid type for 'steering.n': expected an integer, got a string`,
		`{"strategy":"best_of_n","cache":{"ttl_s":1.5}}`: `invalid type for 'steering.cache.ttl_s': expected an integer, got the number 1.5`,
		`{"strategy":"best_of_n","cache":true}`:          `invalid type for 'steering.cache': expected an object, got a boolean`,
	} {
		_, err := e.Plan(on(call(steer, 1)))
		if !errors.Is(err, fault.ErrInvalid) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v, want an invalid-request error saying %s", steer, err, want)
		}
	}
	// Nested objects too: a cache key in another case, twice or unknown,
	// a weight twice or not a number, each refused by its path.
	for steer, param := range map[string]string{
		`{"strategy":"best_of_n","n":2,"n":3}`:                        "steering.n",
		`{"strategy":"best_of_n","cache":{"MODE":"on"}}`:              "steering.cache.MODE",
		`{"strategy":"best_of_n","cache":{"mode":"off","mode":"on"}}`: "steering.cache.mode",
		`{"strategy":"best_of_n","cache":{"foo":1}}`:                  "steering.cache.foo",
		`{"strategy":"best_of_n","weights":{"good":1,"good":-5}}`:     "steering.weights.good",
		`{"strategy":"best_of_n","weights":{"good":null}}`:            "steering.weights.good",
		`{"strategy":"best_of_n","weights":{"good":"2"}}`:             "steering.weights.good",
		`{"strategy":"best_of_n","weights":[1]}`:                      "steering.weights",
		// Past server.max_samples, initial is named for itself, not for
		// the max_samples its default would follow it to.
		`{"strategy":"adaptive","initial":33}`: "steering.initial",
		`{"strategy":"best_of_n","reward":""}`: "steering.reward",
	} {
		_, err := e.Plan(on(call(steer, 1)))
		if !errors.Is(err, fault.ErrInvalid) || fault.Param(err) != param {
			t.Errorf("%s: %v (param %q), want an invalid-request error naming %s", steer, err, fault.Param(err), param)
		}
	}
	// A 0 for a parameter whose 0 would only mean "unset" is refused, not
	// read as left out; where 0 means something (cost_sd: no cost), it is
	// what it says.
	for steer, param := range map[string]string{
		`{"strategy":"best_of_n","n":0}`:            "steering.n",
		`{"strategy":"guided","k":0}`:               "steering.k",
		`{"strategy":"best_of_n","min_success":0}`:  "steering.min_success",
		`{"strategy":"adaptive","initial":0}`:       "steering.initial",
		`{"strategy":"adaptive","p_min":0}`:         "steering.p_min",
		`{"strategy":"particles","step_tokens":0}`:  "steering.step_tokens",
		`{"strategy":"particles","max_steps":-0}`:   "steering.max_steps",
		`{"strategy":"self_consistency","wave":0}`:  "steering.wave",
		`{"strategy":"particles","token_budget":0}`: "steering.token_budget",
		`{"strategy":"adaptive","prune_tokens":0}`:  "steering.prune_tokens",
	} {
		_, err := e.Plan(on(call(steer, 1)))
		if !errors.Is(err, fault.ErrInvalid) || fault.Param(err) != param || !strings.Contains(err.Error(), "must not be 0") {
			t.Errorf("%s: %v (param %q), want a 0 refused for %s", steer, err, fault.Param(err), param)
		}
	}
	if _, err := e.Plan(on(call(`{"strategy":"best_of_n","cache":{"ttl_s":0}}`, 1))); fault.Param(err) != "steering.cache.ttl_s" {
		t.Errorf("cache.ttl_s 0: %v", err)
	}
	if p, err := e.Plan(on(call(`{"strategy":"best_of_n","cache":{"max_age_s":0}}`, 1))); err != nil || p.Common.Cache.MaxAgeS == nil || *p.Common.Cache.MaxAgeS != 0 {
		t.Errorf("cache.max_age_s 0: %v", err)
	}
	if p, err := e.Plan(on(call(`{"strategy":"adaptive","cost_sd":0}`, 1))); err != nil || *p.Strategy.(*adaptive).CostSD != 0 {
		t.Errorf("cost_sd 0: %v %+v", err, p)
	}
	if p, err := e.Plan(on(call(`{"strategy":"adaptive"}`, 1))); err != nil || *p.Strategy.(*adaptive).CostSD != defaultCostSD {
		t.Errorf("cost_sd left out: %v %+v", err, p)
	}
	if _, err := e.Plan(on(call(`{"strategy":"best_of_n","cache":{"mode":"on","ttl_s":5},"weights":{"good":1}}`, 1))); err != nil {
		t.Errorf("a cache object and weights as they should be: %v", err)
	}
	p, err := e.Plan(on(call(`{"str\u0061tegy":"best_of_n","\u006e":5}`, 1)))
	if err != nil || p.Name != BestOfN || p.Strategy.(*bestOfN).N != 5 {
		t.Fatalf("escaped keys: %v %+v", err, p)
	}
}

// A token-level reward named where a reward of answers goes is said to be
// one, not called unknown.
func TestTokenRewardNamedAsReward(t *testing.T) {
	rs := Resolver{Rewards: map[string]RewardInfo{"default": {Objectives: []string{"x"}}}, Default: "default", TokenRewards: []string{"words"}, Limits: Limits{MaxSamples: 16}}
	_, err := rs.Resolve(nil, json.RawMessage(`{"strategy":"best_of_n","reward":"words"}`), Target{K: 1, Chat: true}, "steering")
	if fault.Param(err) != "steering.reward" || !strings.Contains(err.Error(), `reward "words" scores next tokens`) {
		t.Errorf("%v", err)
	}
}

// lengthOnly scores one objective, "long", that goodShare does not have.
type lengthOnly struct{}

func (lengthOnly) Objectives() []string { return []string{"long"} }
func (lengthOnly) Score(_ context.Context, ss []rm.Sample) ([][]float32, error) {
	out := make([][]float32, len(ss))
	for i, s := range ss {
		out[i] = []float32{float32(len(s.Response))}
	}
	return out, nil
}

// The route's weights are for the route's reward: a request that names
// another reward plans without them, rather than being refused for
// objectives it never named.
func TestRequestRewardLeavesRouteWeights(t *testing.T) {
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{"default": goodShare{}, "length": lengthOnly{}},
		Routes: map[string]json.RawMessage{"m": json.RawMessage(`{"weights":{"good":2}}`)}, Limits: Limits{MaxSamples: 32}})
	on := func(c *Call) *Call { c.Route.Backend = &stepper{}; return c }
	p, err := e.Plan(on(call(`{"strategy":"best_of_n","reward":"length"}`, 1)))
	if err != nil || p.RewardName != "length" || p.RouteWeights != nil {
		t.Fatalf("another reward: %v %+v", err, p)
	}
	if p, err = e.Plan(on(call(`{"strategy":"best_of_n"}`, 1))); err != nil || p.RouteWeights["good"] != 2 {
		t.Errorf("the route's reward: %v %+v", err, p)
	}
	// Weights the request gives still have to be the reward's.
	if _, err := e.Plan(on(call(`{"strategy":"best_of_n","reward":"length","weights":{"good":1}}`, 1))); fault.Param(err) != "steering.weights" {
		t.Errorf("the request's weights for another reward: %v", err)
	}
}

// A steering parameter given as null is not given: the route's value
// holds, else the default.
func TestNullParametersAreNotGiven(t *testing.T) {
	e, on := engine(&stepper{}, goodShare{}, `{"strategy":"best_of_n","n":3}`)
	p, err := e.Plan(on(call(`{"strategy":null,"n":null,"reward":null}`, 1)))
	if err != nil || p.Name != "best_of_n" || p.Strategy.(*bestOfN).N != 3 {
		t.Errorf("%v %+v", err, p)
	}
}
