package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/ollama"
	"github.com/steergate/steergate/backend/openai"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/experiment"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/gateway"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/prefs"
	"github.com/steergate/steergate/rm/factory"
	"github.com/steergate/steergate/steering"
	"github.com/steergate/steergate/wire"
)

// mode is how far assemble goes.
type mode int

const (
	checkOnly mode = iota // validate everything that needs no connection and no model
	offline               // also load rewards and build the engine (score, eval)
	serving               // also probe backends, health checks, metrics and the server
)

// app is every component of a running gateway, and how to close them.
type app struct {
	cfg      *configs.Config
	metrics  *metrics.Metrics
	backends map[string]backend.Backend
	router   *backend.Router
	rewards  *factory.Set
	engine   *steering.Engine
	server   *gateway.Server
	closers  []func() // in construction order; closed in reverse
}

// close releases what assemble acquired, in reverse order. Safe after a
// failed assemble and more than once.
func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
	a.closers = nil
}

// assemble builds the gateway from cfg as far as m says. check-config and
// serve run the same validation: every route's steering is resolved here,
// by the engine's own resolver, against the rewards as the config
// describes them.
func assemble(cfg *configs.Config, log *slog.Logger, m mode) (a *app, err error) {
	a = &app{cfg: cfg}
	defer func() {
		if err != nil {
			a.close()
			a = nil
		}
	}()
	if m == serving {
		a.metrics = metrics.NewProcess()
	}
	a.backends = map[string]backend.Backend{}
	for _, n := range slices.Sorted(maps.Keys(cfg.Backends)) {
		b, err := newBackend(n, cfg.Backends[n], m != checkOnly, a.metrics, log)
		if err != nil {
			return a, fmt.Errorf("%s:backends.%s: %w", cfg.File, n, err)
		}
		a.backends[n] = b
		if c, ok := b.(interface{ Close() }); ok {
			a.closers = append(a.closers, c.Close)
		}
	}
	breakers := map[string]*backend.Breaker{}
	for _, n := range slices.Sorted(maps.Keys(cfg.Backends)) {
		b := cfg.Backends[n]
		breakers[n] = backend.NewBreaker(n, b.BreakerFailures, b.BreakerCooldown, nil, a.metrics)
	}
	if a.router, err = newRouter(cfg, a.backends, breakers); err != nil {
		return a, err
	}
	infos, err := factory.Describe(cfg)
	if err != nil {
		return a, err
	}
	seq := rewardInfos(infos)
	var tokens []string
	for _, n := range slices.Sorted(maps.Keys(infos)) {
		if _, ok := seq[n]; !ok {
			tokens = append(tokens, n)
		}
	}
	resolver := steering.Resolver{Rewards: seq, Default: steering.DefaultReward(slices.Sorted(maps.Keys(seq))), Limits: limits(cfg), TokenRewards: tokens}
	routes, err := checkRoutes(cfg, a.router, &resolver)
	if err != nil {
		return a, err
	}
	exps, err := checkExperiments(cfg, a.router, &resolver, routes)
	if err != nil {
		return a, err
	}
	if m == checkOnly {
		return a, nil
	}
	shared := newCache(cfg.Cache, log, a.metrics)
	if c, ok := shared.(*cache.Redis); ok {
		a.closers = append(a.closers, func() { _ = c.Close() })
	}
	a.rewards, err = factory.Build(cfg, infos, factory.Options{Backends: a.backends, Scores: shared, Metrics: a.metrics, Log: log})
	if err != nil {
		return a, fmt.Errorf("%s:%w", cfg.File, err)
	}
	a.closers = append(a.closers, a.rewards.Close)
	rc := cfg.Cache.Responses
	var responses *steering.ResponseCache
	if m == serving {
		responses = steering.NewResponseCache(shared, rc.Enabled, rc.TTL, rc.MaxEntryBytes, a.metrics)
	}
	a.engine = steering.NewEngine(steering.Options{Rewards: a.rewards.Rewarders, Infos: resolver.Rewards, Default: resolver.Default,
		Routes: routes, Limits: resolver.Limits, Responses: responses, Metrics: a.metrics, Tokens: a.rewards.Tokens})
	if m == offline {
		return a, nil
	}
	var probes []backend.Probe
	for _, n := range slices.Sorted(maps.Keys(cfg.Backends)) {
		l, ok := a.backends[n].(backend.Lister)
		if b := cfg.Backends[n]; b.HealthInterval > 0 && ok {
			probes = append(probes, backend.Probe{Name: n, Backend: l, Breaker: breakers[n], Interval: b.HealthInterval})
		}
	}
	health := backend.StartHealth(probes, log)
	a.closers = append(a.closers, health.Close)
	var discover []backend.Backend
	for _, n := range slices.Sorted(maps.Keys(cfg.Backends)) {
		if cfg.Backends[n].Discover {
			discover = append(discover, a.backends[n])
		}
	}
	// Discovery failing is not fatal: the backend may come up later, and
	// /readyz reports it meanwhile.
	dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if err := a.router.Discover(dctx, discover...); err != nil {
		log.Warn("model discovery failed; configured routes still serve", "err", err)
	}
	cancel()
	s := cfg.Server
	a.server = gateway.New(gateway.Options{
		Listen: s.Listen, RequestTimeout: s.RequestTimeout, MaxBodyBytes: s.MaxBodyBytes, MaxHeaderBytes: s.MaxHeaderBytes,
		MaxInflight: s.MaxInflight, MaxQueue: s.MaxQueue, QueueTimeout: s.QueueTimeout,
		ReadTimeout: s.ReadTimeout, IdleTimeout: s.IdleTimeout, DrainDelay: s.DrainDelay, ShutdownTimeout: s.ShutdownTimeout,
		Limits:       wire.Limits{MaxN: s.MaxN, MaxTokens: s.MaxTokens, MaxMessages: s.MaxMessages, MaxStop: 4, MaxTopLogprobs: 20},
		AccessSample: cfg.Log.AccessSample, Metrics: a.metrics,
		Keys: keys(cfg, shared), Prefs: preferences(cfg, shared, infos, resolver.Default), Experiments: experiments(cfg, shared, exps), Rewards: rewardViews(resolver.Rewards),
	}, a.router, a.engine, log, func(ctx context.Context) error { return a.router.Ready(ctx, discover...) })
	return a, nil
}

// keys are the configured API keys, and Redis's when auth.redis is set.
func keys(cfg *configs.Config, shared cache.Cache) *prefs.Keys {
	byHash := map[string]prefs.Identity{}
	for _, k := range cfg.Auth.Keys {
		role := k.Role
		if role == "" {
			role = prefs.RoleUser
		}
		byHash[strings.ToLower(k.Hash)] = prefs.Identity{Name: k.Name, Tenant: k.Tenant, Role: role}
	}
	var lookup prefs.KeyLookup
	if r, ok := shared.(*cache.Redis); ok && cfg.Auth.Redis {
		lookup = prefs.NewRedis(r.Client(), cfg.Cache.Redis.Prefix)
	}
	return prefs.NewKeys(byHash, lookup)
}

// preferences keeps users' weights and the response log in Redis when the
// cache is there (every replica sees them), else in bounded memory.
func preferences(cfg *configs.Config, shared cache.Cache, infos map[string]factory.Info, def string) *prefs.Service {
	p := cfg.Preferences
	var store prefs.Store = prefs.NewMemory(p.MemoryUsers, p.MemoryResponses)
	if r, ok := shared.(*cache.Redis); ok {
		store = prefs.NewRedis(r.Client(), cfg.Cache.Redis.Prefix)
	}
	return &prefs.Service{Store: store, LogTTL: p.LogTTL, DefaultReward: def,
		Learning: prefs.Learning{Rate: p.LearningRate, L2: p.L2, Bound: p.MaxWeight},
		Rewards: func(name string) ([]string, bool, bool) {
			info, ok := infos[name]
			if !ok || info.Objectives == nil {
				return nil, false, false
			}
			return info.Objectives, factory.Drifts(cfg.Rewards[name]), true
		}}
}

// rewardViews lists the sequence rewards for the dashboard, by name.
func rewardViews(infos map[string]steering.RewardInfo) []gateway.RewardView {
	var out []gateway.RewardView
	for _, n := range slices.Sorted(maps.Keys(infos)) {
		out = append(out, gateway.RewardView{Name: n, Objectives: infos[n].Objectives, Weights: infos[n].Weights})
	}
	return out
}

func limits(cfg *configs.Config) steering.Limits {
	return steering.Limits{MaxSamples: cfg.Server.MaxSamples, MaxCacheTTL: int(cfg.Cache.Responses.MaxTTL / time.Second), MaxTokens: cfg.Server.MaxTokens}
}

func rewardInfos(infos map[string]factory.Info) map[string]steering.RewardInfo {
	out := make(map[string]steering.RewardInfo, len(infos))
	for n, i := range infos {
		if i.Objectives == nil {
			continue // token-level rewards are not sequence rewards
		}
		out[n] = steering.RewardInfo{Objectives: i.Objectives, Weights: steering.DefaultWeights(i.Objectives, i.Weights)}
	}
	return out
}

// checkRoutes resolves every route's steering defaults as a request
// without its own steering would be, and returns them by public name.
func checkRoutes(cfg *configs.Config, router *backend.Router, rs *steering.Resolver) (map[string]json.RawMessage, error) {
	routes := map[string]json.RawMessage{}
	var errs configs.Errors
	for i, m := range cfg.Models {
		if m.Steering == nil {
			continue
		}
		raw, err := json.Marshal(m.Steering)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s:models[%d].steering: %v", cfg.File, i, err))
			continue
		}
		rt, err := router.Resolve(m.Name)
		if err != nil {
			continue // reported by config validation
		}
		key := fmt.Sprintf("models[%d].steering", i)
		if _, err := rs.Resolve(raw, nil, steering.Target{Backend: m.Backend, Caps: rt.Backend.Caps(), K: 1, Chat: true}, key); err != nil {
			errs = append(errs, fmt.Sprintf("%s:%s: %v", cfg.File, paramOr(err, key), err))
			continue
		}
		for _, name := range append([]string{m.Name}, m.Aliases...) {
			routes[name] = raw
		}
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return routes, nil
}

// checkExperiments resolves every arm's steering over every route its
// experiment covers, as a request enrolled in it would be (the arm's
// steering in the request's place), and checks the outcome reward scores
// whole answers.
func checkExperiments(cfg *configs.Config, router *backend.Router, rs *steering.Resolver, routes map[string]json.RawMessage) ([]*experiment.Experiment, error) {
	var errs configs.Errors
	var out []*experiment.Experiment
	for i, ce := range cfg.Experiments {
		at := fmt.Sprintf("experiments[%d]", i)
		e := &experiment.Experiment{Name: ce.Name, Models: map[string]bool{}, Unit: ce.Unit, Control: ce.Control, Outcome: ce.Outcome.Type,
			Reward: ce.Outcome.Reward, Share: ce.Outcome.Share, Running: ce.State == "running", Thompson: ce.Allocation == "thompson",
			MinShare: ce.MinShare, Alpha: ce.Alpha, MixingSD: ce.MixingSD}
		if ce.Outcome.Type == "reward" {
			if _, ok := rs.Rewards[ce.Outcome.Reward]; !ok {
				errs = append(errs, fmt.Sprintf("%s:%s.outcome.reward: %q does not score whole answers (a token-level reward cannot evaluate an answer)", cfg.File, at, ce.Outcome.Reward))
			}
		}
		for _, m := range ce.Models {
			e.Models[m] = true
		}
		for j, arm := range ce.Arms {
			raw, err := json.Marshal(arm.Steering)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s:%s.arms[%d].steering: %v", cfg.File, at, j, err))
				continue
			}
			if arm.Steering == nil {
				raw = nil
			}
			e.Arms = append(e.Arms, experiment.Arm{Name: arm.Name, Weight: arm.Weight, Steering: raw})
			key := fmt.Sprintf("%s.arms[%d].steering", at, j)
			for _, m := range ce.Models {
				rt, err := router.Resolve(m)
				if err != nil {
					continue // reported by config validation
				}
				if _, err := rs.Resolve(routes[m], raw, steering.Target{Backend: rt.Backend.Name(), Caps: rt.Backend.Caps(), K: 1, Chat: true}, key); err != nil {
					errs = append(errs, fmt.Sprintf("%s:%s: %v (on model %s)", cfg.File, paramOr(err, key), err, m))
				}
			}
		}
		out = append(out, e)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return out, nil
}

// experiments keep their totals in Redis when the cache is there (every
// replica adds to the same totals), else in memory.
func experiments(cfg *configs.Config, shared cache.Cache, exps []*experiment.Experiment) *experiment.Set {
	if len(exps) == 0 {
		return nil
	}
	var store experiment.Store = experiment.NewMemory()
	if r, ok := shared.(*cache.Redis); ok {
		store = experiment.NewRedis(r.Client(), cfg.Cache.Redis.Prefix)
	}
	return experiment.NewSet(exps, store)
}

func paramOr(err error, def string) string {
	if p := fault.Param(err); p != "" {
		return p
	}
	return def
}

// newBackend builds one configured backend, wrapped in its concurrency and
// timeout limits. probe asks an Ollama for its version (a connection).
func newBackend(name string, b configs.Backend, probe bool, m *metrics.Metrics, log *slog.Logger) (backend.Backend, error) {
	var be backend.Backend
	switch b.Type {
	case configs.TypeReference:
		be = reference.New(name, reference.Options{TokenDelay: b.TokenDelay, FirstTokenDelay: b.FirstTokenDelay, MaxTokens: b.MaxTokens})
	case configs.TypeOllama:
		c, err := ollama.New(name, b.URL, nil, b.MaxResponseBytes)
		if err != nil {
			return nil, err
		}
		if probe {
			// Capabilities are learned before requests arrive; a server that
			// is down now keeps the defaults.
			pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			if err := c.Probe(pctx); err != nil {
				log.Warn("could not ask ollama for its version; assuming 0.12.11 or later", "backend", name, "err", err)
			}
			cancel()
		}
		be = c
	case configs.TypeOpenAI:
		c, err := openai.New(name, configs.NormalizeURL(b.URL), b.APIKey, b.Flavour, b.MaxConcurrency, b.MaxResponseBytes)
		if err != nil {
			return nil, err
		}
		be = c
	default:
		return nil, fmt.Errorf("unknown type %q", b.Type)
	}
	return backend.Limit(be, backend.LimitOptions{MaxConcurrency: b.MaxConcurrency, MaxQueue: *b.MaxQueue,
		QueueTimeout: b.QueueTimeout, Timeout: b.Timeout, Metrics: m}), nil
}

// newRouter routes every configured model to a pool of its backend and
// fallbacks.
func newRouter(cfg *configs.Config, backends map[string]backend.Backend, breakers map[string]*backend.Breaker) (*backend.Router, error) {
	member := func(name, target string) backend.Member {
		b := cfg.Backends[name]
		return backend.Member{Backend: backends[name], Target: target, Breaker: breakers[name], Retries: b.Retries, Backoff: b.Backoff}
	}
	router := backend.NewRouter()
	for i, m := range cfg.Models {
		members := []backend.Member{member(m.Backend, m.Target)}
		for _, f := range m.Fallbacks {
			members = append(members, member(f.Backend, f.Target))
		}
		if err := router.Add(backend.Route{Name: m.Name, Backend: backend.NewPool(members...), Target: m.Target}, m.Aliases...); err != nil {
			return nil, fmt.Errorf("%s:models[%d]: %w", cfg.File, i, err)
		}
	}
	return router, nil
}

// newCache returns the cache shared by responses and reward scores: Redis
// when configured (every replica sees the same entries), else memory.
func newCache(c configs.Cache, log *slog.Logger, m *metrics.Metrics) cache.Cache {
	r := c.Redis
	if len(r.Addrs) == 0 {
		return cache.NewMemory(c.MemoryBytes)
	}
	return cache.NewRedis(cache.RedisOptions{Addrs: r.Addrs, MasterName: r.MasterName, Cluster: r.Cluster,
		Username: r.Username, Password: r.Password, DB: r.DB, Prefix: r.Prefix, DialTimeout: r.DialTimeout,
		ReadTimeout: r.ReadTimeout, WriteTimeout: r.WriteTimeout, ReadSlack: r.ReadSlack, WriteQueue: r.WriteQueue,
		PoolSize: r.PoolSize, MinIdle: r.MinIdle, Log: log.With("component", "redis"), Metrics: m})
}
