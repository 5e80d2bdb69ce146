package gateway_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"reflect"
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
	"github.com/steergate/steergate/wire"
)

// replica starts a gateway whose caches live in the given Redis; flush
// waits until its cache writes have reached Redis.
func replica(t *testing.T, redisAddr string) (url string, flush func()) {
	t.Helper()
	rc := cache.NewRedis(cache.RedisOptions{Addrs: []string{redisAddr}, Prefix: "sg:", DialTimeout: 200 * time.Millisecond,
		ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { rc.Close() })
	rt := backend.NewRouter()
	rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"})
	rl, _ := rules.New(rules.Config{Keywords: map[string][]string{"helpfulness": {`\bbecause\b`}}})
	scored := rm.NewCached(rl, "rules@1", rc, time.Hour, nil)
	eng := steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": scored}, Limits: steering.Limits{MaxSamples: 16},
		Responses: steering.NewResponseCache(rc, true, time.Hour, 1<<20, nil)})
	return serveWith(t, defaultOptions(), rt, eng).url + "/v1/chat/completions", rc.Flush
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

// answerOf is what must be equal between a computed answer and the same
// answer served from the cache: the choices and the candidates weighed.
func answerOf(t *testing.T, body string) string {
	t.Helper()
	var v struct {
		Choices  json.RawMessage `json:"choices"`
		Steering struct {
			Candidates json.RawMessage `json:"candidates"`
		} `json:"steering"`
	}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	return string(v.Choices) + string(v.Steering.Candidates)
}

func TestTwoReplicasShareRedis(t *testing.T) {
	srv := cachetest.StartRedis(t)
	a, flushA := replica(t, srv.Addr)
	b, _ := replica(t, srv.Addr)
	body := `{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"seed":4,"max_tokens":30,"steering":{"strategy":"best_of_n","n":4}}`
	st, first := postCache(t, a, body)
	if st != "miss" {
		t.Fatalf("first request: X-Cache %q", st)
	}
	flushA()
	st, second := postCache(t, b, body)
	if st != "hit" || answerOf(t, second) != answerOf(t, first) || !strings.Contains(second, `"cached":true`) {
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
	url, flush := replica(t, srv.Addr)
	body := `{"model":"reference","messages":[{"role":"user","content":"How do I save money?"}],"seed":2,"max_tokens":20,"steering":{"strategy":"best_of_n","n":2}}`
	postCache(t, url, body)
	flush()
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
		flush()
		if st, _ := postCache(t, url, body); st == "hit" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("hits did not resume after Redis came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A hit is sent as the cache stored it, after a head of its own: it must
// be the computed answer in every member but its id, its created time, its
// usage (a hit spends nothing) and the report's "cached", and keep the
// members in OpenAI's order.
func TestCacheHitIsTheComputedAnswer(t *testing.T) {
	rt := backend.NewRouter()
	rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"})
	rl, _ := rules.New(rules.Config{Keywords: map[string][]string{"helpfulness": {`\bbecause\b`}}})
	eng := steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": rl}, Limits: steering.Limits{MaxSamples: 16},
		Responses: steering.NewResponseCache(cache.NewMemory(1<<20), true, time.Hour, 1<<20, nil)})
	e := serveWith(t, defaultOptions(), rt, eng)
	for _, c := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"seed":3,"max_tokens":24,"n":2,"logprobs":true,"steering":{"strategy":"best_of_n","n":3}}`},
		{"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"Say <hi> & go"}],"seed":3,"max_tokens":8,"steering":{"strategy":"none","cache":{"mode":"on"}}}`},
		{"/v1/completions", `{"model":"reference","prompt":"Once upon a time","seed":5,"max_tokens":16,"steering":{"strategy":"best_of_n","n":2}}`},
	} {
		st, miss := postCache(t, e.url+c.path, c.body)
		if st != "miss" {
			t.Fatalf("%s: first X-Cache %q", c.body, st)
		}
		st, hit := postCache(t, e.url+c.path, c.body)
		if st != "hit" {
			t.Fatalf("%s: second X-Cache %q", c.body, st)
		}
		ms, err := wire.Members([]byte(hit))
		if err != nil || len(ms) < 5 {
			t.Fatalf("hit %s: %v", hit, err)
		}
		for i, k := range []string{"id", "object", "created", "model", "choices"} {
			if string(ms[i].Key) != k {
				t.Fatalf("hit member %d is %q, want %q: %s", i, ms[i].Key, k, hit)
			}
		}
		var a, b map[string]any
		if err := json.Unmarshal([]byte(miss), &a); err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal([]byte(hit), &b); err != nil {
			t.Fatal(err)
		}
		if a["id"] == b["id"] || b["id"] == "" || b["created"].(float64) < a["created"].(float64) {
			t.Errorf("hit head: id %v created %v after %v %v", b["id"], b["created"], a["id"], a["created"])
		}
		for _, u := range b["usage"].(map[string]any) {
			if n, ok := u.(float64); ok && n != 0 {
				t.Errorf("hit usage %v, want zeros", b["usage"])
			}
		}
		if s, ok := a["steering"].(map[string]any); ok {
			s["cached"] = true
		}
		for _, k := range []string{"id", "created", "usage"} {
			delete(a, k)
			delete(b, k)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s\nmiss %s\nhit  %s", c.body, miss, hit)
		}
	}
}
