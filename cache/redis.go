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
	ReadTimeout  time.Duration
	WriteTimeout time.Duration
	PoolSize     int
	MinIdle      int
	Log          *slog.Logger
}

// Redis is a cache on a Redis server shared by every replica. It never
// fails a request: an unreachable or slow server makes every Get a miss and
// every Set a no-op, counted and logged at most once per interval, and
// go-redis reconnects by itself when the server returns.
type Redis struct {
	c      redis.UniversalClient
	prefix string
	log    *slog.Logger
	// Errors counts failed operations; Hits and Misses count lookups.
	Errors, Hits, Misses atomic.Int64
	logMu                sync.Mutex
	lastLog              time.Time
}

var _ Cache = (*Redis)(nil)

// NewRedis connects lazily: construction never blocks on the server.
func NewRedis(o RedisOptions) *Redis {
	if o.Log == nil {
		o.Log = slog.Default()
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
	return &Redis{c: c, prefix: o.Prefix, log: o.Log}
}

// Client exposes the underlying client, for health checks.
func (r *Redis) Client() redis.UniversalClient { return r.c }

// Close closes the connections.
func (r *Redis) Close() error { return r.c.Close() }

func (r *Redis) Get(ctx context.Context, key string) ([]byte, bool, error) {
	b, err := r.c.Get(ctx, r.prefix+key).Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		r.Misses.Add(1)
		return nil, false, nil
	case err != nil:
		r.failed("get", err)
		r.Misses.Add(1)
		return nil, false, nil
	}
	r.Hits.Add(1)
	return b, true, nil
}

func (r *Redis) Set(ctx context.Context, key string, val []byte, ttl time.Duration) error {
	if err := r.c.Set(ctx, r.prefix+key, val, ttl).Err(); err != nil {
		r.failed("set", err)
	}
	return nil
}

// failed counts an error and logs it at most every 10 seconds.
func (r *Redis) failed(op string, err error) {
	n := r.Errors.Add(1)
	metrics.Cache.WithLabelValues("redis", op, "error").Inc()
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
