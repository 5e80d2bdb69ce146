package cache_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/cache/cachetest"
)

func newRedis(addr string) *cache.Redis {
	return cache.NewRedis(cache.RedisOptions{Addrs: []string{addr}, Prefix: "t:", DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
}

func TestRedisGetSetTTL(t *testing.T) {
	srv := cachetest.StartRedis(t)
	r := newRedis(srv.Addr)
	defer r.Close()
	ctx := context.Background()
	if _, ok, err := r.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("empty cache: %v %v", ok, err)
	}
	_ = r.Set(ctx, "k", []byte("v"), time.Minute)
	r.Flush()
	if v, ok, _ := r.Get(ctx, "k"); !ok || string(v) != "v" {
		t.Fatalf("got %q %v", v, ok)
	}
	if ttl := r.Client().TTL(ctx, "t:k").Val(); ttl <= 0 || ttl > time.Minute {
		t.Errorf("ttl %v", ttl)
	}
}

func TestRedisDownIsAMissAndRecovers(t *testing.T) {
	srv := cachetest.StartRedis(t)
	r := newRedis(srv.Addr)
	defer r.Close()
	ctx := context.Background()
	_ = r.Set(ctx, "k", []byte("v"), 0)
	srv.Stop()
	start := time.Now()
	if _, ok, err := r.Get(ctx, "k"); ok || err != nil {
		t.Fatalf("down: ok=%v err=%v; want a plain miss", ok, err)
	}
	if err := r.Set(ctx, "k2", []byte("v"), 0); err != nil {
		t.Fatalf("down: set failed the caller: %v", err)
	}
	if time.Since(start) > 2*time.Second {
		t.Errorf("a down Redis took %v", time.Since(start))
	}
	r.Flush() // writes go out in the background
	if r.Errors.Load() < 2 {
		t.Errorf("errors counted: %d", r.Errors.Load())
	}
	srv.Start() // empty again: no persistence
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = r.Set(ctx, "k", []byte("back"), 0)
		r.Flush()
		if v, ok, _ := r.Get(ctx, "k"); ok && string(v) == "back" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("did not recover after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A hung Redis (stopped by SIGSTOP) costs a request at most the read
// budget: reads fail as misses, and after breaker_failures of them the
// circuit skips Redis until the cooldown; writes never wait. When Redis
// answers again, hits resume.
func TestHungRedisIsSkipped(t *testing.T) {
	srv := cachetest.StartRedis(t)
	r := cache.NewRedis(cache.RedisOptions{Addrs: []string{srv.Addr}, Prefix: "t:", DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, BreakerFailures: 3, BreakerCooldown: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer r.Close()
	ctx := context.Background()
	_ = r.Set(ctx, "k", []byte("v"), 0)
	r.Flush()
	if _, ok, _ := r.Get(ctx, "k"); !ok {
		t.Fatal("warm-up get missed")
	}
	srv.Pause()
	for range 20 {
		if _, ok, err := r.Get(ctx, "k"); ok || err != nil {
			t.Fatalf("paused Redis: ok=%v err=%v", ok, err)
		}
		_ = r.Set(ctx, "k2", []byte("v"), 0) // queued, never waited for
	}
	if e := r.Errors.Load(); e < 3 || e > 4 {
		t.Errorf("%d failed reads reached the hung Redis; the circuit should have opened after 3", e)
	}
	if r.Skipped.Load() < 16 {
		t.Errorf("only %d reads skipped Redis", r.Skipped.Load())
	}
	srv.Resume()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, ok, _ := r.Get(ctx, "k"); ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hits did not resume")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// trips counts what the client sends for the cache: each command or
// pipeline is one round trip to a standalone server. A new connection's
// own handshake (HELLO, CLIENT ...) is not the cache's.
type trips struct{ n atomic.Int64 }

func handshake(cmd redis.Cmder) bool {
	name := strings.ToLower(cmd.Name())
	return name == "hello" || name == "client"
}

func (h *trips) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *trips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if !handshake(cmd) {
			h.n.Add(1)
		}
		return next(ctx, cmd)
	}
}
func (h *trips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if !handshake(cmds[0]) {
			h.n.Add(1)
		}
		return next(ctx, cmds)
	}
}

// A batch of reads is one round trip, and so is a batch of writes.
func TestRedisBatchesAreOneRoundTrip(t *testing.T) {
	srv := cachetest.StartRedis(t)
	r := newRedis(srv.Addr)
	defer r.Close()
	h := &trips{}
	r.Client().AddHook(h)
	ctx := context.Background()
	var items []cache.Item
	var keys []string
	for i := range 16 {
		k := fmt.Sprintf("k%d", i)
		items, keys = append(items, cache.Item{Key: k, Val: []byte(k)}), append(keys, k)
	}
	if err := r.SetMany(ctx, items, time.Minute); err != nil {
		t.Fatal(err)
	}
	r.Flush()
	if n := h.n.Load(); n != 1 {
		t.Errorf("16 writes took %d round trips", n)
	}
	vals, err := r.GetMany(ctx, keys)
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range vals {
		if string(v) != keys[i] {
			t.Errorf("key %s: %q", keys[i], v)
		}
	}
	if n := h.n.Load(); n != 2 {
		t.Errorf("16 reads took %d round trips", n-1)
	}
}

// On a 3-node cluster the keys of one batch live in different slots; a
// batch still reads and writes every one of them.
func TestRedisClusterBatches(t *testing.T) {
	addrs := cachetest.StartCluster(t, 3)
	r := cache.NewRedis(cache.RedisOptions{Addrs: addrs, Cluster: true, Prefix: "t:", DialTimeout: time.Second,
		ReadTimeout: time.Second, WriteTimeout: time.Second, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer r.Close()
	ctx := context.Background()
	var items []cache.Item
	var keys []string
	for i := range 64 {
		k := fmt.Sprintf("key-%d", i)
		items, keys = append(items, cache.Item{Key: k, Val: []byte("v" + k)}), append(keys, k)
	}
	if err := r.SetMany(ctx, items, time.Minute); err != nil {
		t.Fatal(err)
	}
	r.Flush()
	vals, err := r.GetMany(ctx, append(keys, "absent"))
	if err != nil {
		t.Fatal(err)
	}
	for i, k := range keys {
		if string(vals[i]) != "v"+k {
			t.Fatalf("key %s: %q", k, vals[i])
		}
	}
	if vals[len(keys)] != nil {
		t.Errorf("absent key: %q", vals[len(keys)])
	}
	slots := map[int64]bool{}
	for _, k := range keys {
		slots[r.Client().ClusterKeySlot(ctx, "t:"+k).Val()] = true
	}
	if len(slots) < 32 {
		t.Errorf("the keys fell in only %d slots: the test does not span the nodes", len(slots))
	}
	if r.Errors.Load() != 0 {
		t.Errorf("%d errors", r.Errors.Load())
	}
}
