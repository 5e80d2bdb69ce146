package steering

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/wire"
)

// None is the passthrough strategy's name.
const None = "none"

// Common are the parameters every strategy shares.
type Common struct {
	Strategy string `json:"strategy,omitempty"`
	Reward   string `json:"reward,omitempty"`
	// Weights are objective weights; see Plan.Weights for how layers merge.
	Weights map[string]float64 `json:"weights,omitempty"`
	// LengthPenalty is subtracted from the utility per completion token
	// beyond LengthFree (length-bias control).
	LengthPenalty float64 `json:"length_penalty,omitempty"`
	LengthFree    int     `json:"length_free,omitempty"`
	// MinSuccess is the fewest usable answers the request needs; default
	// the request's n.
	MinSuccess int `json:"min_success,omitempty"`
	// OnRewardError: "fail" (the default: 502 reward_error) or "first"
	// (answer with the first sample, unscored, and say so in the report).
	OnRewardError string       `json:"on_reward_error,omitempty"`
	Cache         *CacheParams `json:"cache,omitempty"`
	// Arm forces an experiment arm (admin keys only).
	Arm string `json:"arm,omitempty"`
}

// Limits cap what one request may spend.
type Limits struct {
	MaxSamples  int // most samples (particles, candidates) per request
	MaxCacheTTL int // seconds; the largest steering.cache.ttl_s (0: unbounded)
	// MaxTokens is the most tokens a request may ask for (server.max_tokens;
	// 0: unbounded); a strategy that asks for tokens of its own keeps to it.
	MaxTokens int
}

// Strategy is one registered way of answering a request. Its value holds
// its own parameters, decoded from the steering object.
type Strategy interface {
	// Check fills unset parameters with their defaults and validates them.
	Check(c *Check) error
	// Steer answers r.
	Steer(ctx context.Context, r *backend.Request, env *Env) (*Outcome, error)
}

// RewardUse says whether a strategy scores answers with a sequence reward.
type RewardUse int

const (
	RewardNone     RewardUse = iota // never (none)
	RewardOptional                  // to break ties when one is configured (self_consistency)
	RewardRequired                  // always (best_of_n, adaptive, particles)
)

// kind is a registered strategy.
type kind struct {
	name   string
	new    func() Strategy
	reward RewardUse
	known  map[string]bool // its parameter keys
}

var (
	regMu    sync.RWMutex
	registry = map[string]kind{}
)

// Register adds a strategy: name is what steering.strategy names, new
// returns a value with every parameter unset. Strategies register
// themselves from init in their own file.
func Register(name string, new func() Strategy, reward RewardUse) {
	regMu.Lock()
	defer regMu.Unlock()
	if _, dup := registry[name]; dup {
		panic("steering: strategy " + name + " registered twice")
	}
	registry[name] = kind{name: name, new: new, reward: reward, known: jsonKeys(reflect.TypeOf(new()))}
}

// Names lists the registered strategies, sorted: the closed set that
// metric labels may take.
func Names() []string {
	regMu.RLock()
	defer regMu.RUnlock()
	return slices.Sorted(maps.Keys(registry))
}

// Known reports whether name is a registered strategy.
func Known(name string) bool {
	regMu.RLock()
	defer regMu.RUnlock()
	_, ok := registry[name]
	return ok
}

func lookup(name string) (kind, bool) {
	regMu.RLock()
	defer regMu.RUnlock()
	k, ok := registry[name]
	return k, ok
}

var commonKeys = jsonKeys(reflect.TypeOf(Common{}))

// jsonKeys returns the JSON names of a struct type's fields.
func jsonKeys(t reflect.Type) map[string]bool {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	m := map[string]bool{}
	if t.Kind() != reflect.Struct {
		return m
	}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		if name != "" && name != "-" {
			m[name] = true
		}
	}
	return m
}

// Check is what a strategy validates its parameters against.
type Check struct {
	K          int  // answers the request wants (its n); 1 for route defaults
	Chat       bool // a chat request; false for a raw completion
	Limits     Limits
	Caps       backend.Caps
	Backend    string // the route backend's name, for messages
	Common     *Common
	Objectives []string // the reward's objectives; nil when the strategy uses none
	// TokenRewards names the token-level rewards configured.
	TokenRewards []string
	prefix       string                     // "steering" or "models[2].steering"
	given        map[string]json.RawMessage // the steering object's members, as merged
	asked        map[string]json.RawMessage // the request's own members
}

// NoZero refuses a 0 given for any of keys, parameters whose 0 means only
// "unset": left out, each takes its default, but a 0 written in the
// request is not silently read as left out.
func (c *Check) NoZero(keys ...string) error {
	for _, key := range keys {
		if v, ok := c.given[key]; ok && isZero(v) {
			return c.Bad(key, "%s must not be 0: leave it out for its default", key)
		}
	}
	return nil
}

// Idle refuses key where it is given but has no effect under the mode
// its strategy is in, which the parameter mode sets: a request that gives
// it is told, not silently ignored. A route's key that the request's own
// mode left idle is not the request's doing, and is let be.
func (c *Check) Idle(key, mode, format string, args ...any) error {
	if _, ok := c.given[key]; !ok {
		return nil
	}
	_, byRequest := c.asked[key]
	_, modeByRequest := c.asked[mode]
	if byRequest || !modeByRequest {
		return c.Bad(key, format, args...)
	}
	return nil
}

// isZero reports whether the JSON value v is the number 0 (0, 0.0, -0, 0e3).
func isZero(v json.RawMessage) bool {
	v = bytes.TrimSpace(v)
	if len(v) == 0 || v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return false
	}
	f, err := strconv.ParseFloat(string(v), 64)
	return err == nil && f == 0
}

// Bad returns a 400 naming the parameter key.
func (c *Check) Bad(key, format string, args ...any) error {
	return fault.Invalid(c.prefix+"."+key, format, args...)
}

// Unsupported returns a 400 for a parameter the route's backend cannot
// serve.
func (c *Check) Unsupported(key, format string, args ...any) error {
	return fault.Unsupported(c.prefix+"."+key, format, args...)
}

// Samples defaults a sample count (the parameter key) to def and checks it
// lies between the request's n and server.max_samples, with min_success
// at most it.
func (c *Check) Samples(key string, n *int, def int) error {
	if *n == 0 {
		*n = def
	}
	if *n < c.K || *n > c.Limits.MaxSamples {
		return c.Bad(key, "%s must be between the request's n (%d) and %d (server.max_samples)", key, c.K, c.Limits.MaxSamples)
	}
	if c.Common.MinSuccess > *n {
		return c.Bad("min_success", "min_success must be at most %s (%d)", key, *n)
	}
	return nil
}

// Plan is a request's steering resolved once: the strategy with its
// parameters checked, the common parameters, and the reward and weights it
// will use. It travels with the call.
type Plan struct {
	Name       string // the strategy's registered name
	Strategy   Strategy
	Common     Common
	RewardName string   // "" when the strategy uses no reward
	Objectives []string // the reward's
	// Weight layers, merged key by key by Weights: the request's, the
	// user's (set by the caller), the route's, the reward's defaults.
	RequestWeights, UserWeights, RouteWeights, RewardWeights map[string]float64
}

// Weights returns the effective weight of every objective: for each, the
// first layer that names it, in the order request, user, route, reward
// default; objectives no layer names weigh 0.
func (p *Plan) Weights() map[string]float64 {
	w := make(map[string]float64, len(p.Objectives))
	for _, o := range p.Objectives {
		for _, layer := range []map[string]float64{p.RequestWeights, p.UserWeights, p.RouteWeights, p.RewardWeights} {
			if v, ok := layer[o]; ok {
				w[o] = v
				break
			}
		}
	}
	return w
}

// Params returns the strategy's resolved parameters as a JSON object, for
// the report and the response-cache key.
func (p *Plan) Params() map[string]any {
	b, _ := json.Marshal(p.Strategy)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

// RewardInfo is what resolving needs to know of a reward.
type RewardInfo struct {
	Objectives []string
	Weights    map[string]float64 // default weights
}

// Resolver turns steering objects into plans. The gateway's engine and
// check-config use the same resolver, so a route's defaults are checked at
// load exactly as a request's steering is checked when it arrives.
type Resolver struct {
	Rewards      map[string]RewardInfo
	Default      string // the reward used when none is named ("" when none applies)
	Limits       Limits
	TokenRewards []string // the token-level rewards' names (guided decoding)
}

// DefaultReward picks the reward a route uses when none is named: the one
// called "default", else the only one.
func DefaultReward(names []string) string {
	if slices.Contains(names, "default") {
		return "default"
	}
	if len(names) == 1 {
		return names[0]
	}
	return ""
}

// Target is the route a plan is resolved for.
type Target struct {
	Backend string
	Caps    backend.Caps
	K       int  // answers wanted
	Chat    bool // chat (true) or raw completion
}

// Resolve lays the request's steering object over the route's and checks
// the result. prefix names the object in errors ("steering" for a
// request). route and req may be empty.
func (rs *Resolver) Resolve(route, req json.RawMessage, t Target, prefix string) (*Plan, error) {
	bad := func(key, format string, args ...any) error {
		if key != "" {
			key = "." + key
		}
		return fault.Invalid(prefix+key, format, args...)
	}
	routeObj, err := wire.Object(route, prefix)
	if err != nil {
		return nil, err
	}
	reqObj, err := wire.Object(req, prefix)
	if err != nil {
		return nil, err
	}
	// A parameter given as null is not given: the route's value, else the
	// default, holds (as null does for OpenAI's own optional fields).
	wire.DropNulls(reqObj)
	if v, ok := reqObj["reward"]; ok && string(bytes.TrimSpace(v)) == `""` {
		// Empty would read as the default reward: leave it out for that.
		return nil, bad("reward", "reward must name a reward (configured: %s); leave it out for the default", strings.Join(slices.Sorted(maps.Keys(rs.Rewards)), ", "))
	}
	name := None
	if s, ok := reqObj["strategy"]; ok {
		if json.Unmarshal(s, &name) != nil {
			return nil, bad("strategy", "strategy must be a string")
		}
	} else if s, ok := routeObj["strategy"]; ok {
		if json.Unmarshal(s, &name) != nil {
			return nil, bad("strategy", "strategy must be a string")
		}
	}
	k, ok := lookup(name)
	if !ok {
		return nil, bad("strategy", "unknown strategy %q: use one of %s", fault.Clip(name, 64), strings.Join(Names(), ", "))
	}
	// A request that switches strategy keeps the route's common
	// parameters, not the other strategy's own.
	routeName := None
	if s, ok := routeObj["strategy"]; ok {
		_ = json.Unmarshal(s, &routeName)
	}
	merged := map[string]json.RawMessage{}
	for key, v := range routeObj {
		if commonKeys[key] || routeName == name {
			merged[key] = v
		}
	}
	for key, v := range reqObj {
		if old, ok := merged[key]; ok && key != "weights" {
			v = wire.MergeObjects(old, v)
		}
		merged[key] = v
	}
	for _, key := range slices.Sorted(maps.Keys(merged)) {
		if !commonKeys[key] && !k.known[key] {
			return nil, bad(key, "unknown parameter %q for strategy %s", fault.Clip(key, 64), name)
		}
	}
	// Nested objects are held to the same rules: a cache key in another
	// case or twice, or one cache does not have, is refused, not read as
	// another.
	for _, obj := range []map[string]json.RawMessage{routeObj, reqObj} {
		if v := bytes.TrimSpace(obj["cache"]); len(v) > 0 && v[0] == '{' {
			cache, err := wire.Object(v, prefix+".cache")
			if err != nil {
				return nil, err
			}
			for _, key := range slices.Sorted(maps.Keys(cache)) {
				if !cacheKeys[key] {
					return nil, bad("cache."+key, "unknown parameter %q for cache (it has mode, ttl_s and max_age_s)", fault.Clip(key, 64))
				}
			}
		}
	}
	routeWeights, err := Weights(routeObj["weights"], prefix+".weights")
	if err != nil {
		return nil, err
	}
	reqWeights, err := Weights(reqObj["weights"], prefix+".weights")
	if err != nil {
		return nil, err
	}
	var common Common
	strat := k.new()
	if len(merged) > 0 { // else both keep their zero values and defaults
		all, _ := json.Marshal(merged)
		if err := json.Unmarshal(all, &common); err != nil {
			return nil, typeErr(prefix, err)
		}
		if err := json.Unmarshal(all, strat); err != nil {
			return nil, typeErr(prefix, err)
		}
	}
	common.Strategy = name
	p := &Plan{Name: name, Strategy: strat, Common: common}
	// Weight layers stay apart so that a user's weights can go between the
	// request's and the route's.
	p.RouteWeights, p.RequestWeights = routeWeights, reqWeights
	// The route's weights are for the route's reward: a request that
	// switches reward leaves them out (they may name objectives the other
	// reward does not have), as a switched strategy leaves its parameters.
	routeReward := rs.Default
	if raw, ok := routeObj["reward"]; ok {
		_ = json.Unmarshal(raw, &routeReward)
	}
	if reward := cmp.Or(common.Reward, rs.Default); reward != routeReward {
		p.RouteWeights = nil
	}
	c := &Check{K: max(t.K, 1), Chat: t.Chat, Limits: rs.Limits, Caps: t.Caps, Backend: t.Backend, Common: &p.Common, TokenRewards: rs.TokenRewards,
		prefix: prefix, given: merged, asked: reqObj}
	if err := rs.checkCommon(c, p, k.reward, reqObj); err != nil {
		return nil, err
	}
	if err := strat.Check(c); err != nil {
		return nil, err
	}
	return p, nil
}

func (rs *Resolver) checkCommon(c *Check, p *Plan, use RewardUse, reqKeys map[string]json.RawMessage) error {
	cm := c.Common
	if err := c.NoZero("min_success"); err != nil {
		return err
	}
	if cm.MinSuccess == 0 {
		cm.MinSuccess = c.K
	}
	if cm.MinSuccess < c.K {
		return c.Bad("min_success", "min_success must be at least the request's n (%d)", c.K)
	}
	switch cm.OnRewardError {
	case "", "fail", "first":
	default:
		return c.Bad("on_reward_error", "on_reward_error must be fail or first")
	}
	if cm.LengthPenalty < 0 || math.IsNaN(cm.LengthPenalty) || math.IsInf(cm.LengthPenalty, 0) {
		return c.Bad("length_penalty", "length_penalty must be a finite number, not negative")
	}
	if cm.LengthFree < 0 {
		return c.Bad("length_free", "length_free must not be negative")
	}
	if err := cm.Cache.check(c, rs.Limits); err != nil {
		return err
	}
	if use == RewardNone {
		// The route's reward settings do not apply to a strategy that
		// scores nothing; a request that sets them asks for what cannot be
		// served.
		for _, key := range []string{"reward", "weights", "length_penalty", "length_free", "on_reward_error"} {
			if _, ok := reqKeys[key]; ok {
				return c.Bad(key, "strategy %s scores no answers, so %s does not apply", p.Name, key)
			}
		}
		p.RequestWeights, p.RouteWeights = nil, nil
		return nil
	}
	name := cm.Reward
	if name == "" {
		name = rs.Default
	}
	info, ok := rs.Rewards[name]
	switch {
	case !ok && name == "" && use == RewardOptional:
		p.RequestWeights, p.RouteWeights = nil, nil
		return nil
	case !ok && name == "":
		return c.Bad("reward", "several rewards are configured (%s) and none is called default: name one", strings.Join(slices.Sorted(maps.Keys(rs.Rewards)), ", "))
	case !ok && slices.Contains(rs.TokenRewards, name):
		return c.Bad("reward", "reward %q scores next tokens, not answers: strategy guided takes it in token_rewards (rewards of answers: %s)", name, strings.Join(slices.Sorted(maps.Keys(rs.Rewards)), ", "))
	case !ok:
		return c.Bad("reward", "unknown reward %q (configured: %s)", fault.Clip(name, 64), strings.Join(slices.Sorted(maps.Keys(rs.Rewards)), ", "))
	}
	p.RewardName, p.Objectives, p.RewardWeights = name, info.Objectives, info.Weights
	idx := map[string]bool{}
	for _, o := range info.Objectives {
		idx[o] = true
	}
	for _, layer := range []map[string]float64{p.RouteWeights, p.RequestWeights} {
		for _, o := range slices.Sorted(maps.Keys(layer)) {
			if !idx[o] {
				return c.Bad("weights", "reward %q has no objective %q (it has %s)", name, fault.Clip(o, 64), strings.Join(info.Objectives, ", "))
			}
			if v := layer[o]; math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > MaxWeight {
				return c.Bad("weights", "weight of %q must be a finite number of magnitude at most %g", o, MaxWeight)
			}
		}
	}
	c.Objectives = info.Objectives
	return nil
}

var cacheKeys = jsonKeys(reflect.TypeOf(CacheParams{}))

// Weights decodes a weights object (at is its path, for errors: a
// steering object's, a user's preferences): a number for each objective,
// each named once, in one letter case (null is no number).
func Weights(raw json.RawMessage, at string) (map[string]float64, error) {
	if raw == nil {
		return nil, nil
	}
	obj, err := wire.Object(raw, at)
	if err != nil {
		if v := bytes.TrimSpace(raw); len(v) > 0 && v[0] != '{' {
			return nil, fault.Invalid(at, "weights must be an object of numbers")
		}
		return nil, err
	}
	if obj == nil {
		return nil, nil
	}
	w := make(map[string]float64, len(obj))
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		var f float64
		if v := bytes.TrimSpace(obj[k]); len(v) == 0 || v[0] == 'n' || json.Unmarshal(v, &f) != nil {
			return nil, fault.Invalid(at+"."+fault.Clip(k, 64), "weight of %q must be a number", fault.Clip(k, 64))
		}
		w[k] = f
	}
	return w, nil
}

// MaxWeight bounds the magnitude of an objective weight, so that a utility
// stays finite whatever the scores.
const MaxWeight = 1e6

// typeErr names the parameter a decoding error is about (prefix names
// the steering object) and what it should have been.
func typeErr(prefix string, err error) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) {
		return fault.Invalid(prefix, "%v", err)
	}
	return fault.WrongType(strings.TrimSuffix(prefix+"."+te.Field, "."), te)
}
