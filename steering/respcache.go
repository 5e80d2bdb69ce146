package steering

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/rm"
	"golang.org/x/sync/singleflight"
)

// Cache modes of a request's steering.cache.mode.
const (
	CacheAuto      = ""           // only reproducible requests (a seed, or temperature 0)
	CacheOn        = "on"         // read and write
	CacheOff       = "off"        // neither
	CacheReadOnly  = "read_only"  // serve hits, store nothing
	CacheWriteOnly = "write_only" // always compute, then store
)

// CacheParams is a request's steering.cache.
type CacheParams struct {
	Mode    string `json:"mode,omitempty"`
	TTLS    int    `json:"ttl_s,omitempty"`     // how long the answer is kept
	MaxAgeS int    `json:"max_age_s,omitempty"` // the oldest answer this request accepts
}

// Cache status values, as the X-Cache header reports them.
const (
	CacheHit  = "hit"
	CacheMiss = "miss"
)

// entryFormat versions cached answers; a change makes old entries misses.
const entryFormat = 1

// ResponseCache stores whole answers, keyed by everything they depend on
// and scoped by tenant; identical concurrent misses compute once.
type ResponseCache struct {
	c        cache.Cache
	ttl      time.Duration
	maxBytes int
	enabled  bool // the config's default for requests that do not say
	group    singleflight.Group
}

// NewResponseCache returns a response cache over c. enabled is whether
// reproducible requests are cached when they do not say.
func NewResponseCache(c cache.Cache, enabled bool, ttl time.Duration, maxEntryBytes int) *ResponseCache {
	return &ResponseCache{c: c, enabled: enabled, ttl: ttl, maxBytes: maxEntryBytes}
}

type entry struct {
	Format  int                 `json:"f"`
	Created int64               `json:"t"`
	Gen     *backend.Generation `json:"g"`
	Info    *Info               `json:"i,omitempty"`
}

// reproducible requests give the same answer every time, so caching them
// changes nothing a client could notice.
func reproducible(r *backend.Request) bool {
	return r.Seed != nil || (r.Temperature != nil && *r.Temperature == 0)
}

// policy decides whether a call reads and writes the cache.
func (rc *ResponseCache) policy(p *Params, r *backend.Request) (read, write bool) {
	if rc == nil {
		return false, false
	}
	mode := CacheAuto
	if p.Cache != nil {
		mode = p.Cache.Mode
	}
	switch mode {
	case CacheOn:
		return true, true
	case CacheOff:
		return false, false
	case CacheReadOnly:
		return true, false
	case CacheWriteOnly:
		return false, true
	}
	ok := rc.enabled && reproducible(r)
	return ok, ok
}

// key hashes the canonical request: tenant, route, backend and its model,
// the whole generation request (extra fields included), the effective
// steering parameters (weights included) and the reward's identity.
func key(c *Call, p *Params, reward rm.Rewarder) string {
	r := c.Request
	pp := *p
	pp.Cache = nil // how to cache is not what is cached
	var rid string
	if reward != nil {
		rid = rm.IDOf(reward)
	}
	b, _ := json.Marshal(struct {
		F       int
		Tenant  string
		Route   string
		Backend string
		Target  string
		Req     backend.Request // Extra is a map: encoding/json sorts its keys
		Params  Params
		Reward  string
	}{entryFormat, c.Tenant, c.Route.Name, c.Route.Backend.Name(), c.Route.Target, *r, pp, rid})
	h := sha256.Sum256(b)
	return "resp:" + hex.EncodeToString(h[:])
}

// get returns a fresh cached outcome, if any.
func (rc *ResponseCache) get(ctx context.Context, k string, maxAge time.Duration) *Outcome {
	b, ok, err := rc.c.Get(ctx, k)
	if err != nil || !ok {
		metrics.Cache.WithLabelValues("response", "get", "miss").Inc()
		return nil
	}
	var e entry
	if json.Unmarshal(b, &e) != nil || e.Format != entryFormat || e.Gen == nil {
		return nil
	}
	if maxAge > 0 && time.Since(time.Unix(e.Created, 0)) > maxAge {
		metrics.Cache.WithLabelValues("response", "get", "miss").Inc()
		return nil
	}
	metrics.Cache.WithLabelValues("response", "get", "hit").Inc()
	return &Outcome{Generation: e.Gen, Info: e.Info, Cache: CacheHit}
}

func (rc *ResponseCache) put(ctx context.Context, k string, o *Outcome, ttl time.Duration) {
	b, err := json.Marshal(entry{Format: entryFormat, Created: time.Now().Unix(), Gen: o.Generation, Info: o.Info})
	if err != nil || len(b) > rc.maxBytes {
		return
	}
	_ = rc.c.Set(ctx, k, b, ttl)
}

// replay sends a cached answer to a streaming client: each choice as one
// content delta and a finishing delta.
func replay(o *Outcome, emit func(backend.Delta) error) error {
	if emit == nil {
		return nil
	}
	for _, c := range o.Generation.Choices {
		if err := emit(backend.Delta{Index: c.Index, Text: c.Text, Logprobs: c.Logprobs}); err != nil {
			return err
		}
		if err := emit(backend.Delta{Index: c.Index, FinishReason: c.FinishReason}); err != nil {
			return err
		}
	}
	return nil
}

// through runs compute behind the cache as the policy allows.
func (rc *ResponseCache) through(ctx context.Context, c *Call, p *Params, reward rm.Rewarder, emit func(backend.Delta) error,
	compute func(emit func(backend.Delta) error) (*Outcome, error)) (*Outcome, error) {
	read, write := rc.policy(p, c.Request)
	if !read && !write {
		return compute(emit)
	}
	k := key(c, p, reward)
	ttl, maxAge := rc.ttl, time.Duration(0)
	if p.Cache != nil {
		if p.Cache.TTLS > 0 {
			ttl = time.Duration(p.Cache.TTLS) * time.Second
		}
		maxAge = time.Duration(p.Cache.MaxAgeS) * time.Second
	}
	announce := func(status string) {
		if c.CacheStatus != nil {
			c.CacheStatus(status)
		}
	}
	if read {
		if o := rc.get(ctx, k, maxAge); o != nil {
			announce(CacheHit)
			return o, replay(o, emit)
		}
	}
	announce(CacheMiss)
	run := func(emit func(backend.Delta) error) (*Outcome, error) {
		o, err := compute(emit)
		if err == nil && write {
			rc.put(ctx, k, o, ttl)
		}
		if o != nil {
			o.Cache = CacheMiss
		}
		return o, err
	}
	if !read {
		return run(emit)
	}
	// Identical concurrent misses compute once: the first caller computes
	// (streaming to its own client), the others wait and replay.
	leader := false
	v, err, _ := rc.group.Do(k, func() (any, error) {
		leader = true
		return run(emit)
	})
	if leader {
		o, _ := v.(*Outcome)
		return o, err
	}
	if err != nil {
		if errors.Is(err, context.Canceled) && ctx.Err() == nil {
			return run(emit) // the leader's client left; this one has not
		}
		return nil, err
	}
	o := *v.(*Outcome)
	o.Cache = CacheMiss
	return &o, replay(&o, emit)
}
