package steering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

func cachedEngine(b backend.Backend, rewards map[string]rm.Rewarder) *Engine {
	return NewEngine(Options{Rewards: rewards, Default: "t", Routes: map[string]json.RawMessage{"m": json.RawMessage(`{"weights":{"good":1,"long":0}}`)},
		Limits: Limits{MaxSamples: 32}, Responses: NewResponseCache(cache.NewMemory(1<<20), true, time.Hour, 1<<20, nil)})
}

func runCall(t *testing.T, e *Engine, b backend.Backend, steer string, mod func(*Call)) *Outcome {
	t.Helper()
	c := call(steer, 1)
	c.Route.Backend = b
	if mod != nil {
		mod(c)
	}
	o, err := run(context.Background(), e, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func TestResponseCacheKeys(t *testing.T) {
	b := &scripted{}
	v1 := table()
	v2 := table()
	v2.Name = "t-v2" // another version of the same reward model
	e := cachedEngine(b, map[string]rm.Rewarder{"t": v1, "t2": v2})
	steer := `{"strategy":"best_of_n","n":4}`
	first := runCall(t, e, b, steer, nil)
	again := runCall(t, e, b, steer, nil)
	if first.Cache != CacheMiss || again.Cache != CacheHit {
		t.Fatalf("cache %q then %q", first.Cache, again.Cache)
	}
	a, _ := json.Marshal(first.Generation.Choices)
	c, _ := json.Marshal(again.Generation.Choices)
	// A hit serves the report as stored, marked cached; its Info holds
	// what headers need.
	var report Info
	if err := json.Unmarshal(again.Report, &report); err != nil {
		t.Fatal(err)
	}
	if string(a) != string(c) || report.SamplesUsed != 4 || !report.Cached || again.Info.Strategy != BestOfN || !again.Info.Cached {
		t.Errorf("hit differs:\n%s\n%s\n%s", a, c, again.Report)
	}
	// A hit spent nothing: its usage is zero, while the report keeps what
	// the answer cost when it was computed.
	if again.Generation.Usage != (backend.Usage{}) || first.Generation.Usage.CompletionTokens == 0 ||
		report.BackendUsage != first.Info.BackendUsage {
		t.Errorf("usage on a hit %+v, report %+v", again.Generation.Usage, report.BackendUsage)
	}
	calls := b.calls.Load()
	for name, c := range map[string]struct {
		steer string
		mod   func(*Call)
	}{
		"other weights": {`{"strategy":"best_of_n","n":4,"weights":{"long":1}}`, nil},
		"other tenant":  {steer, func(c *Call) { c.Tenant = "someone-else" }},
		"other reward":  {`{"strategy":"best_of_n","n":4,"reward":"t2"}`, nil},
		"other seed":    {steer, func(c *Call) { s := int64(9); c.Request.Seed = &s }},
		"other n":       {`{"strategy":"best_of_n","n":5}`, nil},
	} {
		if o := runCall(t, e, b, c.steer, c.mod); o.Cache != CacheMiss {
			t.Errorf("%s: %q, want a miss", name, o.Cache)
		}
	}
	if b.calls.Load() == calls {
		t.Error("misses did not reach the backend")
	}
}

func TestResponseCacheModes(t *testing.T) {
	b := &scripted{}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table()})
	// Without a seed a request is not reproducible: not cached by default.
	nonRepro := func(steer string) string {
		c := call(steer, 1)
		c.Request.Seed = nil
		c.Route.Backend = &seededBackend{scripted: b}
		o, err := run(context.Background(), e, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return o.Cache
	}
	if got := nonRepro(`{"strategy":"best_of_n","n":2}`); got != "" {
		t.Errorf("unseeded request used the cache: %q", got)
	}
	if got := nonRepro(`{"strategy":"best_of_n","n":2,"cache":{"mode":"on"}}`); got != CacheMiss {
		t.Errorf("mode on: %q", got)
	}
	if got := nonRepro(`{"strategy":"best_of_n","n":2,"cache":{"mode":"on"}}`); got != CacheHit {
		t.Errorf("mode on, again: %q", got)
	}
	steer := `{"strategy":"best_of_n","n":3,"cache":{"mode":"write_only"}}`
	runCall(t, e, b, steer, nil)
	if o := runCall(t, e, b, steer, nil); o.Cache != CacheMiss {
		t.Errorf("write_only served a hit")
	}
	if o := runCall(t, e, b, `{"strategy":"best_of_n","n":3,"cache":{"mode":"read_only"}}`, nil); o.Cache != CacheHit {
		t.Errorf("read_only after write_only: %q", o.Cache)
	}
	if o := runCall(t, e, b, `{"strategy":"best_of_n","n":3,"cache":{"mode":"off"}}`, nil); o.Cache != "" {
		t.Errorf("off: %q", o.Cache)
	}
	bad := call(`{"cache":{"mode":"sometimes"}}`, 1)
	bad.Route.Backend = b
	if _, err := run(context.Background(), e, bad, nil); err == nil {
		t.Error("bad mode accepted")
	}
}

// seededBackend answers unseeded requests like seed 0.
type seededBackend struct{ *scripted }

func (s *seededBackend) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	if r.Seed == nil {
		z := int64(0)
		r.Seed = &z
	}
	return s.scripted.Generate(ctx, r)
}

func TestIdenticalMissesComputeOnce(t *testing.T) {
	b := &slowBackend{scripted: &scripted{}, gate: make(chan struct{})}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table()})
	joined := make(chan struct{}, 8)
	e.responses.onJoin = func() { joined <- struct{}{} }
	var wg sync.WaitGroup
	outs := make([]*Outcome, 8)
	for i := range outs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := call(`{"strategy":"best_of_n","n":4}`, 1)
			c.Route.Backend = b
			var err error
			outs[i], err = run(context.Background(), e, c, nil)
			if err != nil {
				t.Error(err)
			}
		}()
	}
	for range outs {
		<-joined // every caller has reached the cache
	}
	close(b.gate)
	wg.Wait()
	if n := b.calls.Load(); n != 4 {
		t.Errorf("8 identical requests made %d backend calls, want 4 (one best-of-4)", n)
	}
	misses := 0
	for _, o := range outs {
		if o.Generation.Choices[0].Text != outs[0].Generation.Choices[0].Text {
			t.Error("followers got another answer")
		}
		switch o.Cache {
		case CacheMiss:
			misses++
			if o.Generation.Usage == (backend.Usage{}) || o.Info.Cached {
				t.Errorf("the computing request: usage %+v, cached %v", o.Generation.Usage, o.Info.Cached)
			}
		case CacheHit: // joined: spent nothing
			if o.Generation.Usage != (backend.Usage{}) || !o.Info.Cached {
				t.Errorf("a follower: usage %+v, cached %v", o.Generation.Usage, o.Info.Cached)
			}
		default:
			t.Errorf("cache status %q", o.Cache)
		}
	}
	if misses != 1 {
		t.Errorf("%d requests computed the answer", misses)
	}
}

// downBackend fails every call, as a backend that is down does.
type downBackend struct{ *scripted }

func (downBackend) Name() string { return "down" }
func (downBackend) Generate(context.Context, *backend.Request) (*backend.Generation, error) {
	return nil, fmt.Errorf("%w: down", fault.ErrUpstream)
}
func (d downBackend) Stream(ctx context.Context, r *backend.Request, _ func(backend.Delta) error) (*backend.Generation, error) {
	return d.Generate(ctx, r)
}

// brokenReward fails every scoring call.
type brokenReward struct{}

func (brokenReward) Objectives() []string { return []string{"good", "long"} }
func (brokenReward) Score(context.Context, []rm.Sample) ([][]float32, error) {
	return nil, fmt.Errorf("%w: down", fault.ErrReward)
}

// An answer a failure shaped is served and not kept: a failed sample, a
// failed reward answered unscored, a fallback backend's answer. The next
// identical request computes again.
func TestDegradedAnswersAreNotKept(t *testing.T) {
	b := &scripted{}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table(), "broken": brokenReward{}})
	for _, c := range []struct {
		name  string
		steer string
		be    backend.Backend
	}{
		{"a failed reward", `{"strategy":"best_of_n","n":2,"reward":"broken","on_reward_error":"first"}`, b},
		{"a failed sample", `{"strategy":"best_of_n","n":4,"min_success":1}`, &scripted{fail: map[int64]error{1: fmt.Errorf("%w: boom", fault.ErrUpstream)}}},
		{"a fallback", `{"strategy":"none"}`, backend.NewPool(backend.Member{Backend: downBackend{b}}, backend.Member{Backend: b})},
	} {
		for i := range 2 {
			if o := runCall(t, e, c.be, c.steer, nil); o.Cache != CacheMiss {
				t.Errorf("%s, request %d: %s", c.name, i, o.Cache)
			}
		}
	}
}

// A hit spent nothing: its usage is zero, details included (cached_tokens
// beside zero prompt_tokens would be a negative count to a client).
func TestHitUsageIsZeroWithItsDetails(t *testing.T) {
	b := &scripted{}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table()})
	miss := runCall(t, e, b, `{"strategy":"none"}`, nil)
	if miss.Cache != CacheMiss || miss.Generation.UsageExtra == nil {
		t.Fatalf("the miss: %s, usage details %v", miss.Cache, miss.Generation.UsageExtra)
	}
	hit := runCall(t, e, b, `{"strategy":"none"}`, nil)
	if hit.Cache != CacheHit || hit.Generation.Usage != (backend.Usage{}) || hit.Generation.UsageExtra != nil {
		t.Errorf("the hit: %s, usage %+v, details %v", hit.Cache, hit.Generation.Usage, hit.Generation.UsageExtra)
	}
}

// max_age_s is the oldest answer a request accepts: 0 takes none, a
// bound it meets takes the stored one, and none takes any.
func TestMaxAge(t *testing.T) {
	b := &scripted{}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table()})
	if o := runCall(t, e, b, `{"strategy":"none"}`, nil); o.Cache != CacheMiss {
		t.Fatalf("first: %s", o.Cache)
	}
	for steer, want := range map[string]string{
		`{"strategy":"none","cache":{"max_age_s":0}}`:    CacheMiss,
		`{"strategy":"none","cache":{"max_age_s":3600}}`: CacheHit,
		`{"strategy":"none"}`:                            CacheHit,
	} {
		if o := runCall(t, e, b, steer, nil); o.Cache != want {
			t.Errorf("%s: %s, want %s", steer, o.Cache, want)
		}
	}
}

// A cached request whose client does not stream is computed as a whole
// answer, not a stream rebuilt from its chunks, which would lose what
// chunks do not carry (top-level fields a backend adds).
func TestCachedRequestIsNotStreamedForAWholeAnswer(t *testing.T) {
	b := &streamCounter{scripted: &scripted{}}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table()})
	if o := runCall(t, e, b, `{"strategy":"none"}`, nil); o.Cache != CacheMiss || o.Generation.SystemFingerprint == "" {
		t.Fatalf("%s %+v", o.Cache, o.Generation)
	}
	if n := b.streams.Load(); n != 0 {
		t.Errorf("%d streamed calls for a client that does not stream", n)
	}
}

type streamCounter struct {
	*scripted
	streams atomic.Int64
}

func (s *streamCounter) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	s.streams.Add(1)
	return s.scripted.Stream(ctx, r, emit)
}

type slowBackend struct {
	*scripted
	gate chan struct{}
}

func (s *slowBackend) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	<-s.gate
	return s.scripted.Generate(ctx, r)
}

func TestStreamingHitIsReplayed(t *testing.T) {
	b := &scripted{}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table()})
	c := call(`{"strategy":"best_of_n","n":4}`, 1)
	c.Route.Backend = b
	var status string
	c.CacheStatus = func(s string) { status = s }
	first, _ := run(context.Background(), e, c, nil)
	var deltas []backend.Delta
	o, err := run(context.Background(), e, c, func(d backend.Delta) error { deltas = append(deltas, d); return nil })
	if err != nil || o.Cache != CacheHit || status != CacheHit {
		t.Fatalf("%v %q %q", err, o.Cache, status)
	}
	if len(deltas) != 2 || deltas[0].Text != first.Generation.Choices[0].Text || deltas[1].FinishReason == "" {
		t.Errorf("replay %+v", deltas)
	}
	// The replayed chunks carry what the backend's answer said beside it.
	for _, d := range deltas {
		if d.Fingerprint != first.Generation.SystemFingerprint || d.Fingerprint == "" || string(d.Extra["service_tier"]) != string(first.Generation.Extra["service_tier"]) {
			t.Errorf("replayed delta %+v, answer %+v", d, first.Generation)
		}
	}
}

// The computation identical misses share runs until every caller has
// gone: the first caller leaving does not fail the second.
func TestSharedComputationSurvivesALeaver(t *testing.T) {
	b := &slowBackend{scripted: &scripted{}, gate: make(chan struct{})}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table()})
	joined := make(chan struct{}, 2)
	e.responses.onJoin = func() { joined <- struct{}{} }
	first, leave := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	outs := make(chan *Outcome, 1)
	go func() {
		c := call(`{"strategy":"best_of_n","n":4}`, 1)
		c.Route.Backend = b
		_, err := run(first, e, c, nil)
		errs <- err
	}()
	<-joined
	go func() {
		c := call(`{"strategy":"best_of_n","n":4}`, 1)
		c.Route.Backend = b
		o, err := run(context.Background(), e, c, nil)
		outs <- o
		errs <- err
	}()
	<-joined
	leave()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Errorf("the leaver got %v", err)
	}
	close(b.gate)
	if err := <-errs; err != nil {
		t.Fatalf("the one who stayed got %v", err)
	}
	if o := <-outs; o.Generation.Choices[0].Text == "" {
		t.Error("empty answer")
	}
	if n := b.calls.Load(); n != 4 {
		t.Errorf("%d backend calls; the computation should have run once", n)
	}
}

// A first caller that streams and leaves is emitted nothing after it has
// returned: its stream is over, and the gateway closes what it wrote to
// (an emit after that took the whole process down).
func TestSharedComputationStreamsNothingToALeaver(t *testing.T) {
	b := &slowBackend{scripted: &scripted{}, gate: make(chan struct{})}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table()})
	joined := make(chan struct{}, 2)
	e.responses.onJoin = func() { joined <- struct{}{} }
	first, leave := context.WithCancel(context.Background())
	var mu sync.Mutex
	returned, late := false, 0
	emit := func(backend.Delta) error {
		mu.Lock()
		defer mu.Unlock()
		if returned {
			late++
		}
		return nil
	}
	errs := make(chan error, 2)
	go func() {
		c := call(`{"strategy":"best_of_n","n":4}`, 1)
		c.Route.Backend = b
		_, err := run(first, e, c, emit)
		mu.Lock()
		returned = true
		mu.Unlock()
		errs <- err
	}()
	<-joined
	go func() {
		c := call(`{"strategy":"best_of_n","n":4}`, 1)
		c.Route.Backend = b
		_, err := run(context.Background(), e, c, nil)
		errs <- err
	}()
	<-joined
	leave()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Errorf("the leaver got %v", err)
	}
	close(b.gate) // the computation goes on, and emits its answer
	if err := <-errs; err != nil {
		t.Fatalf("the one who stayed got %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if late > 0 {
		t.Errorf("%d deltas emitted to the first caller after it had returned", late)
	}
}

// When every caller of a shared computation has gone it is cancelled, and
// a caller arriving while it winds down starts its own instead of joining
// it and inheriting the others' cancellation.
func TestNoJoiningACancelledComputation(t *testing.T) {
	b := &slowBackend{scripted: &scripted{}, gate: make(chan struct{})}
	e := cachedEngine(b, map[string]rm.Rewarder{"t": table()})
	joined := make(chan struct{}, 2)
	e.responses.onJoin = func() { joined <- struct{}{} }
	req := func() *Call {
		c := call(`{"strategy":"best_of_n","n":4}`, 1)
		c.Route.Backend = b
		return c
	}
	first, leave := context.WithCancel(context.Background())
	errs := make(chan error, 1)
	go func() {
		_, err := run(first, e, req(), nil)
		errs <- err
	}()
	<-joined
	leave()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("the leaver got %v", err)
	}
	// The cancelled computation is still blocked in the backend.
	outs := make(chan error, 1)
	go func() {
		_, err := run(context.Background(), e, req(), nil)
		outs <- err
	}()
	<-joined
	close(b.gate)
	if err := <-outs; err != nil {
		t.Fatalf("a caller arriving after the others left got %v", err)
	}
}

// Keys from the client's bytes: how to answer (stream) and the steering
// object do not change the key; anything else does.
func TestBodyKey(t *testing.T) {
	e := cachedEngine(&scripted{}, map[string]rm.Rewarder{"t": table()})
	keyOf := func(body string) string {
		seed := int64(0)
		c := &Call{Route: backend.Route{Name: "m", Backend: &scripted{}}, Request: &backend.Request{Model: "m", Seed: &seed,
			Messages: []backend.Message{{Role: "user", Content: "q"}}}, Steering: json.RawMessage(`{"strategy":"best_of_n","n":4}`), Body: []byte(body)}
		p, err := e.Plan(c)
		if err != nil {
			t.Fatal(err)
		}
		return key(c, p, p.Weights(), "t")
	}
	base := keyOf(`{"model":"m","seed":0,"messages":[{"role":"user","content":"q"}],"steering":{"strategy":"best_of_n","n":4}}`)
	if k := keyOf(`{"model":"m","seed":0,"messages":[{"role":"user","content":"q"}],"stream":true,"stream_options":{"include_usage":true},"steering":{"strategy":"best_of_n","n":4,"cache":{"max_age_s":5}}}`); k != base {
		t.Error("stream or cache options changed the key")
	}
	for _, other := range []string{
		`{"model":"m","seed":1,"messages":[{"role":"user","content":"q"}]}`,
		`{"model":"m","seed":0,"messages":[{"role":"user","content":"Q"}]}`,
		`{"model":"m","seed":0,"messages":[{"role":"user","content":"q"}],"user":"u2"}`,
	} {
		if keyOf(other) == base {
			t.Errorf("%s has the same key", other)
		}
	}
}

// A stored entry that is damaged (cut short, or not JSON) is a miss,
// never a body sent as it is.
func TestDamagedEntryIsAMiss(t *testing.T) {
	good, err := json.Marshal(entry{Format: entryFormat, Created: time.Now().Unix(), Gen: json.RawMessage(`{"choices":[]}`),
		Body: json.RawMessage(`{"choices":[{"index":0}],"usage":{}}`)})
	if err != nil {
		t.Fatal(err)
	}
	if o := readEntry(good, -1, false); o == nil || string(o.Encoded) != `{"choices":[{"index":0}],"usage":{}}` {
		t.Fatalf("a good entry: %+v", o)
	}
	for _, bad := range [][]byte{good[:len(good)-1], good[:len(good)-12], append([]byte(nil), good[:20]...), []byte(`{"f":4,"t":0,"g":{},"b":{"x"}}`)} {
		if o := readEntry(bad, -1, false); o != nil {
			t.Errorf("%s: read as %+v", bad, o)
		}
	}
}

// Guided at a temperature of its own samples even for a request at
// temperature 0: unseeded, it is not reproducible and not cached; greedy
// at the request's temperature 0, it is.
func TestGuidedOwnTemperatureIsNotCached(t *testing.T) {
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{}, Tokens: map[string]rm.TokenRewarder{"likes": likes{}},
		Routes: map[string]json.RawMessage{"m": json.RawMessage(`{}`)}, Limits: Limits{MaxSamples: 16},
		Responses: NewResponseCache(cache.NewMemory(1<<20), true, time.Hour, 1<<20, nil)})
	ask := func(steer string) string {
		zero := 0.0
		c := &Call{Route: backend.Route{Name: "m", Backend: &topK{}}, Steering: json.RawMessage(steer),
			Request: &backend.Request{Model: "m", MaxTokens: 1, Temperature: &zero, Messages: []backend.Message{{Role: "user", Content: "q"}}}}
		o, err := run(context.Background(), e, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		return o.Cache
	}
	for i := range 2 {
		if got := ask(`{"strategy":"guided","temperature":2}`); got != "" {
			t.Errorf("own temperature, request %d: cache %q", i, got)
		}
	}
	if first, second := ask(`{"strategy":"guided"}`), ask(`{"strategy":"guided"}`); first != CacheMiss || second != CacheHit {
		t.Errorf("greedy: %q then %q", first, second)
	}
}
