package gateway_test

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/cache/cachetest"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rules"
	"github.com/steergate/steergate/steering"
)

// replica starts a gateway whose caches live in the given Redis.
func replica(t *testing.T, redisAddr string) string {
	t.Helper()
	rc := cache.NewRedis(cache.RedisOptions{Addrs: []string{redisAddr}, Prefix: "sg:", DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { rc.Close() })
	rt := backend.NewRouter()
	rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"})
	rl, _ := rules.New(rules.Config{Keywords: map[string][]string{"helpfulness": {`\bbecause\b`}}})
	scored := rm.NewCached(rl, "rules@1", rc, time.Hour)
	eng := steering.NewEngine(map[string]rm.Rewarder{"default": scored}, nil, "default", steering.Limits{MaxSamples: 16}).
		WithResponseCache(steering.NewResponseCache(rc, true, time.Hour, 1<<20))
	return serveWith(t, defaultOptions(), rt, eng).url + "/v1/chat/completions"
}

// postCache sends a request that must succeed and returns its X-Cache
// header and body.
func postCache(t *testing.T, url, body string) (string, string) {
	t.Helper()
	status, h, b := post(t, url, body)
	if status != 200 {
		t.Fatalf("%d %s", status, b)
	}
	return h.Get("X-Cache"), b
}

// stripIDs drops what differs between two answers to the same request.
func stripIDs(body string) string {
	i := strings.Index(body, `"object"`)
	j := strings.Index(body, `"model"`)
	return body[:strings.Index(body, `"id"`)] + body[i:strings.Index(body[i:], `"created"`)+i] + body[j:]
}

func TestTwoReplicasShareRedis(t *testing.T) {
	srv := cachetest.StartRedis(t)
	a, b := replica(t, srv.Addr), replica(t, srv.Addr)
	body := `{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"seed":4,"max_tokens":30,"steering":{"strategy":"best_of_n","n":4}}`
	st, first := postCache(t, a, body)
	if st != "miss" {
		t.Fatalf("first request: X-Cache %q", st)
	}
	st, second := postCache(t, b, body)
	if st != "hit" || stripIDs(second) != stripIDs(first) {
		t.Fatalf("other replica: X-Cache %q\n%s\n%s", st, first, second)
	}
	other := strings.Replace(body, `"n":4`, `"n":4,"weights":{"helpfulness":2}`, 1)
	if st, _ := postCache(t, b, other); st != "miss" {
		t.Errorf("other weights: %q", st)
	}
	tenant := strings.Replace(body, `"seed":4`, `"seed":4,"user":"tenant-b"`, 1)
	if st, _ := postCache(t, b, tenant); st != "miss" {
		t.Errorf("other tenant: %q", st)
	}
}

func TestRedisKilledMidRunLosesNoRequest(t *testing.T) {
	srv := cachetest.StartRedis(t)
	url := replica(t, srv.Addr)
	body := `{"model":"reference","messages":[{"role":"user","content":"How do I save money?"}],"seed":2,"max_tokens":20,"steering":{"strategy":"best_of_n","n":2}}`
	postCache(t, url, body)
	if st, _ := postCache(t, url, body); st != "hit" {
		t.Fatalf("warm: %q", st)
	}
	srv.Stop()
	for i := range 5 {
		st, _ := postCache(t, url, body) // fails the test on anything but 200
		if st != "miss" {
			t.Errorf("request %d with Redis down: X-Cache %q", i, st)
		}
	}
	srv.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		postCache(t, url, body) // writes again once Redis answers
		if st, _ := postCache(t, url, body); st == "hit" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hits did not resume after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
