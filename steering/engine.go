package steering

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
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
	// Body is the request as the client sent it, when there is one: the
	// response cache keys on its bytes rather than encoding Request again.
	// It must say what Request says (the gateway decoded one from the
	// other).
	Body []byte
	// Experiment and Arm name the experiment arm the call is in: the
	// report says them, and cached answers are kept per arm.
	Experiment, Arm string
	// Encode, when set, writes an answer as its client gets it, less the
	// members each response has its own of (id, object, created, model).
	// The response cache keeps these bytes beside the answer, and a hit
	// that is neither streamed nor in an experiment (whose answers may be
	// evaluated) comes back as Outcome.Encoded alone: sent as stored,
	// never decoded or encoded again.
	Encode func(g *backend.Generation, report json.RawMessage) []byte
}

// Outcome is what a strategy returns: the answers and, when steering ran,
// its report.
type Outcome struct {
	Generation *backend.Generation
	Info       *Info  // nil for plain passthrough
	Cache      string // hit, miss, or "" when the cache was not used
	// Report is Info already encoded, as a cache hit has it (with
	// "cached": true); Info then holds only its strategy and arm.
	Report json.RawMessage
	// Encoded is a cache hit's answer as Call.Encode wrote it; Generation
	// is then nil.
	Encoded []byte
}

// Candidate is one sample's report.
type Candidate struct {
	Index            int               `json:"index"`
	Utility          Number            `json:"utility"` // null when the score was unusable
	Objectives       map[string]Number `json:"objectives"`
	Chosen           bool              `json:"chosen"`
	FinishReason     string            `json:"finish_reason"`
	CompletionTokens int               `json:"completion_tokens"`
	Pruned           bool              `json:"pruned,omitempty"`
	ScoreError       string            `json:"score_error,omitempty"`   // why the utility is null
	Dropped          string            `json:"dropped,omitempty"`       // why the answer could not be chosen
	Extra            map[string]any    `json:"extra,omitempty"`         // strategy-specific (parent, weight, steps, …)
	RewardDetail     json.RawMessage   `json:"reward_detail,omitempty"` // the reward's own account: step scores, a critique
}

// RewardReport is the chosen answer's reward.
type RewardReport struct {
	Utility    Number            `json:"utility"`
	Objectives map[string]Number `json:"objectives"`
}

// Info is the response's "steering" object.
type Info struct {
	Strategy      string         `json:"strategy"`
	Experiment    string         `json:"experiment,omitempty"`
	Arm           string         `json:"arm,omitempty"`
	Reward        *RewardReport  `json:"reward,omitempty"`
	Candidates    []Candidate    `json:"candidates"`
	SamplesUsed   int            `json:"samples_used"`
	BackendUsage  backend.Usage  `json:"backend_usage"`
	Failed        int            `json:"failed"`                   // samples dropped after a backend error
	InvalidScores int            `json:"invalid_scores,omitempty"` // samples whose utility was NaN or infinite
	RewardError   string         `json:"reward_error,omitempty"`   // the reward failed; answered unscored
	Waves         int            `json:"waves,omitempty"`
	StopReason    string         `json:"stop_reason,omitempty"`
	Params        map[string]any `json:"params,omitempty"`
	Weights       map[string]any `json:"weights,omitempty"`
	Cached        bool           `json:"cached,omitempty"` // served from the response cache: nothing was spent now
	// Extra carries strategy-specific fields (steps, resampling events,
	// effective sample sizes, votes, timings).
	Extra map[string]any `json:"-"`
}

// MarshalJSON flattens Extra into the object.
func (i Info) MarshalJSON() ([]byte, error) {
	type plain Info
	b, err := json.Marshal(plain(i))
	if err != nil || len(i.Extra) == 0 {
		return b, err
	}
	extra, err := json.Marshal(i.Extra)
	if err != nil {
		return nil, err
	}
	return append(append(b[:len(b)-1], ','), extra[1:]...), nil
}

// UnmarshalJSON keeps the fields it does not know in Extra, so a cached
// report replays whole.
func (i *Info) UnmarshalJSON(b []byte) error {
	type plain Info
	if err := json.Unmarshal(b, (*plain)(i)); err != nil {
		return err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	known := jsonKeys(reflectTypeOfInfo)
	for k, v := range all {
		if !known[k] {
			if i.Extra == nil {
				i.Extra = map[string]any{}
			}
			i.Extra[k] = v
		}
	}
	return nil
}

// Env is what a strategy may use for one request.
type Env struct {
	Backend    backend.Backend // the route's backend; every call is metered
	Route      string          // the route's name: the scope of running reward statistics
	Reward     rm.Rewarder     // nil for strategies that use none
	RewardName string
	Objectives []string // the reward's columns
	Utility    rm.Utility
	Tokens     map[string]rm.TokenRewarder // token-level rewards by name
	Common     Common
	// Emit streams deltas to the client; nil when not streaming.
	Emit func(backend.Delta) error
	// WantJSON is true when the request asked for a JSON answer.
	WantJSON bool
	Metrics  *metrics.Metrics
	Limits   Limits
	meter    *backend.Meter
	// rewardErr keeps a reward failure answered with on_reward_error: first.
	rewardErr error
	// timing adds up where a strategy's time went, for its report.
	timing struct{ backend, reward time.Duration }
}

// timingReport is the split of a request's time: waiting for the backend
// (the draws' wall time), scoring (every reward call, some overlapping the
// draws), and the rest, the gateway's own work and scoring that did not
// overlap.
func (e *Env) timingReport(total time.Duration) map[string]float64 {
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return map[string]float64{"total": ms(total), "backend": ms(e.timing.backend), "reward": ms(e.timing.reward),
		"other": ms(max(0, total-e.timing.backend))}
}

// Usage is what every backend call of this request has spent so far.
func (e *Env) Usage() backend.Usage { return e.meter.Usage() }

// Engine resolves and runs calls.
type Engine struct {
	resolver  Resolver
	rewards   map[string]rm.Rewarder
	tokens    map[string]rm.TokenRewarder
	routes    map[string]json.RawMessage // route defaults by public model name
	limits    Limits
	responses *ResponseCache
	metrics   *metrics.Metrics
}

// Options configure an engine.
type Options struct {
	Rewards map[string]rm.Rewarder
	// Infos describe the rewards (nil: from Rewards, weighing every
	// objective 1).
	Infos     map[string]RewardInfo
	Default   string                      // the reward used when none is named; "" picks with DefaultReward
	Routes    map[string]json.RawMessage  // route steering defaults by public model name
	Tokens    map[string]rm.TokenRewarder // token-level rewards, for guided decoding
	Limits    Limits
	Responses *ResponseCache
	Metrics   *metrics.Metrics
}

// NewEngine returns an engine.
func NewEngine(o Options) *Engine {
	infos := o.Infos
	if infos == nil {
		infos = map[string]RewardInfo{}
		for name, r := range o.Rewards {
			infos[name] = RewardInfo{Objectives: r.Objectives(), Weights: DefaultWeights(r.Objectives(), nil)}
		}
	}
	def := o.Default
	if def == "" {
		def = DefaultReward(slices.Sorted(maps.Keys(o.Rewards)))
	}
	return &Engine{resolver: Resolver{Rewards: infos, Default: def, Limits: o.Limits, TokenRewards: slices.Sorted(maps.Keys(o.Tokens))},
		rewards: o.Rewards, tokens: o.Tokens, routes: o.Routes, limits: o.Limits, responses: o.Responses, metrics: o.Metrics}
}

// Passthrough reports whether a call is served as the backend answers it:
// strategy none, and no response cache to read or fill.
func (e *Engine) Passthrough(c *Call, p *Plan) bool {
	if p.Name != None {
		return false
	}
	read, write := e.responses.policy(p, c.Request)
	return !read && !write
}

// DefaultWeights returns a reward's default weights: the configured ones,
// else 1 for every objective.
func DefaultWeights(objectives []string, configured map[string]float64) map[string]float64 {
	if configured != nil {
		return configured
	}
	w := make(map[string]float64, len(objectives))
	for _, o := range objectives {
		w[o] = 1
	}
	return w
}

// Resolver returns the engine's resolver, for validating route defaults.
func (e *Engine) Resolver() *Resolver { return &e.resolver }

// Plan resolves a call's steering: the request's object over its route's
// defaults, checked once.
func (e *Engine) Plan(c *Call) (*Plan, error) {
	r := c.Request
	return e.resolver.Resolve(e.routes[c.Route.Name], c.Steering, Target{Backend: c.Route.Backend.Name(),
		Caps: c.Route.Backend.Caps(), K: r.Choices(), Chat: r.Messages != nil}, "steering")
}

// Run answers a call with its plan.
func (e *Engine) Run(ctx context.Context, c *Call, p *Plan, emit func(backend.Delta) error) (*Outcome, error) {
	ctx, meter := backend.WithMeter(ctx)
	env := &Env{Backend: backend.Metered(c.Route.Backend), Route: c.Route.Name, Common: p.Common, Emit: emit, WantJSON: wantJSON(c.Request), Tokens: e.tokens,
		Metrics: e.metrics, Limits: e.limits, meter: meter}
	var weights map[string]float64
	rewardID := ""
	if p.RewardName != "" {
		reward, ok := e.rewards[p.RewardName]
		if !ok {
			return nil, fmt.Errorf("steering: plan names reward %q, which the engine lacks", p.RewardName)
		}
		weights = p.Weights()
		env.Reward, env.RewardName, env.Objectives = reward, p.RewardName, reward.Objectives()
		env.Utility = rm.UtilityFor(reward, weights, p.Common.LengthPenalty, p.Common.LengthFree)
		rewardID = p.RewardName + "|" + rm.IDOf(reward)
	}
	if g, ok := p.Strategy.(*guided); ok { // token rewards make the answer too
		for _, name := range slices.Sorted(maps.Keys(g.TokenRewards)) {
			id := ""
			if t, ok := e.tokens[name].(rm.Identified); ok {
				id = t.ID()
			}
			rewardID += "|" + name + "=" + id
		}
	}
	return e.responses.through(ctx, c, p, weights, rewardID, emit, func(ctx context.Context, emit func(backend.Delta) error) (*Outcome, error) {
		env := *env
		env.Emit = emit
		out, err := p.Strategy.Steer(ctx, c.Request, &env)
		if err != nil {
			return nil, err
		}
		if out.Info == nil && c.Experiment != "" {
			// An experiment's unsteered arm still reports what its call
			// spent, and a hit of it what it spent when computed, as a
			// steered arm's does.
			out.Info = &Info{Candidates: []Candidate{}, SamplesUsed: 1}
		}
		if out.Info != nil {
			out.Info.Strategy = p.Name
			out.Info.Experiment, out.Info.Arm = c.Experiment, c.Arm
			out.Info.BackendUsage = meter.Usage()
			out.Generation.Usage, out.Generation.UsageExtra = out.Info.BackendUsage, meter.Details()
			if out.Info.Params == nil {
				out.Info.Params = p.Params()
			}
			if weights != nil {
				out.Info.Weights = map[string]any{}
				for k, v := range weights {
					out.Info.Weights[k] = v
				}
			}
			e.metrics.Spend(p.Name, out.Info.SamplesUsed, out.Info.BackendUsage.PromptTokens+out.Info.BackendUsage.CompletionTokens)
		}
		return out, nil
	})
}

// Evaluate scores a final answer (the first choice) with a reward and its
// default weights, the same way whatever strategy produced it: an
// experiment's outcome.
func (e *Engine) Evaluate(ctx context.Context, reward string, r *backend.Request, g *backend.Generation) (float64, error) {
	rw, ok := e.rewards[reward]
	info, iok := e.resolver.Rewards[reward]
	if !ok || !iok {
		return 0, fmt.Errorf("steering: no sequence reward %q to evaluate with", reward)
	}
	if g == nil || len(g.Choices) == 0 {
		return 0, fmt.Errorf("steering: no answer to evaluate")
	}
	c := g.Choices[0]
	s := rm.Sample{Messages: r.Messages, Prompt: r.Prompt, Response: rm.Render(c), Text: c.Text, Calls: c.ToolCalls,
		Tools: r.Tools, WantJSON: wantJSON(r), Scope: "evaluate:" + reward}
	scores, err := rw.Score(ctx, []rm.Sample{s})
	if err == nil {
		err = rm.CheckShape(scores, 1, len(rw.Objectives()))
	}
	if err != nil {
		return 0, err
	}
	u := rm.UtilityFor(rw, info.Weights, 0, 0).Of(rw.Objectives(), scores[0], c.Tokens)
	if math.IsNaN(u) || math.IsInf(u, 0) {
		return 0, fmt.Errorf("steering: reward %s gave an unusable score", reward)
	}
	return u, nil
}

// wantJSON reports whether the request asked for JSON output.
func wantJSON(r *backend.Request) bool {
	if r.ResponseFormat != nil {
		return r.ResponseFormat.Type == "json_object" || r.ResponseFormat.Type == "json_schema"
	}
	return false
}
