package cache_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

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
