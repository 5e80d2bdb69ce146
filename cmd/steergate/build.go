package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/ollama"
	oai "github.com/steergate/steergate/backend/openai"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/gateway"
	"github.com/steergate/steergate/gateway/openai"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/steering"
)

type app struct {
	router   *backend.Router
	server   *gateway.Server
	backends map[string]backend.Backend
	rewards  map[string]rm.Rewarder
	engine   *steering.Engine
	closers  []func() // in construction order; closed in reverse
}

// close releases what build acquired, in reverse order.
func (a *app) close() {
	for i := len(a.closers) - 1; i >= 0; i-- {
		a.closers[i]()
	}
}

// newBackend builds one configured backend, wrapped in its concurrency and
// timeout limits.
func newBackend(name string, b configs.Backend) (backend.Backend, error) {
	var be backend.Backend
	switch b.Type {
	case configs.TypeReference:
		be = reference.New(name, reference.Options{TokenDelay: b.TokenDelay, FirstTokenDelay: b.FirstTokenDelay, MaxTokens: b.MaxTokens})
	case configs.TypeOllama:
		c, err := ollama.New(name, b.URL, nil)
		if err != nil {
			return nil, err
		}
		// Capabilities are learned before requests arrive; a server that is
		// down now keeps the defaults and is probed by nothing else.
		pctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		if err := c.Probe(pctx); err != nil {
			slog.Warn("could not ask ollama for its version; assuming 0.12.11 or later", "backend", name, "err", err)
		}
		cancel()
		be = c
	case configs.TypeOpenAI:
		c, err := oai.New(name, configs.NormalizeURL(b.URL), b.APIKey, b.Flavour, b.MaxConcurrency)
		if err != nil {
			return nil, err
		}
		be = c
	default:
		return nil, fmt.Errorf("backend %s: unknown type %q", name, b.Type)
	}
	return backend.Limit(be, backend.LimitOptions{MaxConcurrency: b.MaxConcurrency, MaxQueue: b.MaxQueue,
		QueueTimeout: b.QueueTimeout, Timeout: b.Timeout}), nil
}

func build(ctx context.Context, cfg *configs.Config, log *slog.Logger) (*app, error) {
	backends := map[string]backend.Backend{}
	names := make([]string, 0, len(cfg.Backends))
	for n := range cfg.Backends {
		names = append(names, n)
	}
	sort.Strings(names)
	var discover []backend.Backend
	for _, n := range names {
		b, err := newBackend(n, cfg.Backends[n])
		if err != nil {
			return nil, err
		}
		backends[n] = b
		if cfg.Backends[n].Discover {
			discover = append(discover, b)
		}
	}
	a := &app{backends: backends}
	shared := newCache(cfg.Cache, log, &a.closers)
	rewards, err := buildRewards(cfg, backends, shared, &a.closers)
	if err != nil {
		a.close()
		return nil, err
	}
	a.rewards = rewards
	breakers := map[string]*backend.Breaker{}
	for _, n := range names {
		b := cfg.Backends[n]
		breakers[n] = backend.NewBreaker(n, b.BreakerFailures, b.BreakerCooldown)
	}
	member := func(name, target string) backend.Member {
		b := cfg.Backends[name]
		return backend.Member{Backend: backends[name], Target: target, Breaker: breakers[name], Retries: b.Retries, Backoff: b.Backoff}
	}
	router := backend.NewRouter()
	for _, m := range cfg.Models {
		target := m.Target
		if target == "" {
			target = m.Name
		}
		members := []backend.Member{member(m.Backend, target)}
		for _, f := range m.Fallbacks {
			ft := f.Target
			if ft == "" {
				ft = target
			}
			members = append(members, member(f.Backend, ft))
		}
		if err := router.Add(backend.Route{Name: m.Name, Backend: backend.NewPool(members...), Target: target}, m.Aliases...); err != nil {
			return nil, err
		}
	}
	startHealthChecks(ctx, cfg, backends, breakers, log)
	// Discovery failing is not fatal: the backend may come up later, and
	// /readyz reports it meanwhile.
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	if err := router.Discover(dctx, discover...); err != nil {
		log.Warn("model discovery failed; configured routes still serve", "err", err)
	}
	cancel()
	ready := func(ctx context.Context) error {
		if len(router.List()) == 0 {
			if err := router.Discover(ctx, discover...); err != nil {
				return err
			}
			if len(router.List()) == 0 {
				return fmt.Errorf("no models routable")
			}
		}
		return nil
	}
	routes := map[string]steering.Params{}
	for i, m := range cfg.Models {
		if m.Steering == nil {
			continue
		}
		raw, err := json.Marshal(m.Steering)
		if err != nil {
			return nil, fmt.Errorf("models[%d].steering: %w", i, err)
		}
		var p steering.Params
		if err := p.Decode(raw, fmt.Sprintf("models[%d].steering", i)); err != nil {
			return nil, err
		}
		if p.Reward != "" {
			if _, ok := rewards[p.Reward]; !ok {
				return nil, fmt.Errorf("models[%d].steering.reward: names reward %q, which is not defined under rewards", i, p.Reward)
			}
		}
		if rt, err := router.Resolve(m.Name); err == nil && p.PruneTokens > 0 && !rt.Backend.Caps().Continuation {
			return nil, fmt.Errorf("models[%d].steering.prune_tokens: backend %s cannot continue a partial answer, which pruning needs", i, m.Backend)
		}
		for _, name := range append([]string{m.Name}, m.Aliases...) {
			routes[name] = p
		}
	}
	rc := cfg.Cache.Responses
	engine := steering.NewEngine(rewards, routes, steering.DefaultReward(rewards), steering.Limits{MaxSamples: cfg.Server.MaxSamples}).
		WithResponseCache(steering.NewResponseCache(shared, rc.Enabled, rc.TTL, rc.MaxEntryBytes))
	s := cfg.Server
	srv := gateway.New(gateway.Options{
		Listen: s.Listen, RequestTimeout: s.RequestTimeout, MaxBodyBytes: s.MaxBodyBytes,
		MaxInflight: s.MaxInflight, MaxQueue: s.MaxQueue, QueueTimeout: s.QueueTimeout,
		ReadTimeout: s.ReadTimeout, IdleTimeout: s.IdleTimeout, ShutdownTimeout: s.ShutdownTimeout,
		Limits:       openai.Limits{MaxN: s.MaxN, MaxTokens: s.MaxTokens, MaxMessages: s.MaxMessages, MaxStop: 4, MaxTopLogprobs: 20},
		AccessSample: cfg.Log.AccessSample,
	}, router, engine, log, ready)
	a.router, a.server, a.engine = router, srv, engine
	return a, nil
}

// newCache returns the cache shared by responses and reward scores: Redis
// when configured (every replica sees the same entries), else memory.
func newCache(c configs.Cache, log *slog.Logger, closers *[]func()) cache.Cache {
	r := c.Redis
	if len(r.Addrs) == 0 {
		return cache.NewMemory(c.MemoryBytes)
	}
	rc := cache.NewRedis(cache.RedisOptions{Addrs: r.Addrs, MasterName: r.MasterName, Cluster: r.Cluster,
		Username: r.Username, Password: r.Password, DB: r.DB, Prefix: r.Prefix, DialTimeout: r.DialTimeout,
		ReadTimeout: r.ReadTimeout, WriteTimeout: r.WriteTimeout, PoolSize: r.PoolSize, MinIdle: r.MinIdle,
		Log: log.With("component", "redis")})
	*closers = append(*closers, func() { _ = rc.Close() })
	return rc
}

// startHealthChecks pings backends with a health_interval (listing their
// models) and feeds the outcome to their circuit breakers, so a dead
// backend is skipped before a request finds out and a revived one is
// tried again. The checks stop with ctx.
func startHealthChecks(ctx context.Context, cfg *configs.Config, backends map[string]backend.Backend, breakers map[string]*backend.Breaker, log *slog.Logger) {
	for name, b := range cfg.Backends {
		l, ok := backends[name].(backend.Lister)
		if b.HealthInterval <= 0 || !ok {
			continue
		}
		go func() {
			t := time.NewTicker(b.HealthInterval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				cctx, cancel := context.WithTimeout(ctx, min(b.HealthInterval, 5*time.Second))
				_, err := l.Models(cctx)
				cancel()
				if err != nil {
					log.Warn("backend health check failed", "backend", name, "err", err)
				}
				breakers[name].Record(err == nil)
			}
		}()
	}
}

// buildOffline loads a config and builds its backends and rewards for the
// offline commands (score, eval), which log only warnings.
func buildOffline(ctx context.Context, file string, stderr io.Writer) (*app, error) {
	cfg, err := configs.Load(file)
	if err != nil {
		return nil, err
	}
	return build(ctx, cfg, newLogger(configs.Log{Level: "warn", Format: "text"}, stderr))
}
