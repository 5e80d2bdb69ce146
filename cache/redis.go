package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/steergate/steergate/metrics"
)

// RedisOptions configure the Redis cache. One address is a standalone
// server; several, or Cluster, a cluster; MasterName, Sentinel.
type RedisOptions struct {
	Addrs        []string
	MasterName   string
	Cluster      bool
	Username     string
	Password     string
	DB           int
	Prefix       string // key prefix, so several deployments can share a server
	DialTimeout  time.Duration
	ReadTimeout  time.Duration // the most a read may take, whatever the round trips so far
	WriteTimeout time.Duration
	// ReadSlack is what a read may take beyond the typical round trip
	// measured so far (default 5ms): a Redis slower than that is a miss.
	ReadSlack time.Duration
	// WriteQueue bounds writes waiting to be sent (default 1024); writes
	// are sent in the background and dropped when the queue is full.
	WriteQueue int
	// A circuit skips Redis for BreakerCooldown (default 1s) after
	// BreakerFailures (default 3) failed reads in a row.
	BreakerFailures int
	BreakerCooldown time.Duration
	PoolSize        int
	MinIdle         int
	Log             *slog.Logger
	Metrics         *metrics.Metrics
}

// Redis is a cache on a Redis server shared by every replica. It never
// fails or slows a request for long: a read waits at most a little beyond
// the round trips seen so far and is a miss past that; writes are queued
// and sent in the background (dropped when the queue is full); after a few
// failed reads in a row Redis is skipped for a while. go-redis reconnects
// by itself when the server returns.
type Redis struct {
	c       redis.UniversalClient
	o       RedisOptions
	log     *slog.Logger
	metrics *metrics.Metrics
	// Errors counts failed operations; Hits and Misses count lookups;
	// Skipped counts lookups the open circuit answered as misses; Dropped
	// counts writes the full queue refused.
	Errors, Hits, Misses, Skipped, Dropped atomic.Int64
	logMu                                  sync.Mutex
	lastLog                                time.Time
	rtt                                    atomic.Int64 // typical read round trip, ns (an exponential average)
	streak                                 atomic.Int64 // failed reads in a row
	openUntil                              atomic.Int64 // unix ns; reads skip Redis until then
	writes                                 chan []write // whole batches, so that one SetMany is one pipeline
	queued                                 atomic.Int64 // writes waiting, bounded by WriteQueue
	stop                                   chan struct{}
	done                                   chan struct{}
	closeOnce                              sync.Once
}

type write struct {
	key   string
	val   []byte
	ttl   time.Duration
	flush chan struct{} // a marker: closed once every earlier write was sent
}

var _ Cache = (*Redis)(nil)

// NewRedis connects lazily: construction never blocks on the server. Close
// stops its background writer.
func NewRedis(o RedisOptions) *Redis {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	if o.ReadSlack <= 0 {
		o.ReadSlack = 5 * time.Millisecond
	}
	if o.WriteQueue <= 0 {
		o.WriteQueue = 1024
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = 3
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = time.Second
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs: o.Addrs, MasterName: o.MasterName, IsClusterMode: o.Cluster,
		Username: o.Username, Password: o.Password, DB: o.DB,
		DialTimeout: o.DialTimeout, ReadTimeout: o.ReadTimeout, WriteTimeout: o.WriteTimeout,
		PoolSize: o.PoolSize, MinIdleConns: o.MinIdle,
		// A cache must answer fast or not at all: one try, no retries, and
		// one dial attempt when the server is down.
		MaxRetries: -1, DialerRetries: 1, DialerRetryTimeout: 10 * time.Millisecond,
		ContextTimeoutEnabled: true, ClientName: "steergate",
	})
	quietOnce.Do(func() { redis.SetLogger(debugLogger{o.Log}) })
	r := &Redis{c: c, o: o, log: o.Log, metrics: o.Metrics, writes: make(chan []write, o.WriteQueue),
		stop: make(chan struct{}), done: make(chan struct{})}
	go r.writer()
	return r
}

// Client exposes the underlying client, for health checks and tests.
func (r *Redis) Client() redis.UniversalClient { return r.c }

// Close sends what is queued (for at most the write timeout), stops the
// writer and closes the connections. It is safe to call more than once.
func (r *Redis) Close() error {
	var err error
	r.closeOnce.Do(func() {
		close(r.stop)
		<-r.done
		err = r.c.Close()
	})
	return err
}

// Flush waits until every write queued before it has been sent (or
// failed).
func (r *Redis) Flush() {
	select {
	case <-r.done:
		return
	default:
	}
	ch := make(chan struct{})
	select {
	case r.writes <- []write{{flush: ch}}:
		<-ch
	case <-r.done:
	}
}

// budget is how long a read may take now: a little beyond the typical
// round trip, or read_timeout for the first read after the circuit's
// cooldown, which measures a Redis that has become slower.
func (r *Redis) budget() time.Duration {
	rtt := time.Duration(r.rtt.Load())
	if rtt == 0 || r.openUntil.Load() != 0 {
		return r.o.ReadTimeout
	}
	return min(r.o.ReadTimeout, 2*rtt+r.o.ReadSlack)
}

// open reports whether the circuit skips Redis now.
func (r *Redis) open() bool {
	until := r.openUntil.Load()
	return until != 0 && time.Now().UnixNano() < until
}

func (r *Redis) readDone(start time.Time, err error) {
	if err != nil && !errors.Is(err, redis.Nil) {
		if r.streak.Add(1) >= int64(r.o.BreakerFailures) {
			r.openUntil.Store(time.Now().Add(r.o.BreakerCooldown).UnixNano())
		}
		return
	}
	r.streak.Store(0)
	r.openUntil.Store(0)
	// The typical round trip follows a slower Redis at once and a faster
	// one gradually, so that a loaded machine does not turn every read into
	// a miss.
	took := time.Since(start).Nanoseconds()
	if old := r.rtt.Load(); took > old {
		r.rtt.Store(took)
	} else {
		r.rtt.Store(old + (took-old)/8)
	}
}

func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	vals, err := r.GetMany(ctx, []string{key})
	if err != nil || vals[0] == nil {
		return nil, false, err
	}
	return vals[0], true, nil
}

// GetMany reads every key in one pipeline: one round trip on a standalone
// server; on a cluster go-redis sends one pipeline per node owning the
// keys' slots.
func (r *Redis) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	if r.open() {
		r.Misses.Add(int64(len(keys)))
		r.Skipped.Add(1)
		r.metrics.Cache("redis", "get", "skipped")
		return out, nil
	}
	rctx, cancel := context.WithTimeout(ctx, r.budget())
	defer cancel()
	start := time.Now()
	cmds := make([]*redis.StringCmd, len(keys))
	_, err := r.c.Pipelined(rctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			cmds[i] = p.Get(rctx, r.o.Prefix+k)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		r.readDone(start, err)
		if ctx.Err() == nil {
			r.failed("get", err)
		}
		r.Misses.Add(int64(len(keys)))
		return out, nil
	}
	r.readDone(start, nil)
	for i, c := range cmds {
		b, err := c.Bytes()
		if err != nil {
			r.Misses.Add(1)
			continue
		}
		out[i] = b
		r.Hits.Add(1)
	}
	return out, nil
}

func (r *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	return r.SetMany(ctx, []Item{{Key: key, Val: val}}, ttl)
}

// SetMany queues the writes as one batch; the background writer sends
// it, with whatever else has queued, in one pipeline. A batch that would
// pass write_queue is dropped whole (a dropped write is only a future
// miss).
func (r *Redis) SetMany(_ context.Context, items []Item, ttl time.Duration) error {
	if len(items) == 0 {
		return nil
	}
	drop := func() {
		r.Dropped.Add(int64(len(items)))
		r.metrics.Cache("redis", "set", "dropped")
	}
	if r.queued.Add(int64(len(items))) > int64(r.o.WriteQueue) {
		r.queued.Add(-int64(len(items)))
		drop()
		return nil
	}
	batch := make([]write, len(items))
	for i, it := range items {
		batch[i] = write{key: r.o.Prefix + it.Key, val: it.Val, ttl: ttl}
	}
	select {
	case r.writes <- batch:
	default:
		r.queued.Add(-int64(len(items)))
		drop()
	}
	return nil
}

// maxPipeline bounds the writes of one pipeline.
const maxPipeline = 512

// writer sends queued batches, each with whatever else has queued by then,
// in one pipeline.
func (r *Redis) writer() {
	defer close(r.done)
	var pending []write
	for {
		select {
		case b := <-r.writes:
			pending = append(pending[:0], b...)
		case <-r.stop:
			r.drain()
			return
		}
	more:
		for len(pending) < maxPipeline {
			select {
			case b := <-r.writes:
				pending = append(pending, b...)
			default:
				break more
			}
		}
		r.send(pending)
	}
}

// drain sends what is left at Close.
func (r *Redis) drain() {
	for {
		select {
		case b := <-r.writes:
			r.send(b)
		default:
			return
		}
	}
}

func (r *Redis) send(batch []write) {
	var flushes []chan struct{}
	writes := batch[:0:0]
	for _, w := range batch {
		if w.flush != nil {
			flushes = append(flushes, w.flush)
		} else {
			writes = append(writes, w)
		}
	}
	defer func() {
		for _, f := range flushes {
			close(f)
		}
	}()
	if len(writes) == 0 {
		return
	}
	defer r.queued.Add(-int64(len(writes)))
	batch = writes
	if r.open() {
		r.metrics.Cache("redis", "set", "skipped")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), r.o.WriteTimeout)
	defer cancel()
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, w := range batch {
			p.Set(ctx, w.key, w.val, w.ttl)
		}
		return nil
	})
	if err != nil {
		r.failed("set", err)
		return
	}
	r.metrics.Cache("redis", "set", "ok")
}

// failed counts an error and logs it at most every 10 seconds.
func (r *Redis) failed(op string, err error) {
	n := r.Errors.Add(1)
	r.metrics.Cache("redis", op, "error")
	r.logMu.Lock()
	defer r.logMu.Unlock()
	if time.Since(r.lastLog) < 10*time.Second {
		return
	}
	r.lastLog = time.Now()
	r.log.Warn("redis cache unavailable; serving without it", "op", op, "err", err, "errors_so_far", n)
}

var quietOnce sync.Once

// debugLogger sends go-redis's own messages (one per failed dial) to slog at
// debug level; the cache's rate-limited warning says the same once.
type debugLogger struct{ log *slog.Logger }

func (l debugLogger) Printf(ctx context.Context, format string, v ...any) {
	l.log.Debug(fmt.Sprintf(format, v...), "component", "go-redis")
}
