package steering

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"log/slog"
	"runtime/debug"
	"strconv"
	"sync"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/wire"
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
	Mode string `json:"mode,omitempty"`
	TTLS int64  `json:"ttl_s,omitempty"` // how long the answer is kept
	// MaxAgeS is the oldest answer this request accepts: none older than
	// that many seconds, so 0 accepts no stored answer (nil: any age).
	MaxAgeS *int64 `json:"max_age_s,omitempty"`
}

func (cp *CacheParams) check(c *Check, l Limits) error {
	if cp == nil {
		return nil
	}
	switch cp.Mode {
	case CacheAuto, CacheOn, CacheOff, CacheReadOnly, CacheWriteOnly:
	default:
		return c.Bad("cache.mode", "cache mode must be on, off, read_only or write_only")
	}
	if cp.TTLS < 0 || l.MaxCacheTTL > 0 && cp.TTLS > int64(l.MaxCacheTTL) {
		return c.Bad("cache.ttl_s", "ttl_s must be between 1 and %d seconds (cache.responses.max_ttl)", l.MaxCacheTTL)
	}
	if v, ok := c.given["cache"]; ok && isZero(wire.Value(v, "ttl_s")) {
		return c.Bad("cache.ttl_s", "ttl_s must not be 0: leave it out for cache.responses.ttl")
	}
	if cp.MaxAgeS != nil && (*cp.MaxAgeS < 0 || *cp.MaxAgeS > maxAgeBound) {
		return c.Bad("cache.max_age_s", "max_age_s must be between 0 and %d", int64(maxAgeBound))
	}
	return nil
}

// maxAgeBound keeps max_age_s far from overflowing a time.Duration.
const maxAgeBound = 100 * 365 * 24 * 3600

// Cache status values, as the X-Cache header reports them.
const (
	CacheHit  = "hit"
	CacheMiss = "miss"
)

// entryFormat versions cached answers; a change makes old entries misses.
const entryFormat = 4

// ResponseCache stores whole answers, keyed by everything they depend on
// and scoped by tenant. Identical concurrent misses compute once.
type ResponseCache struct {
	c        cache.Cache
	ttl      time.Duration
	maxBytes int
	enabled  bool // the config's default for requests that do not say
	metrics  *metrics.Metrics
	mu       sync.Mutex
	flights  map[string]*flight
	onJoin   func() // tests: told each time a caller joins a flight
}

// NewResponseCache returns a response cache over c. enabled is whether
// reproducible requests are cached when they do not say.
func NewResponseCache(c cache.Cache, enabled bool, ttl time.Duration, maxEntryBytes int, m *metrics.Metrics) *ResponseCache {
	return &ResponseCache{c: c, enabled: enabled, ttl: ttl, maxBytes: maxEntryBytes, metrics: m, flights: map[string]*flight{}}
}

// entry is a cached answer. A hit checks it is JSON and reads it with a
// scan of its top-level members (wire.EachMember), not a decode: the answer is decoded only for a
// caller that needs it as a Generation, and the encoded body goes out as
// it is.
type entry struct {
	Format   int             `json:"f"`
	Created  int64           `json:"t"`
	Strategy string          `json:"s,omitempty"` // the report's, for the response headers
	Arm      string          `json:"a,omitempty"`
	Gen      json.RawMessage `json:"g"`
	Info     json.RawMessage `json:"i,omitempty"` // the report, encoded once
	Body     json.RawMessage `json:"b,omitempty"` // Call.Encode's bytes, when it had one
}

// reproducible requests give the same answer every time, so caching them
// changes nothing a client could notice.
func reproducible(r *backend.Request) bool {
	return r.Seed != nil || (r.Temperature != nil && *r.Temperature == 0)
}

// policy decides whether a call reads and writes the cache.
func (rc *ResponseCache) policy(p *Plan, r *backend.Request) (read, write bool) {
	if rc == nil {
		return false, false
	}
	mode := CacheAuto
	if p.Common.Cache != nil {
		mode = p.Common.Cache.Mode
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
	if d, own := p.Strategy.(ownDraws); own && r.Seed == nil && d.drawsOwn() {
		ok = false // at a temperature of its own, unseeded: no two answers alike
	}
	return ok, ok
}

// ownDraws is a strategy that may sample at a temperature of its own,
// whatever the request's: unseeded, its answer is then not reproducible.
type ownDraws interface{ drawsOwn() bool }

// key hashes the canonical request: tenant, route, backend and its model,
// the whole generation request (extra fields included), the strategy with
// its resolved parameters, the effective weights and the reward's identity.
func key(c *Call, p *Plan, w map[string]float64, rewardID string) string {
	common := p.Common
	common.Cache = nil // how to cache is not what is cached
	common.Weights = nil
	if c.Body != nil {
		if k, ok := bodyKey(c, p, common, w, rewardID); ok {
			return k
		}
	}
	b, _ := json.Marshal(struct {
		F        int
		Tenant   string
		User     string
		Route    string
		Backend  string
		Target   string
		Req      backend.Request // maps encode with sorted keys
		Strategy string
		Params   any
		Common   Common
		Weights  map[string]float64
		Reward   string
		Arm      [2]string
	}{entryFormat, c.Tenant, c.Request.User, c.Route.Name, c.Route.Backend.Name(), c.Route.Target, *c.Request,
		p.Name, p.Strategy, common, w, rewardID, [2]string{c.Experiment, c.Arm}})
	h := sha256.Sum256(b)
	return "resp:" + hex.EncodeToString(h[:])
}

// bodyKey hashes the client's bytes instead of the decoded request: every
// member but how to answer (stream, stream_options) and the steering
// object (whose meaning is the plan's, hashed too), with the route, the
// backend and its model, and the tenant.
func bodyKey(c *Call, p *Plan, common Common, w map[string]float64, rewardID string) (string, bool) {
	plan, err := json.Marshal(struct {
		Strategy string
		Params   any
		Common   Common
		Weights  map[string]float64
		Reward   string
	}{p.Name, p.Strategy, common, w, rewardID})
	if err != nil {
		return "", false
	}
	h := sha256.New()
	for _, s := range []string{strconv.Itoa(entryFormat), c.Tenant, c.Route.Name, c.Route.Backend.Name(), c.Route.Target, c.Experiment, c.Arm} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	h.Write(plan)
	err = wire.EachMember(c.Body, func(m wire.Member) error {
		switch string(m.Key) {
		case "stream", "stream_options", "steering":
			return nil
		}
		h.Write([]byte{0})
		h.Write(c.Body[m.Start:m.End])
		return nil
	})
	if err != nil {
		return "", false
	}
	return "resp:" + hex.EncodeToString(h.Sum(nil)), true
}

// get returns a fresh cached outcome, if any; decode says whether the
// caller needs the answer as a Generation even when its bytes are stored.
func (rc *ResponseCache) get(ctx context.Context, k string, maxAge time.Duration, decode bool) *Outcome {
	b, ok, err := rc.c.Get(ctx, k)
	if err != nil || !ok {
		rc.metrics.Cache("response", "get", "miss")
		return nil
	}
	o := readEntry(b, maxAge, decode)
	if o == nil {
		rc.metrics.Cache("response", "get", "miss")
		return nil
	}
	rc.metrics.Cache("response", "get", "hit")
	return o
}

// readEntry is a stored entry as served again, or nil when it is of
// another format, older than maxAge (a negative maxAge takes any age) or
// unreadable. No backend spent anything on a
// hit, so its usage is zero; the steering report keeps what the original
// computation spent, marked cached, and is served as stored.
func readEntry(b []byte, maxAge time.Duration, decode bool) *Outcome {
	if !wire.Valid(b) { // the body goes out as stored: never a damaged one
		return nil
	}
	var e entry
	err := wire.EachMember(b, func(m wire.Member) (err error) {
		switch string(m.Key) {
		case "f":
			e.Format, err = strconv.Atoi(string(m.Value))
		case "t":
			e.Created, err = strconv.ParseInt(string(m.Value), 10, 64)
		case "s":
			err = json.Unmarshal(m.Value, &e.Strategy)
		case "a":
			err = json.Unmarshal(m.Value, &e.Arm)
		case "g":
			e.Gen = m.Value
		case "i":
			e.Info = m.Value
		case "b":
			e.Body = m.Value
		}
		return err
	})
	if err != nil {
		return nil
	}
	if e.Format != entryFormat || len(e.Gen) == 0 || maxAge >= 0 && time.Since(time.Unix(e.Created, 0)) > maxAge {
		return nil
	}
	o := &Outcome{Cache: CacheHit}
	if len(e.Info) > 0 {
		o.Info = &Info{Strategy: e.Strategy, Arm: e.Arm, Cached: true}
		o.Report = e.Info
	}
	if len(e.Body) > 0 && !decode {
		o.Encoded = e.Body
		return o
	}
	var g backend.Generation
	if json.Unmarshal(e.Gen, &g) != nil {
		return nil
	}
	g.Usage, g.UsageExtra = backend.Usage{}, nil // its details too: nothing was spent
	o.Generation = &g
	return o
}

func (rc *ResponseCache) put(ctx context.Context, c *Call, k string, o *Outcome, ttl time.Duration) {
	e := entry{Format: entryFormat, Created: time.Now().Unix()}
	if o.Info != nil {
		served := *o.Info
		served.Cached = true // as every hit will serve it
		var err error
		if e.Info, err = json.Marshal(served); err != nil {
			return
		}
		e.Strategy, e.Arm = served.Strategy, served.Arm
	}
	var err error
	if e.Gen, err = json.Marshal(o.Generation); err != nil {
		return
	}
	if c.Encode != nil {
		g := *o.Generation
		g.Usage, g.UsageExtra = backend.Usage{}, nil // as every hit will serve it
		e.Body = c.Encode(&g, e.Info)
	}
	b, err := json.Marshal(e)
	if err != nil || len(b) > rc.maxBytes {
		return
	}
	if err := rc.c.Set(ctx, k, b, ttl); err == nil {
		rc.metrics.Cache("response", "set", "ok")
	} else {
		rc.metrics.Cache("response", "set", "error")
	}
}

// flight is one computation shared by identical concurrent misses. It runs
// under its own context, cancelled only when every waiter has left, so one
// client hanging up never fails another.
type flight struct {
	done    chan struct{}
	out     *Outcome
	err     error
	waiters int
	cancel  context.CancelFunc
	// emit is the first caller's, while it is there to stream to: nil
	// once it has left (or for a caller that does not stream), so that
	// nothing is emitted to a client whose stream is over.
	emitMu sync.Mutex
	emit   func(backend.Delta) error
}

// share emits d to the first caller while it is there; a failed emit
// means it left, and the answer is still wanted by the others.
func (f *flight) share(d backend.Delta) error {
	f.emitMu.Lock()
	defer f.emitMu.Unlock()
	if f.emit != nil && f.emit(d) != nil {
		f.emit = nil
	}
	return nil
}

// leave ends the streaming to the first caller: after it returns, share
// emits nothing.
func (f *flight) leave() {
	f.emitMu.Lock()
	f.emit = nil
	f.emitMu.Unlock()
}

// through runs compute behind the cache as the policy allows. rewardID
// names the reward's model and version ("" for none).
func (rc *ResponseCache) through(ctx context.Context, c *Call, p *Plan, w map[string]float64, rewardID string, emit func(backend.Delta) error,
	compute func(ctx context.Context, emit func(backend.Delta) error) (*Outcome, error)) (*Outcome, error) {
	read, write := rc.policy(p, c.Request)
	if !read && !write {
		return compute(ctx, emit)
	}
	k := key(c, p, w, rewardID)
	ttl, maxAge := rc.ttl, time.Duration(-1) // any age
	if cp := p.Common.Cache; cp != nil {
		if cp.TTLS > 0 {
			ttl = time.Duration(cp.TTLS) * time.Second
		}
		if cp.MaxAgeS != nil {
			maxAge = time.Duration(*cp.MaxAgeS) * time.Second
		}
	}
	announce := func(status string) {
		if c.CacheStatus != nil {
			c.CacheStatus(status)
		}
	}
	if read {
		if o := rc.get(ctx, k, maxAge, emit != nil || c.Encode == nil || c.Experiment != ""); o != nil {
			announce(CacheHit)
			return o, emitAnswer(emit, o.Generation)
		}
	}
	store := func(o *Outcome, err error) (*Outcome, error) {
		if err == nil && write && !degraded(ctx, o) {
			rc.put(context.WithoutCancel(ctx), c, k, o, ttl)
		}
		if o != nil {
			o.Cache = CacheMiss
		}
		return o, err
	}
	if !read {
		announce(CacheMiss)
		return store(compute(ctx, emit))
	}
	// Identical concurrent misses compute once: the first caller's
	// computation streams to its own client while the others wait and
	// replay the answer.
	rc.mu.Lock()
	f, joined := rc.flights[k]
	// One that joins a computation spends nothing: a hit, as one that
	// comes after it.
	if joined {
		announce(CacheHit)
	} else {
		announce(CacheMiss)
	}
	if !joined {
		fctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{done: make(chan struct{}), cancel: cancel, emit: emit}
		rc.flights[k] = f
		go func() {
			defer cancel()
			func() {
				// This goroutine is no request's own: a panic here must
				// fail the flight's callers, not end the process.
				defer func() {
					if p := recover(); p != nil {
						rc.metrics.Panic()
						slog.Error("panic computing a shared answer", "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
						f.out, f.err = nil, fault.New(fault.ErrInternal, "", "internal error")
					}
				}()
				// A first caller that does not stream is served a whole
				// answer, as it would be without the cache (a stream is
				// rebuilt from its chunks, and loses what they do not carry).
				var share func(backend.Delta) error
				if emit != nil {
					share = f.share
				}
				f.out, f.err = store(compute(fctx, share))
			}()
			rc.mu.Lock()
			if rc.flights[k] == f {
				delete(rc.flights, k)
			}
			rc.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	rc.mu.Unlock()
	if rc.onJoin != nil {
		rc.onJoin()
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		if !joined {
			f.leave() // its stream ends when this returns
		}
		rc.mu.Lock()
		f.waiters--
		if f.waiters == 0 {
			// Nobody wants this answer now: stop it, and let the next
			// caller start afresh rather than join a cancelled flight.
			f.cancel()
			if rc.flights[k] == f {
				delete(rc.flights, k)
			}
		}
		rc.mu.Unlock()
		return nil, context.Cause(ctx)
	}
	if !joined || f.err != nil {
		return f.out, f.err
	}
	o := joinedOutcome(f.out)
	return o, emitAnswer(emit, o.Generation)
}

// joinedOutcome is a computed answer as one that joined its computation
// gets it: spent nothing, so no usage, and reported as cached.
func joinedOutcome(out *Outcome) *Outcome {
	o := *out
	o.Cache = CacheHit
	if o.Generation != nil {
		g := *o.Generation
		g.Usage, g.UsageExtra = backend.Usage{}, nil
		o.Generation = &g
	}
	if o.Info != nil {
		info := *o.Info
		info.Cached = true
		o.Info = &info
	}
	return &o
}

// degraded reports an answer that a failure shaped, which the request
// would not get again once the failure passes: a sample's backend call or
// the reward failed, or a fallback backend answered. It is served, and
// not kept.
func degraded(ctx context.Context, o *Outcome) bool {
	if o.Info != nil && (o.Info.Failed > 0 || o.Info.RewardError != "") {
		return true
	}
	return backend.MeterOf(ctx).FellBack()
}
