package gateway_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/cache/cachetest"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rules"
	"github.com/steergate/steergate/steering"
)

// TestChaos throws at a gateway, for a bounded time on loopback: random
// requests from a grammar of the OpenAI request and mutations of them,
// clients that hang up at random, a Redis paused and resumed, and a backend
// that answers huge, truncated and malformed bodies or hangs. The gateway
// must answer every request with a valid response or the error envelope,
// never fail a well-formed request the healthy backend answered, and stay
// within bounds of memory and metric series.
func TestChaos(t *testing.T) {
	srv := cachetest.StartRedis(t)
	rc := cache.NewRedis(cache.RedisOptions{Addrs: []string{srv.Addr}, Prefix: "chaos:", DialTimeout: 100 * time.Millisecond,
		ReadTimeout: 50 * time.Millisecond, WriteTimeout: 50 * time.Millisecond, BreakerCooldown: 100 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { rc.Close() })
	bad := startBadUpstream(t)
	rt := backend.NewRouter()
	rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{TokenDelay: 2 * time.Millisecond}), Target: "reference"})
	rt.Add(backend.Route{Name: "bad", Backend: compatBackend(t, "bad", bad, 256<<10), Target: "bad"})
	r, _ := rules.New(rules.Config{})
	reg := prometheus.NewRegistry()
	opts := defaultOptions()
	opts.MaxInflight, opts.MaxQueue, opts.MaxBodyBytes, opts.RequestTimeout = 16, 256, 256<<10, 5*time.Second
	opts.Metrics = metrics.New(reg)
	eng := steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": rm.NewCached(r, "rules", rc, time.Minute, nil)},
		Limits: steering.Limits{MaxSamples: 16, MaxCacheTTL: 3600}, Metrics: opts.Metrics,
		Responses: steering.NewResponseCache(rc, true, time.Minute, 1<<20, opts.Metrics)})
	e := serveWith(t, opts, rt, eng)

	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { // Redis hangs now and then
		defer bg.Done()
		probes := 0
		for {
			select {
			case <-stop:
				srv.Resume()
				return
			case <-time.After(700 * time.Millisecond):
			}
			srv.Pause()
			// One cacheable request while Redis hangs, so that every run
			// meets a hung Redis, whatever the workers happen to send.
			probe := fmt.Sprintf(`{"model":"reference","messages":[{"role":"user","content":"probe"}],"max_tokens":2,"seed":%d}`, probes)
			probes++
			if resp, err := http.Post(e.url+"/v1/chat/completions", "application/json", strings.NewReader(probe)); err != nil {
				t.Errorf("a request while Redis hangs: %v", err)
			} else {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Errorf("a request while Redis hangs: %d %s", resp.StatusCode, b)
				}
			}
			select {
			case <-stop:
			case <-time.After(300 * time.Millisecond):
			}
			srv.Resume()
		}
	}()
	var peakHeap atomic.Uint64
	go func() {
		defer bg.Done()
		for {
			var m runtime.MemStats
			runtime.ReadMemStats(&m)
			if m.HeapInuse > peakHeap.Load() {
				peakHeap.Store(m.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()

	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	counts := map[int]int{}
	deadline := time.Now().Add(6 * time.Second)
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			for i := 0; time.Now().Before(deadline); i++ {
				req := withLeaving(chaosRequest(rng), rng)
				status, err := send(hc, e.url, req, rng)
				mu.Lock()
				counts[status]++
				mu.Unlock()
				if err != nil {
					t.Errorf("worker %d request %d (%s): %v\nbody: %.300s", w, i, req.kind, err, req.body)
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	t.Logf("statuses %v (-1: the client left), peak heap %d MiB, Redis: %d errors, %d skipped reads", counts, peakHeap.Load()>>20,
		rc.Errors.Load(), rc.Skipped.Load())
	if counts[200] < 50 || counts[502] == 0 || counts[400] == 0 || counts[-1] == 0 || rc.Errors.Load() == 0 {
		t.Errorf("the load did not exercise the gateway: statuses %v, Redis errors %d", counts, rc.Errors.Load())
	}
	if peak := peakHeap.Load(); peak > 768<<20 {
		t.Errorf("heap peaked at %d MiB", peak>>20)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	if series > 400 {
		t.Errorf("%d metric series", series)
	}
	// The gateway still serves.
	if status, _, body := post(t, e.url+"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":3}`); status != 200 {
		t.Errorf("after the chaos: %d %s", status, body)
	}
}

// chaosReq is one generated request and what it must get.
type chaosReq struct {
	kind   string // good, mutated, bad-backend
	body   []byte
	stream bool
	leave  time.Duration // the client hangs up after this (0: never)
}

var chaosContents = []string{`"hi"`, `"Why is the sky blue?"`, `""`, `[{"type":"text","text":"a"},{"type":"text","text":"b"}]`,
	`[{"type":"image_url","image_url":{"url":"data:image/png;base64,AA=="}}]`, `null`, `5`, `"` + strings.Repeat("long ", 400) + `"`}

var chaosSteering = []string{``, `,"steering":{"strategy":"best_of_n","n":3}`, `,"steering":{"strategy":"adaptive","max_samples":4}`,
	`,"steering":{"strategy":"self_consistency","n":3}`, `,"steering":{"strategy":"nope"}`, `,"steering":{"cache":{"mode":"on","ttl_s":60}}`,
	`,"steering":{"weights":{"verbosity":-1}}`, `,"steering":[1]`}

func chaosRequest(rng *rand.Rand) chaosReq {
	pick := func(xs []string) string { return xs[rng.IntN(len(xs))] }
	r := chaosReq{stream: rng.IntN(3) == 0}
	if rng.IntN(10) < 4 {
		// Well-formed, for the healthy backend: it must be answered.
		r.kind = "good"
		steer := []string{``, `,"steering":{"strategy":"best_of_n","n":2}`, `,"steering":{"strategy":"self_consistency","n":2}`}[rng.IntN(3)]
		r.body = fmt.Appendf(nil, `{"model":"reference","messages":[{"role":"user","content":"Tell me about %s."}],"max_tokens":%d,"seed":%d,"stream":%v%s}`,
			pick([]string{"bread", "tea", "the ocean", "sleep"}), 1+rng.IntN(30), rng.IntN(5), r.stream, steer)
		return r
	}
	if rng.IntN(3) == 0 {
		// Well-formed, for the backend that misbehaves.
		r.kind = "bad-backend"
		r.body = fmt.Appendf(nil, `{"model":"bad","messages":[{"role":"user","content":"hi"}],"seed":%d,"stream":%v%s}`,
			rng.IntN(5), r.stream, []string{``, `,"steering":{"strategy":"best_of_n","n":3}`}[rng.IntN(2)])
		return r
	}
	model := "reference"
	r.kind = "mutated"
	var msgs []string
	for range 1 + rng.IntN(4) {
		msgs = append(msgs, fmt.Sprintf(`{"role":%q,"content":%s}`, pick([]string{"user", "system", "assistant", "tool", "wizard"}), pick(chaosContents)))
	}
	r.body = fmt.Appendf(nil, `{"model":%q,"messages":[%s],"max_tokens":%d,"temperature":%g,"n":%d,"seed":%d,"stream":%v%s}`,
		model, strings.Join(msgs, ","), rng.IntN(60)-5, rng.Float64()*3, rng.IntN(4), rng.IntN(12), r.stream, pick(chaosSteering))
	switch rng.IntN(6) {
	case 0: // flip bytes
		for range 1 + rng.IntN(5) {
			r.body[rng.IntN(len(r.body))] = byte(rng.IntN(256))
		}
	case 1: // truncate
		r.body = r.body[:rng.IntN(len(r.body))]
	case 2: // the same key in another case
		r.body = bytes.Replace(r.body, []byte(`"max_tokens"`), []byte(`"MAX_TOKENS":999,"max_tokens"`), 1)
	case 3: // deep nesting
		r.body = bytes.Replace(r.body, []byte(`"seed"`), []byte(`"deep":`+strings.Repeat("[", 5000)+strings.Repeat("]", 5000)+`,"seed"`), 1)
	}
	return r
}

// withLeaving makes some requests clients that hang up at random.
func withLeaving(r chaosReq, rng *rand.Rand) chaosReq {
	if rng.IntN(6) == 0 {
		r.leave = time.Duration(rng.IntN(60)) * time.Millisecond
	}
	return r
}

// send posts a request and checks the answer is well-formed: a completion,
// a stream ending in [DONE] (maybe after an error event), or the error
// envelope; a well-formed request to the healthy backend must succeed.
func send(hc *http.Client, url string, r chaosReq, rng *rand.Rand) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if r.leave > 0 {
		time.AfterFunc(r.leave, cancel)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/chat/completions", bytes.NewReader(r.body))
	resp, err := hc.Do(req)
	if err != nil {
		if r.leave > 0 {
			return -1, nil // the client left
		}
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		if r.leave > 0 {
			return resp.StatusCode, nil
		}
		return resp.StatusCode, fmt.Errorf("reading the answer: %v", err)
	}
	if r.kind == "good" && resp.StatusCode != 200 && r.leave == 0 {
		return resp.StatusCode, fmt.Errorf("a well-formed request to the healthy backend got %d: %.300s", resp.StatusCode, body)
	}
	if resp.StatusCode != 200 {
		var env struct {
			Error struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"error"`
		}
		if json.Unmarshal(body, &env) != nil || env.Error.Message == "" || env.Error.Type == "" {
			return resp.StatusCode, fmt.Errorf("status %d without the error envelope: %.300s", resp.StatusCode, body)
		}
		if resp.StatusCode >= 500 && resp.StatusCode != 502 && resp.StatusCode != 503 && resp.StatusCode != 504 {
			return resp.StatusCode, fmt.Errorf("status %d: %.300s", resp.StatusCode, body)
		}
		return resp.StatusCode, nil
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		sc := bufio.NewScanner(bytes.NewReader(body))
		sc.Buffer(nil, 4<<20)
		last := ""
		for sc.Scan() {
			line := sc.Text()
			if data, ok := strings.CutPrefix(line, "data: "); ok {
				if data != "[DONE]" && !json.Valid([]byte(data)) {
					return 200, fmt.Errorf("invalid event %.200s", data)
				}
				last = data
			}
		}
		if last != "[DONE]" {
			return 200, fmt.Errorf("stream did not end with [DONE]: %.300s", body[max(0, len(body)-300):])
		}
		return 200, nil
	}
	var c struct {
		Choices []json.RawMessage `json:"choices"`
	}
	if json.Unmarshal(body, &c) != nil || len(c.Choices) == 0 {
		return 200, fmt.Errorf("200 without a completion: %.300s", body)
	}
	return 200, nil
}

// startBadUpstream is an OpenAI-compatible server that misbehaves in turns:
// a body over the gateway's limit, a truncated body, malformed JSON, a
// stream cut short, an error status, a hang until the client leaves, and
// now and then a proper answer.
func startBadUpstream(t *testing.T) string {
	t.Helper()
	var n atomic.Int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		ok := `{"id":"x","object":"chat.completion","created":1,"model":"bad","choices":[{"index":0,"message":{"role":"assistant","content":"fine"},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`
		switch n.Add(1) % 7 {
		case 0:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"`)
			io.WriteString(w, strings.Repeat("z", 1<<20))
			io.WriteString(w, `"}}]}`)
		case 1:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, ok[:len(ok)/2])
		case 2:
			io.WriteString(w, `not json at all`)
		case 3:
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"par\"}}]}\n\ndata: {broken\n\n")
		case 4:
			w.WriteHeader(500)
			io.WriteString(w, `{"error":{"message":"boom"}}`)
		case 5:
			<-r.Context().Done()
		default:
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, ok)
		}
	})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/v1"
}
