package steering

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/rm"
)

// Call is one client request on its route.
type Call struct {
	Route    backend.Route
	Request  *backend.Request
	Steering json.RawMessage // the request's "steering" field
	// Tenant scopes the response cache: answers are never shared across
	// tenants.
	Tenant string
	// CacheStatus, when set, is told "hit" or "miss" before anything is
	// emitted, so a stream's headers can carry it.
	CacheStatus func(string)
}

// Outcome is what a strategy returns: the answers and, when steering ran,
// its report.
type Outcome struct {
	Generation *backend.Generation
	Info       *Info  // nil for plain passthrough
	Cache      string // hit, miss, or "" when the cache was not used
}

// Candidate is one sample's report.
type Candidate struct {
	Index            int                `json:"index"`
	Utility          float64            `json:"utility"`
	Objectives       map[string]float32 `json:"objectives"`
	Chosen           bool               `json:"chosen"`
	FinishReason     string             `json:"finish_reason"`
	CompletionTokens int                `json:"completion_tokens"`
	Pruned           bool               `json:"pruned,omitempty"`
}

// RewardReport is the chosen answer's reward.
type RewardReport struct {
	Utility    float64            `json:"utility"`
	Objectives map[string]float32 `json:"objectives"`
}

// Info is the response's "steering" object.
type Info struct {
	Strategy     string         `json:"strategy"`
	Experiment   string         `json:"experiment,omitempty"`
	Arm          string         `json:"arm,omitempty"`
	Reward       *RewardReport  `json:"reward,omitempty"`
	Candidates   []Candidate    `json:"candidates"`
	SamplesUsed  int            `json:"samples_used"`
	BackendUsage backend.Usage  `json:"backend_usage"`
	Failed       int            `json:"failed,omitempty"`       // samples dropped after an error
	RewardError  string         `json:"reward_error,omitempty"` // the reward failed; answered unscored
	Waves        int            `json:"waves,omitempty"`
	StopReason   string         `json:"stop_reason,omitempty"`
	Params       map[string]any `json:"params,omitempty"`
}

// Env is what a strategy may use.
type Env struct {
	Backend    backend.Backend
	Reward     rm.Rewarder
	RewardName string
	Utility    rm.Utility
	// Emit streams deltas to the client; nil when not streaming.
	Emit func(backend.Delta) error
	// WantJSON is true when the request asked for a JSON answer.
	WantJSON bool
	// RewardFallback answers unscored (the first sample wins) when the
	// reward fails, instead of failing the request; rewardErr keeps the
	// failure for the report.
	RewardFallback bool
	rewardErr      *error
}

// Strategy steers one request.
type Strategy interface {
	Name() string
	Steer(ctx context.Context, r *backend.Request, p *Params, env Env) (*Outcome, error)
}

// Route holds a route's steering defaults.
type Route struct {
	Defaults Params
}

// Engine runs calls with the strategy their parameters name.
type Engine struct {
	strategies map[string]Strategy
	rewards    map[string]rm.Rewarder
	routes     map[string]Params // by public model name
	defaultRM  string
	limits     Limits
	responses  *ResponseCache
}

// WithResponseCache puts a response cache in front of every call.
func (e *Engine) WithResponseCache(rc *ResponseCache) *Engine {
	e.responses = rc
	return e
}

// NewEngine returns an engine. routes maps public model names to their
// steering defaults; defaultReward is used when neither request nor route
// names one.
func NewEngine(rewards map[string]rm.Rewarder, routes map[string]Params, defaultReward string, l Limits) *Engine {
	e := &Engine{rewards: rewards, routes: routes, defaultRM: defaultReward, limits: l, strategies: map[string]Strategy{}}
	for _, s := range []Strategy{passthrough{}, bestOfN{}, adaptive{}} {
		e.strategies[s.Name()] = s
	}
	return e
}

// DefaultReward picks the reward a route uses when none is named: the one
// called "default", else the only one.
func DefaultReward(rewards map[string]rm.Rewarder) string {
	if _, ok := rewards["default"]; ok {
		return "default"
	}
	if len(rewards) == 1 {
		for n := range rewards {
			return n
		}
	}
	return ""
}

// Strategy names the strategy a call runs: the request's, else the
// route's, else none. A request whose parameters do not decode runs none
// (and fails in Run).
func (e *Engine) Strategy(c *Call) string {
	p := e.routes[c.Route.Name]
	if err := p.Decode(c.Steering, "steering"); err != nil || p.Strategy == "" {
		return None
	}
	return p.Strategy
}

// Run decodes the call's parameters and runs its strategy.
func (e *Engine) Run(ctx context.Context, c *Call, emit func(backend.Delta) error) (*Outcome, error) {
	p := e.routes[c.Route.Name] // a copy
	if p.Strategy == "" {
		p.Strategy = None
	}
	if err := p.Decode(c.Steering, "steering"); err != nil {
		return nil, err
	}
	if err := p.checkCache(); err != nil {
		return nil, err
	}
	if p.Strategy == None {
		return e.responses.through(ctx, c, &p, nil, emit, func(emit func(backend.Delta) error) (*Outcome, error) {
			return passthrough{}.Steer(ctx, c.Request, &p, Env{Backend: c.Route.Backend, Emit: emit})
		})
	}
	k := c.Request.Choices()
	if err := p.defaults(k, e.limits); err != nil {
		return nil, err
	}
	name := p.Reward
	if name == "" {
		name = e.defaultRM
	}
	reward, ok := e.rewards[name]
	if !ok {
		return nil, backend.Invalid("steering.reward", "unknown reward %q (configured: %v)", name, slices.Sorted(maps.Keys(e.rewards)))
	}
	objectives := reward.Objectives()
	weights := p.Weights
	if weights == nil {
		weights = rm.DefaultWeights(objectives)
	}
	idx := rm.Index(objectives)
	for o := range weights {
		if _, ok := idx[o]; !ok {
			return nil, backend.Invalid("steering.weights", "reward %q has no objective %q (it has %v)", name, o, objectives)
		}
	}
	p.Weights = weights
	env := Env{Backend: c.Route.Backend, Reward: reward, RewardName: name, WantJSON: wantJSON(c.Request),
		RewardFallback: p.OnRewardError == "first", rewardErr: new(error),
		Utility: rm.Utility{Weights: weights, LengthPenalty: p.LengthPenalty, LengthFree: p.LengthFree}}
	return e.responses.through(ctx, c, &p, reward, emit, func(emit func(backend.Delta) error) (*Outcome, error) {
		env := env
		env.Emit = emit
		return e.strategies[p.Strategy].Steer(ctx, c.Request, &p, env)
	})
}

// wantJSON reports whether the request asked for JSON output.
func wantJSON(r *backend.Request) bool {
	raw, ok := r.Extra["response_format"]
	if !ok {
		return false
	}
	var rf struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(raw, &rf)
	return rf.Type == "json_object" || rf.Type == "json_schema"
}

// passthrough is the "none" strategy.
type passthrough struct{}

func (passthrough) Name() string { return None }

func (passthrough) Steer(ctx context.Context, r *backend.Request, _ *Params, env Env) (*Outcome, error) {
	var g *backend.Generation
	var err error
	if env.Emit == nil {
		g, err = backend.GenerateN(ctx, env.Backend, r)
	} else {
		g, err = backend.StreamN(ctx, env.Backend, r, env.Emit)
	}
	if err != nil {
		return nil, err
	}
	return &Outcome{Generation: g}, nil
}

// sample is one generated candidate with its scores.
type sample struct {
	index    int
	choice   backend.Choice
	usage    backend.Usage
	scores   []float32
	utility  float64
	pruned   bool
	scored   bool
	finished bool // the answer is complete (not a pruned prefix)
}

// scoreAll scores the samples that have no scores yet, in one batched call,
// and computes their utilities.
func scoreAll(ctx context.Context, r *backend.Request, env Env, ss []*sample) error {
	var todo []*sample
	var batch []rm.Sample
	for _, s := range ss {
		if s.scored {
			continue
		}
		todo = append(todo, s)
		batch = append(batch, rm.Sample{Messages: r.Messages, Prompt: r.Prompt, Response: s.choice.Text, WantJSON: env.WantJSON})
	}
	if len(todo) == 0 {
		return nil
	}
	start := time.Now()
	scores, err := env.Reward.Score(ctx, batch)
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	metrics.RewardDuration.WithLabelValues(env.RewardName, outcome).Observe(time.Since(start).Seconds())
	if err != nil && env.RewardFallback && ctx.Err() == nil {
		// Unscored: equal utilities, so selection keeps the first sample.
		*env.rewardErr = err
		for _, s := range todo {
			s.scores, s.scored, s.utility = make([]float32, len(env.Reward.Objectives())), true, 0
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("%w: %w", rm.ErrReward, err)
	}
	if len(scores) != len(todo) {
		return fmt.Errorf("%w: %d scores for %d samples", rm.ErrReward, len(scores), len(todo))
	}
	objectives := env.Reward.Objectives()
	for i, s := range todo {
		s.scores, s.scored = scores[i], true
		s.utility = env.Utility.Of(objectives, s.scores, s.choice.Tokens)
	}
	return nil
}

// rank orders samples by utility, best first; ties go to the lower index.
func rank(ss []*sample) []*sample {
	out := append([]*sample(nil), ss...)
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].utility != out[j].utility {
			return out[i].utility > out[j].utility
		}
		return out[i].index < out[j].index
	})
	return out
}

// choose returns the k best samples with distinct texts (fewer if there
// are not k distinct ones, then topped up with repeats in rank order).
func choose(ss []*sample, k int) []*sample {
	ranked := rank(complete(ss))
	seen := map[string]bool{}
	var out []*sample
	for _, s := range ranked {
		if len(out) < k && !seen[s.choice.Text] {
			seen[s.choice.Text] = true
			out = append(out, s)
		}
	}
	for _, s := range ranked {
		if len(out) >= k {
			break
		}
		if !contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func contains(ss []*sample, x *sample) bool {
	for _, s := range ss {
		if s == x {
			return true
		}
	}
	return false
}

// finish builds the outcome: the chosen samples as choices 0..k-1, usage
// summed over every sample, and the report. When streaming, the chosen
// answers are emitted now, each as one delta and a finishing delta.
func finish(strategy string, ss []*sample, failed int, k int, env Env, extra func(*Info)) (*Outcome, error) {
	chosen := choose(ss, k)
	objectives := env.Reward.Objectives()
	info := &Info{Strategy: strategy, SamplesUsed: len(ss) + failed, Failed: failed}
	objMap := func(s *sample) map[string]float32 {
		m := make(map[string]float32, len(objectives))
		for i, o := range objectives {
			m[o] = s.scores[i]
		}
		return m
	}
	g := &backend.Generation{}
	for _, s := range ss {
		info.BackendUsage.Add(s.usage)
		info.Candidates = append(info.Candidates, Candidate{Index: s.index, Utility: s.utility, Objectives: objMap(s),
			Chosen: contains(chosen, s), FinishReason: s.choice.FinishReason, CompletionTokens: s.choice.Tokens, Pruned: s.pruned})
	}
	sort.Slice(info.Candidates, func(i, j int) bool { return info.Candidates[i].Index < info.Candidates[j].Index })
	g.Usage = info.BackendUsage
	for i, s := range chosen {
		c := s.choice
		c.Index = i
		g.Choices = append(g.Choices, c)
	}
	info.Reward = &RewardReport{Utility: chosen[0].utility, Objectives: objMap(chosen[0])}
	if env.rewardErr != nil && *env.rewardErr != nil {
		info.RewardError = (*env.rewardErr).Error()
		info.Reward = nil
	}
	if extra != nil {
		extra(info)
	}
	if env.Emit != nil {
		for _, c := range g.Choices {
			if err := env.Emit(backend.Delta{Index: c.Index, Text: c.Text, Logprobs: c.Logprobs}); err != nil {
				return nil, err
			}
			if err := env.Emit(backend.Delta{Index: c.Index, FinishReason: c.FinishReason}); err != nil {
				return nil, err
			}
		}
	}
	return &Outcome{Generation: g, Info: info}, nil
}
