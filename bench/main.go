package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steergate/steergate/eval"
	"github.com/valyala/fasthttp"
)

func main() {
	out := flag.String("out", "docs/benchmarks.md", "markdown report to write")
	bin := flag.String("bin", "bin/steergate", "steergate binary")
	dur := flag.Duration("duration", 3*time.Second, "length of one measured run")
	rounds := flag.Int("rounds", 3, "interleaved repetitions of every run")
	only := flag.String("only", "", "run one section and print it: peers, steering, cache, load, eval, particles")
	bare := flag.String("bare-proxy", "", "serve as the bare Go proxy of the peer benchmark: LISTEN,UPSTREAM")
	flag.Parse()
	if *bare != "" {
		listen, upstream, _ := strings.Cut(*bare, ",")
		if err := bareProxy(listen, upstream); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if *only != "" {
		var md strings.Builder
		var err error
		switch *only {
		case "load":
			err = streamingLoad(*bin, &md, 1000, *rounds)
		case "cache":
			err = cacheHits(*bin, &md, *dur, *rounds)
		case "steering":
			err = steeringWallTime(*bin, &md, *rounds)
		case "peers":
			err = peers(*bin, &md, *dur, *rounds)
		case "eval":
			err = evalCurve(*bin, &md, filepath.Dir(*out))
		case "particles":
			err = particlesCurve(*bin, &md, filepath.Dir(*out))
		default:
			err = fmt.Errorf("unknown section %q", *only)
		}
		fmt.Print(md.String())
		if err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(*bin, *out, *dur, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func freePort() string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// proc is a target process.
type proc struct {
	name string
	addr string
	cmd  *exec.Cmd
}

func startProc(name, addr string, args ...string) (*proc, error) {
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &proc{name: name, addr: addr, cmd: cmd}
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return p, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.stop()
	return nil, fmt.Errorf("%s did not listen on %s", name, addr)
}

func (p *proc) stop() {
	_ = p.cmd.Process.Signal(os.Interrupt)
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// cpu returns the process's user+system CPU time so far.
func (p *proc) cpu() time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100 // USER_HZ
}

// result is one measured run.
type result struct {
	lat      []time.Duration // per request (or to first byte when streaming)
	gaps     []time.Duration // streaming: mean time between chunks, per request
	requests int
	errors   int
	elapsed  time.Duration
	cpu      time.Duration // target CPU during the run
}

func (r result) pct(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	s := slices.Clone(r.lat)
	slices.Sort(s)
	return s[min(len(s)-1, int(p*float64(len(s))))]
}

func (r result) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// load runs a closed loop of conc clients against url for d. With stream,
// latency is the time to the first SSE data chunk.
func load(url string, body []byte, conc int, d time.Duration, stream bool, target *proc) result {
	return loadWith(url, nil, body, conc, d, stream, target.cpu)
}

// loadWith is load with request headers and any CPU meter.
func loadWith(url string, headers map[string]string, body []byte, conc int, d time.Duration, stream bool, cpuOf func() time.Duration) result {
	hc := &fasthttp.Client{MaxConnsPerHost: conc * 2, StreamResponseBody: stream, ReadTimeout: 30 * time.Second}
	var (
		mu     sync.Mutex
		res    result
		errs   atomic.Int64
		wg     sync.WaitGroup
		stopAt = time.Now().Add(d)
	)
	cpu0 := cpuOf()
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lat := make([]time.Duration, 0, 4096)
			var gaps []time.Duration
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			for time.Now().Before(stopAt) {
				req.Reset()
				req.SetRequestURI(url)
				if body != nil { // else a GET
					req.Header.SetMethod("POST")
					req.Header.SetContentType("application/json")
					req.SetBody(body)
				}
				for k, v := range headers {
					req.Header.Set(k, v)
				}
				t0 := time.Now()
				err := hc.Do(req, resp)
				if err == nil && resp.StatusCode() != 200 {
					err = fmt.Errorf("status %d", resp.StatusCode())
				}
				if err == nil && stream {
					// Time every event: the first is the time to first
					// token, the rest give the delay between chunks.
					br := bufio.NewReader(resp.BodyStream())
					var first, last time.Time
					events := 0
					for {
						line, rerr := br.ReadSlice('\n')
						if bytes.HasPrefix(line, []byte("data: ")) {
							now := time.Now()
							if events == 0 {
								first = now
							}
							last = now
							events++
						}
						if rerr != nil {
							break
						}
					}
					if events == 0 {
						err = errors.New("no events")
					} else {
						lat = append(lat, first.Sub(t0))
						if events > 1 {
							gaps = append(gaps, last.Sub(first)/time.Duration(events-1))
						}
					}
					_ = resp.CloseBodyStream()
				} else if err == nil {
					lat = append(lat, time.Since(t0))
				}
				if err != nil {
					errs.Add(1)
				}
			}
			mu.Lock()
			res.lat = append(res.lat, lat...)
			res.gaps = append(res.gaps, gaps...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	res.requests = len(res.lat)
	res.errors = int(errs.Load())
	res.cpu = cpuOf() - cpu0
	return res
}

// median of a metric over rounds, with min and max as the spread.
type stat struct{ med, lo, hi float64 }

func summarize(xs []float64) stat {
	s := slices.Clone(xs)
	slices.Sort(s)
	return stat{s[len(s)/2], s[0], s[len(s)-1]}
}

func (s stat) us() string {
	return fmt.Sprintf("%.0f µs (%.0f–%.0f)", s.med, s.lo, s.hi)
}

func run(bin, out string, d time.Duration, rounds int) error {
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("%s: build it first (make build): %w", bin, err)
	}
	var md strings.Builder
	host, _ := os.Hostname()
	fmt.Fprintf(&md, "# Benchmarks\n\nWritten by `make bench` (`go run ./bench`) on %s: %d CPUs, %s/%s, %s. "+
		"Each figure is the median of %d interleaved runs of %s, with the lowest and highest in brackets. "+
		"The machine is shared and noisy: compare figures within one table, not across runs or machines.\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH, host, rounds, d)
	if err := peers(bin, &md, d, rounds); err != nil {
		return err
	}
	if err := steeringWallTime(bin, &md, rounds); err != nil {
		return err
	}
	if err := cacheHits(bin, &md, d, rounds); err != nil {
		return err
	}
	if err := streamingLoad(bin, &md, 1000, rounds); err != nil {
		return err
	}
	if err := evalCurve(bin, &md, filepath.Dir(out)); err != nil {
		return err
	}
	if err := particlesCurve(bin, &md, filepath.Dir(out)); err != nil {
		return err
	}
	md.WriteString("\n## In-process benchmarks\n\nGo benchmarks, reproduced by the command above each table.\n")
	for _, gb := range []struct{ title, pkg, pattern string }{
		{"The gateway per request, in process: a passthrough relayed to the reference server on loopback, streamed and not, the same request to the reference server itself, a best-of-4 answered from the in-memory response cache, and the relay's work on one stream of 40 token events", "./gateway/", "Passthrough|Direct|CacheHit|RelayEvents"},
		{"Decoding and checking a chat request: a small one, and one with a 20 KB prompt with line breaks", "./wire/", "DecodeChat"},
		{"Tokenizer throughput (a mixed English, code and Unicode text, 20 repeats)", "./rm/tokenizer/", "Encode"},
		{"Scoring with the test reward model (ONNX Runtime, CPU), one call of N responses", "./rm/onnx/", "ScoreBatch"},
		{"64 concurrent callers scoring one response each, with and without dynamic batching", "./rm/onnx/", "ConcurrentCallers"},
	} {
		if err := goBench(&md, gb.title, gb.pkg, gb.pattern); err != nil {
			return err
		}
	}
	md.WriteString("\n### Where the gateway's time goes\n\nCPU profiles of the in-process benchmarks behind the missed passthrough and cache-hit targets, " +
		"the top functions by cumulative time (the load generator and the reference server run in the same process and show up too).\n")
	for _, b := range []string{"Passthrough", "CacheHit"} {
		if err := goProfile(&md, "./gateway/", b); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(out, []byte(md.String()), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", out)
	return nil
}

// steeringWallTime measures best-of-N wall time against one sample through
// the gateway, with the reference server streaming at a fixed per-token
// delay so that samples cost real time and the backend serves them in
// parallel. Reward scoring (the rules reward) is included.
func steeringWallTime(bin string, md *strings.Builder, rounds int) error {
	const tokenDelay = 4 * time.Millisecond
	refAddr := freePort()
	// Every request's first token takes a token's time too: a one-token
	// request (a guided step) is not free.
	ref, err := startProc("reference", refAddr, bin, "reference-server", "--listen", refAddr, "--token-delay", tokenDelay.String(),
		"--first-token-delay", tokenDelay.String())
	if err != nil {
		return err
	}
	defer ref.stop()
	gw, url, err := gateway{name: "steering", upstream: refAddr, route: `    steering:
      reward: default
      weights: {helpfulness: 1, repetition: -2, verbosity: -0.2, format: 1}
`, extra: `rewards:
  default:
    type: rules
    rules:
      keywords:
        helpfulness: ['\bbecause\b', '\bfirst\b', '\bhelps?\b']
    normalize:
      verbosity: {mean: 40, std: 20}
  words:
    type: lexicon
    lexicon:
      helpfulness: ['\bbecause\b', '\bfirst\b', '\bhelps?\b']
` + noResponseCache}.start(bin)
	if err != nil {
		return err
	}
	defer gw.stop()
	body := func(seed int, steer string) []byte {
		return []byte(`{"model":"reference","messages":[{"role":"user","content":"Tell me about the ocean."}],"max_tokens":32,"seed":` +
			strconv.Itoa(seed) + steer + `}`)
	}
	timed := func(b []byte) (float64, error) {
		t0 := time.Now()
		err := post(url, b)
		return float64(time.Since(t0).Microseconds()) / 1000, err
	}
	ns := []int{1, 2, 4, 8, 16}
	wall, slowest := map[int][]float64{}, map[int][]float64{}
	const perRound = 8
	for range rounds {
		// Each of best-of-16's samples alone (seeds 7, 8, …: the seeds
		// best-of-N gives its samples): a best-of-N cannot be faster than
		// the slowest of its samples.
		alone := make([]float64, 16)
		for i := range alone {
			var ts []float64
			for range perRound / 2 {
				t, err := timed(body(7+i, ""))
				if err != nil {
					return err
				}
				ts = append(ts, t)
			}
			slices.Sort(ts)
			alone[i] = ts[len(ts)/2]
		}
		for _, n := range ns {
			steer := `,"steering":{"strategy":"best_of_n","n":` + strconv.Itoa(n) + `}`
			if n == 1 {
				steer = "" // one plain sample: the baseline
			}
			var ts []float64
			for range perRound {
				t, err := timed(body(7, steer))
				if err != nil {
					return err
				}
				ts = append(ts, t)
			}
			slices.Sort(ts)
			wall[n] = append(wall[n], ts[len(ts)/2])
			slowest[n] = append(slowest[n], slices.Max(alone[:n]))
		}
	}
	fmt.Fprintf(md, "\n## Best-of-N wall time\n\nThrough `steergate serve` to the reference server with a %s delay before each token, the first included "+
		"(samples of up to 32 tokens served in parallel), rules reward scoring included; one request at a time, "+
		"median of %d requests per round, median of %d rounds (lowest–highest). N = 1 is a plain single sample. The samples of one "+
		"request differ in length, so best-of-N lasts at least as long as its slowest sample: the last column compares it with that "+
		"sample requested alone (seeds 7 … 7+N−1, the seeds best-of-N gives its samples), which is the gateway's and the reward's share.\n\n"+
		"| N | wall time (ms) | ratio to one sample | slowest of its samples alone (ms) | ratio to that |\n|---|---|---|---|---|\n", tokenDelay, perRound, rounds)
	base := summarize(wall[1]).med
	for _, n := range ns {
		s, sl := summarize(wall[n]), summarize(slowest[n])
		fmt.Fprintf(md, "| %d | %.1f (%.1f–%.1f) | %.2f | %.1f | %.2f |\n", n, s.med, s.lo, s.hi, s.med/base, sl.med, s.med/sl.med)
	}
	r8 := summarize(wall[8]).med / summarize(slowest[8]).med
	fmt.Fprintf(md, "\nTarget: best-of-8 at most 1.1 times the wall time of its slowest sample alone: %s (%.2f; %.2f times one sample's).\n",
		metOr(r8 <= 1.1), r8, summarize(wall[8]).med/base)
	if err := particlesTiming(url, md, tokenDelay, rounds); err != nil {
		return err
	}
	return guidedTiming(url, md, tokenDelay, rounds)
}

// guidedTiming compares guided decoding with a plain answer through the
// same gateway: tokens per second, and the time to the first streamed
// text against a step's wall time; then the token-reward time of one step
// with the test ARM from the Go benchmark.
func guidedTiming(url string, md *strings.Builder, tokenDelay time.Duration, rounds int) error {
	type run struct{ tps, stepMS, firstMS []float64 }
	measure := func(steer string) (run, error) {
		var r run
		for i := range rounds * 4 {
			body := []byte(`{"model":"reference","messages":[{"role":"user","content":"Tell me about the ocean."}],"max_tokens":32,"seed":` +
				strconv.Itoa(11+i) + steer + `}`)
			t0 := time.Now()
			resp, err := http.Post(url, "application/json", bytes.NewReader(body))
			if err != nil {
				return r, err
			}
			var out struct {
				Usage struct {
					CompletionTokens int `json:"completion_tokens"`
				} `json:"usage"`
				Steering struct {
					Steps int `json:"steps"`
				} `json:"steering"`
			}
			err = json.NewDecoder(resp.Body).Decode(&out)
			resp.Body.Close()
			if err != nil || out.Usage.CompletionTokens == 0 {
				return r, fmt.Errorf("guided timing %s: %v", steer, err)
			}
			took := time.Since(t0)
			r.tps = append(r.tps, float64(out.Usage.CompletionTokens)/took.Seconds())
			r.stepMS = append(r.stepMS, float64(took.Microseconds())/1000/float64(max(1, out.Steering.Steps)))
			stream := bytes.Replace(body, []byte(`"max_tokens"`), []byte(`"stream":true,"max_tokens"`), 1)
			_, ft, err := streamFirsts(url, stream)
			if err != nil {
				return r, err
			}
			r.firstMS = append(r.firstMS, ft)
		}
		return r, nil
	}
	plain, err := measure(`,"steering":{"strategy":"none","cache":{"mode":"off"}}`)
	if err != nil {
		return err
	}
	guided, err := measure(`,"steering":{"strategy":"guided","k":8,"cache":{"mode":"off"}}`)
	if err != nil {
		return err
	}
	p, g := summarize(plain.tps), summarize(guided.tps)
	step, first, pfirst := summarize(guided.stepMS), summarize(guided.firstMS), summarize(plain.firstMS)
	fmt.Fprintf(md, "\n## Guided decoding: throughput and time to first token\n\nThrough the same gateway and reference server (%s a token, the first included), "+
		"answers of up to 32 tokens, %d requests each, medians (lowest–highest); guided with k = 8 and the lexicon reward, one backend call a token.\n\n"+
		"| | tokens per second | time to the first streamed text (ms) |\n|---|---|---|\n| `none` | %.0f (%.0f–%.0f) | %.1f (%.1f–%.1f) |\n"+
		"| `guided` | %.0f (%.0f–%.0f) | %.1f (%.1f–%.1f) |\n\nGuided's tokens per second are %.2f of a plain answer's; a guided step takes %.1f ms.\n\n"+
		"Target: guided's first streamed token within two steps' wall time: %s (%.1f ms against %.1f ms).\n",
		tokenDelay, len(plain.tps), p.med, p.lo, p.hi, pfirst.med, pfirst.lo, pfirst.hi, g.med, g.lo, g.hi, first.med, first.lo, first.hi,
		g.med/p.med, step.med, metOr(first.med <= 2*step.med), first.med, 2*step.med)
	// Each op grows the answer by a token, so an op count bounds a run;
	// the median of several runs steadies the figures instead.
	args := []string{"test", "-run", "-", "-bench", "ARMStep", "-benchtime", "100x", "-count", "5", "./rm/onnx/"}
	out, err := exec.Command("go", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	runs := map[string][]float64{}
	fmt.Fprintf(md, "\nToken-reward time of one guided step with the test ARM on the CPU, 8 one-token candidates, the answer growing by a token an op from "+
		"16, 64 and 256 tokens, the median of 5 runs (`go %s`):\n\n| model | from 16 tokens (ms) | from 64 | from 256 |\n|---|---|---|---|\n", strings.Join(args, " "))
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && strings.HasPrefix(f[0], "BenchmarkARMStep/") {
			v, _ := strconv.ParseFloat(f[2], 64)
			name := strings.TrimSuffix(strings.TrimPrefix(f[0], "BenchmarkARMStep/"), "-"+strconv.Itoa(runtime.GOMAXPROCS(0)))
			runs[name] = append(runs[name], v/1e6)
		}
	}
	ms := map[string]float64{}
	for name, xs := range runs {
		ms[name] = summarize(xs).med
	}
	for _, m := range []string{"arm_kv", "arm"} {
		fmt.Fprintf(md, "| `%s` | %.3f | %.3f | %.3f |\n", m, ms[m+"/answer=16"], ms[m+"/answer=64"], ms[m+"/answer=256"])
	}
	kv16, kv256 := ms["arm_kv/answer=16"], ms["arm_kv/answer=256"]
	fmt.Fprintf(md, "\n`arm_kv` exports its key/value cache and is fed one new token a step; `arm` reads the whole context each step. "+
		"In both, the context is tokenized from a cached head near its end, and each candidate from the context's last word.\n\n"+
		"Target: token-reward time of a step at k = 8 under 1 ms: %s (%.3f ms from 256 tokens with the key/value model).\n\n"+
		"Target: with past key/values, per-step reward time flat in answer length: %s (from 256 tokens it is %.2f times its time from 16).\n\n"+
		"GPU: `make bench` runs on the CPU; `docs/gpu.md` has the test ARM and dynamic batching on CUDA, measured on a GPU.\n",
		metOr(kv256 > 0 && kv256 < 1), kv256, metOr(kv256 <= 1.25*kv16), kv256/kv16)
	return nil
}

// particlesTiming measures a particles request through the same gateway:
// its steps and wall time (so a step's wall time), the time to the first
// streamed byte and to the first streamed text, against the gateway's own
// work per step from the Go benchmark.
func particlesTiming(url string, md *strings.Builder, tokenDelay time.Duration, rounds int) error {
	const steer = `,"steering":{"strategy":"particles","n":8,"cache":{"mode":"off"}}`
	req := func(stream bool) []byte {
		return []byte(`{"model":"reference","messages":[{"role":"user","content":"Tell me about the ocean."}],"max_tokens":48,"seed":7,"stream":` +
			strconv.FormatBool(stream) + steer + `}`)
	}
	var stepMS, firstByte, firstText []float64
	for r := range rounds * 4 {
		body := bytes.Replace(req(false), []byte(`"seed":7`), []byte(`"seed":`+strconv.Itoa(7+r)), 1)
		t0 := time.Now()
		resp, err := http.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		var out struct {
			Steering struct {
				Steps int `json:"steps"`
			} `json:"steering"`
		}
		err = json.NewDecoder(resp.Body).Decode(&out)
		resp.Body.Close()
		if err != nil || out.Steering.Steps == 0 {
			return fmt.Errorf("particles request: %v (%d steps)", err, out.Steering.Steps)
		}
		stepMS = append(stepMS, float64(time.Since(t0).Microseconds())/1000/float64(out.Steering.Steps))
		fb, ft, err := streamFirsts(url, bytes.Replace(req(true), []byte(`"seed":7`), []byte(`"seed":`+strconv.Itoa(7+r)), 1))
		if err != nil {
			return err
		}
		firstByte, firstText = append(firstByte, fb), append(firstText, ft)
	}
	step, fb, ft := summarize(stepMS), summarize(firstByte), summarize(firstText)
	perStep, err := benchNsPerStep()
	if err != nil {
		return err
	}
	share := perStep / 1e6 / step.med
	fmt.Fprintf(md, "\n## Particles: gateway work and time to first byte\n\n`{\"strategy\":\"particles\",\"n\":8}` (defaults) through the same "+
		"gateway and reference server (%s a token), %d requests of up to 48 tokens, medians (lowest–highest).\n\n"+
		"| measure | ms |\n|---|---|\n| a step's wall time (request time over its steps) | %.1f (%.1f–%.1f) |\n"+
		"| time to the first streamed byte | %.1f (%.1f–%.1f) |\n| time to the first streamed text | %.1f (%.1f–%.1f) |\n"+
		"| the gateway's own work per step (`go test -bench ParticlesStep ./steering/`: 8 particles, an instant backend and a free reward) | %.3f |\n\n"+
		"The first byte is the opening chunk, sent as the particles start; text follows once every particle shares it, which with "+
		"particles that never agree is at the end.\n\n"+
		"Target: the gateway's work per step under 1%% of a step's wall time: %s (%.2f%%).\n\nTarget: the first streamed byte within two steps' wall time: %s (%.1f ms against %.1f ms).\n",
		tokenDelay, len(stepMS), step.med, step.lo, step.hi, fb.med, fb.lo, fb.hi, ft.med, ft.lo, ft.hi, perStep/1e6,
		metOr(share < 0.01), 100*share, metOr(fb.med <= 2*step.med), fb.med, 2*step.med)
	return nil
}

// streamFirsts streams a chat request and returns the milliseconds to the
// first byte of the body and to the first chunk with text.
func streamFirsts(url string, body []byte) (float64, float64, error) {
	t0 := time.Now()
	resp, err := http.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if _, err := br.Peek(1); err != nil {
		return 0, 0, err
	}
	first := float64(time.Since(t0).Microseconds()) / 1000
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return 0, 0, fmt.Errorf("stream ended without text: %w", err)
		}
		if strings.Contains(line, `"content":"`) && !strings.Contains(line, `"content":""`) {
			return first, float64(time.Since(t0).Microseconds()) / 1000, nil
		}
	}
}

// benchNsPerStep runs the particles step benchmark and returns its ns/step.
func benchNsPerStep() (float64, error) {
	out, err := exec.Command("go", "test", "-run", "-", "-bench", "ParticlesStep", "-benchtime", "2s", "./steering/").CombinedOutput()
	if err != nil {
		return 0, fmt.Errorf("go test -bench ParticlesStep: %w\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		for i := 1; i < len(f); i++ {
			if f[i] == "ns/step" {
				return strconv.ParseFloat(f[i-1], 64)
			}
		}
	}
	return 0, fmt.Errorf("no ns/step in:\n%s", out)
}

// post sends one request and checks it succeeded.
func post(url string, body []byte) error {
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	defer fasthttp.ReleaseRequest(req)
	defer fasthttp.ReleaseResponse(resp)
	req.SetRequestURI(url)
	req.Header.SetMethod("POST")
	req.SetBody(body)
	if err := fasthttp.DoTimeout(req, resp, time.Minute); err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
	}
	return nil
}

// The evaluation behind "Reward against compute": reported on the test
// split with seeds the defaults were never tuned with.
var (
	evalArgs = []string{"eval", "--config", "configs/default.yaml", "--prompts", "test", "--seeds", "4", "--first-seed", "1000000",
		"--token-delay", "1ms", "--concurrency", "8"}
	// Beside best-of-N and adaptive's defaults: an absolute threshold and
	// a pruning setting, each chosen on the dev split.
	evalSettings = []string{
		`{"strategy":"best_of_n","n":1}`, `{"strategy":"best_of_n","n":2}`, `{"strategy":"best_of_n","n":4}`,
		`{"strategy":"best_of_n","n":8}`, `{"strategy":"best_of_n","n":16}`, `{"strategy":"adaptive"}`,
		`{"strategy":"adaptive","initial":1,"step":1,"threshold":2.28,"cost":0}`,
		`{"strategy":"adaptive","initial":8,"step":8,"prune_tokens":8,"keep":0.25}`,
	}
)

// evalCurve runs steergate eval and adds its tables, plot and verdict.
func evalCurve(bin string, md *strings.Builder, dir string) error {
	svg := filepath.Join(dir, "eval-curve.svg")
	csvPath := filepath.Join(os.TempDir(), "steergate-eval.csv")
	args := append(slices.Clone(evalArgs), "--out", csvPath, "--svg", svg)
	for _, s := range evalSettings {
		args = append(args, "--setting", s)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	table, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("steergate eval: %w", err)
	}
	verdict, err := adaptiveTarget(csvPath)
	if err != nil {
		return err
	}
	bound, err := thresholdBound(bin)
	if err != nil {
		return err
	}
	shown := slices.Clone(evalArgs)
	for _, s := range evalSettings {
		shown = append(shown, "--setting", "'"+s+"'")
	}
	fmt.Fprintf(md, "\n## Reward against compute\n\n`steergate %s`\n\n"+
		"The embedded default (reference model, rules reward, the route's weights) on the test split (eval/test.jsonl), "+
		"4 fresh seeds a prompt; adaptive's defaults, the threshold and the pruning setting were chosen on the dev split "+
		"(eval/dev.jsonl) with seeds 0–3000, which share no topic and no seed with these runs. Samples of one run use seeds "+
		"s, s+1, …, so best-of-N and adaptive draw the same samples in the same order. The reward is the utility that selects "+
		"(the route's reward and weights); gain is measured over one sample. Wall time is with 1 ms between tokens, 8 runs "+
		"in flight.\n\n%s\n![reward against compute](eval-curve.svg)\n\n%s\n\n%s\n", strings.Join(shown, " "), table, verdict, bound)
	return nil
}

// particlesCurve runs particles and best-of-N through steergate eval on
// the test split with fresh seeds, plots both curves and checks the
// target: at equal backend tokens, particles above best-of-N at every
// budget from 4 to 32 samples' worth.
func particlesCurve(bin string, md *strings.Builder, dir string) error {
	settings := []string{`{"strategy":"best_of_n","n":1}`, `{"strategy":"best_of_n","n":2}`, `{"strategy":"best_of_n","n":4}`,
		`{"strategy":"best_of_n","n":8}`, `{"strategy":"best_of_n","n":16}`, `{"strategy":"best_of_n","n":32}`,
		`{"strategy":"particles","n":2}`, `{"strategy":"particles","n":4}`, `{"strategy":"particles","n":8}`}
	csvPath := filepath.Join(os.TempDir(), "steergate-particles.csv")
	args := []string{"eval", "--config", "configs/default.yaml", "--prompts", "test", "--seeds", "4", "--first-seed", "1000000", "--concurrency", "8"}
	shown := slices.Clone(args)
	for _, st := range settings {
		args = append(args, "--setting", st)
		shown = append(shown, "--setting", "'"+st+"'")
	}
	cmd := exec.Command(bin, append(args, "--out", csvPath, "--svg", filepath.Join(dir, "particles-curve.svg"))...)
	cmd.Stderr = os.Stderr
	table, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("steergate eval: %w", err)
	}
	rows, err := readEvalCSV(csvPath)
	if err != nil {
		return err
	}
	res := &eval.Result{Rows: rows, Baseline: map[int]int{}, Unmatched: map[int]int{}}
	for _, r := range rows {
		for len(res.Settings) <= r.Setting {
			res.Settings = append(res.Settings, "")
		}
		res.Settings[r.Setting] = r.Params
	}
	sum := eval.Summarize(res, 1)
	one := sum[0].Tokens.Mean
	var verdicts []string
	ok, checked := true, 0
	for i, st := range settings {
		if !strings.Contains(st, "particles") {
			continue
		}
		worth := sum[i].Tokens.Mean / one
		n := int(math.Round(worth))
		j := slices.Index(res.Settings, fmt.Sprintf(`{"strategy":"best_of_n","n":%d}`, n))
		if worth < 4 || worth > 32 || j < 0 {
			verdicts = append(verdicts, fmt.Sprintf("`%s` spends %.1f samples' worth of tokens, outside 4–32 or without a best-of-%d run", st, worth, n))
			continue
		}
		checked++
		d := eval.ClusteredBootstrap(eval.PairedDiffs(rows, i, j), eval.BootstrapRounds, 1)
		ok = ok && d.Mean > 0
		verdicts = append(verdicts, fmt.Sprintf("`%s` (%.1f samples' worth) against best-of-%d: %+.4f [%+.4f, %+.4f]", st, worth, n, d.Mean, d.Lo, d.Hi))
	}
	// Per particle against per sample: the same n, its reward and its
	// tokens.
	var why []string
	for i, st := range settings {
		if !strings.Contains(st, "particles") {
			continue
		}
		n := strings.TrimSuffix(strings.TrimPrefix(st, `{"strategy":"particles","n":`), "}")
		j := slices.Index(settings, `{"strategy":"best_of_n","n":`+n+`}`)
		if j >= 0 {
			why = append(why, fmt.Sprintf("n = %s: reward %.4f against best-of-%s's %.4f, with %.1f times its backend tokens", n,
				sum[i].Reward.Mean, n, sum[j].Reward.Mean, sum[i].Tokens.Mean/sum[j].Tokens.Mean))
		}
	}
	verdicts = append(verdicts, "particles against as many samples: "+strings.Join(why, "; ")+
		". A particle costs that many times a sample's backend tokens because every step sends the prompt and the partial answer again")
	fmt.Fprintf(md, "\n## Particles against best-of-N\n\n`steergate %s`\n\nThe embedded default on the test split, 4 fresh seeds a prompt; "+
		"particles' defaults were chosen on the dev split. Backend tokens count prompt and completion tokens of every call: each particles "+
		"step sends the prompt and the partial answer again, which a backend with prefix caching serves cheaply but still counts.\n\n%s\n"+
		"![particles and best-of-N: reward against backend tokens](particles-curve.svg)\n\n"+
		"Target: at equal backend tokens, particles above best-of-N at every budget from 4 to 32 samples' worth: %s (%d budgets checked). "+
		"Paired differences in reward against best-of-N with the nearest number of samples' worth, on the same prompts and seeds:\n\n- %s\n",
		strings.Join(shown, " "), table, metOr(ok && checked > 0), checked, strings.Join(verdicts, "\n- "))
	return nil
}

// adaptiveTarget checks, from eval's CSV, whether adaptive with its
// defaults reaches 90% of best-of-16's mean reward gain over one sample
// with at most 30% of its backend tokens.
func adaptiveTarget(path string) (string, error) {
	rows, err := readEvalCSV(path)
	if err != nil {
		return "", err
	}
	at := func(set string) int { return slices.Index(evalSettings, set) }
	sh := eval.GainShare(rows, at(`{"strategy":"adaptive"}`), at(`{"strategy":"best_of_n","n":1}`), at(`{"strategy":"best_of_n","n":16}`), eval.BootstrapRounds, 1)
	ok := sh.Gain.Mean >= 0.9 && sh.Tokens.Mean <= 0.3
	return fmt.Sprintf("Target: adaptive with its defaults reaches at least 90%% of best-of-16's gain over one sample with at most "+
		"30%% of its backend tokens: %s (%.0f%% [%.0f%%, %.0f%%] of the gain with %.0f%% [%.0f%%, %.0f%%] of the tokens).",
		metOr(ok), 100*sh.Gain.Mean, 100*sh.Gain.Lo, 100*sh.Gain.Hi, 100*sh.Tokens.Mean, 100*sh.Tokens.Lo, 100*sh.Tokens.Hi), nil
}

func readEvalCSV(path string) ([]eval.Row, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return eval.ReadCSV(f)
}

// thresholdBound explains a missed target: on this reward every prompt's
// utilities spread about alike, so the best a stopping rule can do is
// close to a fixed threshold on the best answer so far (the optimal rule
// for draws from one known distribution). It sweeps that threshold on the
// test split itself, which makes the best point an upper bound in
// hindsight, not a result.
func thresholdBound(bin string) (string, error) {
	thresholds := []float64{2.2, 2.24, 2.26, 2.28, 2.3, 2.31, 2.32, 2.33, 2.34, 2.36}
	csvPath := filepath.Join(os.TempDir(), "steergate-eval-bound.csv")
	args := []string{"eval", "--config", "configs/default.yaml", "--prompts", "test", "--seeds", "4", "--first-seed", "1000000",
		"--out", csvPath, "--svg", os.DevNull, "--setting", `{"strategy":"best_of_n","n":1}`, "--setting", `{"strategy":"best_of_n","n":16}`}
	for _, t := range thresholds {
		args = append(args, "--setting", fmt.Sprintf(`{"strategy":"adaptive","initial":1,"step":1,"threshold":%g,"cost":0}`, t))
	}
	cmd := exec.Command(bin, args...)
	cmd.Stderr = os.Stderr
	if _, err := cmd.Output(); err != nil {
		return "", fmt.Errorf("steergate eval: %w", err)
	}
	rows, err := readEvalCSV(csvPath)
	if err != nil {
		return "", err
	}
	// One-way variance components of a single sample's utility (best-of-1
	// rows): how much of its variance lies between prompts.
	by := map[int][]float64{}
	for _, r := range rows {
		if r.Setting == 0 {
			by[r.Prompt] = append(by[r.Prompt], r.Reward)
		}
	}
	var within, k float64
	var means []float64
	for _, xs := range by {
		m, v := meanVar(xs)
		within += v / float64(len(by))
		k += float64(len(xs)) / float64(len(by))
		means = append(means, m)
	}
	_, vm := meanVar(means)
	between := max(0, vm-within/k)
	best, at := eval.Share{}, 0.0
	for i, t := range thresholds {
		sh := eval.GainShare(rows, 2+i, 0, 1, eval.BootstrapRounds, 1)
		if sh.Tokens.Mean <= 0.3 && sh.Gain.Mean > best.Gain.Mean {
			best, at = sh, t
		}
	}
	return fmt.Sprintf("Why: on this reward the prompts differ little. Of a single sample's utility variance, %.0f%% lies between "+
		"prompts (standard deviation %.3f between, %.3f within; one-way variance components of the best-of-1 runs), so there is "+
		"little for a per-prompt rule to adapt to, and the best stopping rule is close to a fixed threshold on the best answer so "+
		"far (the optimal rule for draws from one known distribution). Swept over thresholds %v on the test split itself (a bound "+
		"in hindsight, not a result), the best one within 30%% of the tokens (%g) reaches %.0f%% [%.0f%%, %.0f%%] of the gain with "+
		"%.0f%% of the tokens.", 100*between/(between+within), math.Sqrt(between), math.Sqrt(within),
		thresholds, at, 100*best.Gain.Mean, 100*best.Gain.Lo, 100*best.Gain.Hi, 100*best.Tokens.Mean), nil
}

// meanVar returns the mean and the sample variance.
func meanVar(xs []float64) (float64, float64) {
	var m float64
	for _, x := range xs {
		m += x
	}
	m /= float64(len(xs))
	if len(xs) < 2 {
		return m, 0
	}
	var ss float64
	for _, x := range xs {
		ss += (x - m) * (x - m)
	}
	return m, ss / float64(len(xs)-1)
}

// goBench runs `go test -bench` and adds its results as a table.
func goBench(md *strings.Builder, title, pkg, pattern string) error {
	args := []string{"test", "-run", "-", "-bench", pattern, "-benchtime", "1s", "-benchmem", pkg}
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	fmt.Fprintf(md, "\n### %s\n\n`go %s`\n\n| benchmark | time per op | throughput | allocations per op | bytes per op |\n|---|---|---|---|---|\n", title, strings.Join(args, " "))
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		name := strings.TrimPrefix(f[0], "Benchmark")
		var perOp, rate []string
		allocs, bytes := "", ""
		for i := 2; i+1 < len(f); i += 2 {
			switch {
			case f[i+1] == "ns/op":
				v, _ := strconv.ParseFloat(f[i], 64)
				perOp = append(perOp, fmt.Sprintf("%.1f µs", v/1e3))
			case f[i+1] == "allocs/op":
				allocs = f[i]
			case f[i+1] == "B/op":
				bytes = f[i]
			case strings.HasSuffix(f[i+1], "/s"):
				v, _ := strconv.ParseFloat(f[i], 64)
				rate = append(rate, fmt.Sprintf("%.0f %s", v, f[i+1]))
			}
		}
		fmt.Fprintf(md, "| %s | %s | %s | %s | %s |\n", name, strings.Join(perOp, ", "), strings.Join(rate, ", "), allocs, bytes)
	}
	return nil
}

// goProfile runs one Go benchmark under the CPU profiler and adds pprof's
// top functions by cumulative time.
func goProfile(md *strings.Builder, pkg, bench string) error {
	dir, err := os.MkdirTemp("", "steergate-profile")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin, prof := filepath.Join(dir, "bench.test"), filepath.Join(dir, "cpu.prof")
	args := []string{"test", "-run", "-", "-bench", "^Benchmark" + bench + "$", "-benchtime", "2s", "-o", bin, "-cpuprofile", prof, pkg}
	if out, err := exec.Command("go", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	top, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount", "25", bin, prof).Output()
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	var keep []string
	for _, line := range strings.Split(string(top), "\n") {
		if strings.HasPrefix(line, "File:") || strings.HasPrefix(line, "Build ID:") || strings.HasPrefix(line, "Type:") || strings.HasPrefix(line, "Time:") {
			continue
		}
		keep = append(keep, line)
	}
	fmt.Fprintf(md, "\n`go %s`, then `go tool pprof -top -cum -nodecount 25`:\n\n```\n%s\n```\n", strings.Join(args[:len(args)-5], " ")+" -cpuprofile cpu.prof "+pkg,
		strings.TrimSpace(strings.Join(keep, "\n")))
	return nil
}

// cacheHits measures a cached answer through the gateway, with the cache in
// memory and in Redis, and counts Redis commands per hit.
func cacheHits(bin string, md *strings.Builder, d time.Duration, rounds int) error {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return fmt.Errorf("redis-server is needed for the cache benchmark: %w", err)
	}
	redisAddr, refAddr := freePort(), freePort()
	_, rport, _ := net.SplitHostPort(redisAddr)
	rs, err := startProc("redis", redisAddr, "redis-server", "--port", rport, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err != nil {
		return err
	}
	defer rs.stop()
	ref, err := startProc("reference", refAddr, bin, "reference-server", "--listen", refAddr)
	if err != nil {
		return err
	}
	defer ref.stop()
	start := func(name, cacheCfg string) (*proc, string, error) {
		return gateway{name: name, upstream: refAddr, extra: "rewards:\n  default:\n    type: rules\n" + cacheCfg}.start(bin)
	}
	mem, memURL, err := start("memory", "")
	if err != nil {
		return err
	}
	defer mem.stop()
	red, redURL, err := start("redis", fmt.Sprintf("cache:\n  redis:\n    addrs: [%s]\n", redisAddr))
	if err != nil {
		return err
	}
	defer red.stop()
	body := []byte(`{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":32,"seed":3,"steering":{"strategy":"best_of_n","n":4}}`)
	for _, u := range []string{memURL, redURL} {
		if err := post(u, body); err != nil { // the miss that fills the cache
			return err
		}
	}
	// The gateway writes to Redis in the background: wait for the entry.
	entryKey, err := redisAnswerKey(redisAddr)
	for deadline := time.Now().Add(5 * time.Second); err != nil && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
		entryKey, err = redisAnswerKey(redisAddr)
	}
	if err != nil {
		return err
	}
	type res struct{ p50, p99 []float64 }
	results := map[string]*res{"memory": {}, "redis": {}, "floor": {}, "get": {}, "get0": {}}
	var cmdsPerHit []float64
	hitShare := map[string][]float64{}
	// The floor beside the hits: GET /healthz of the same gateway, one
	// loopback hop into the process and back with nothing decoded or
	// looked up, which is all a hit is besides its own work.
	healthz := strings.TrimSuffix(memURL, "/v1/chat/completions") + "/healthz"
	for range rounds {
		r := load(healthz, nil, 1, d, false, mem)
		results["floor"].p50 = append(results["floor"].p50, float64(r.pct(0.5))/1e3)
		results["floor"].p99 = append(results["floor"].p99, float64(r.pct(0.99))/1e3)
		for _, t := range []struct {
			name string
			url  string
			p    *proc
		}{{"memory", memURL, mem}, {"redis", redURL, red}} {
			before := redisCommands(redisAddr)
			hitsBefore := counter(t.url, `steergate_cache_requests_total{cache="response",op="get",result="hit"}`)
			r := load(t.url, body, 1, d, false, t.p)
			hitShare[t.name] = append(hitShare[t.name], (counter(t.url, `steergate_cache_requests_total{cache="response",op="get",result="hit"}`)-hitsBefore)/float64(r.requests))
			if t.name == "redis" {
				cmdsPerHit = append(cmdsPerHit, float64(redisCommands(redisAddr)-before-1)/float64(r.requests))
			}
			results[t.name].p50 = append(results[t.name].p50, float64(r.pct(0.5))/1e3)
			results[t.name].p99 = append(results[t.name].p99, float64(r.pct(0.99))/1e3)
		}
		// Redis by itself, the stored entry read as a hit reads it: each
		// GET after a pause as long as this round's memory hit at p50 (what
		// a Redis hit spends besides its GET, while Redis waits), and back
		// to back, with Redis never idle.
		memP50 := time.Duration(results["memory"].p50[len(results["memory"].p50)-1] * 1e3)
		for _, g := range []struct {
			name  string
			pause time.Duration
		}{{"get", memP50}, {"get0", 0}} {
			r, err := redisGets(redisAddr, entryKey, g.pause, d)
			if err != nil {
				return err
			}
			results[g.name].p50 = append(results[g.name].p50, float64(r.pct(0.5))/1e3)
			results[g.name].p99 = append(results[g.name].p99, float64(r.pct(0.99))/1e3)
		}
	}
	fmt.Fprintf(md, "\n## Cache hits\n\nA seeded best-of-4 request answered from the response cache through `steergate serve`, "+
		"one client, %s per run, median of %d runs (lowest–highest). Redis is a local `redis-server`. The floor is GET /healthz of the "+
		"in-memory gateway, in the same rounds: one loopback hop into the same process and back, nothing decoded or looked up.\n\n"+
		"| cache | hit p50 | hit p99 |\n|---|---|---|\n", d, rounds)
	for _, name := range []string{"memory", "redis"} {
		fmt.Fprintf(md, "| %s | %s | %s |\n", name, summarize(results[name].p50).us(), summarize(results[name].p99).us())
	}
	fmt.Fprintf(md, "| floor: GET /healthz of the same gateway | %s | %s |\n",
		summarize(results["floor"].p50).us(), summarize(results["floor"].p99).us())
	fmt.Fprintf(md, "| Redis alone: GET of the stored entry, one connection, after a pause as long as a memory hit's p50 | %s | %s |\n",
		summarize(results["get"].p50).us(), summarize(results["get"].p99).us())
	fmt.Fprintf(md, "| Redis alone: the same GETs back to back | %s | %s |\n",
		summarize(results["get0"].p50).us(), summarize(results["get0"].p99).us())
	fmt.Fprintf(md, "\nRedis commands per request: %.2f. Share of the requests answered from the cache (the gateway's own count): "+
		"memory %.0f%%, Redis %.0f%%.", summarize(cmdsPerHit).med, 100*summarize(hitShare["memory"]).med, 100*summarize(hitShare["redis"]).med)
	if summarize(hitShare["redis"]).med < 0.99 {
		md.WriteString(" A Redis read slower than twice its typical round trip plus `read_slack` is a miss, and after failed reads in a row " +
			"Redis is skipped for a while, so some requests were computed instead, and the Redis figures mix them in.")
	}
	md.WriteString("\n")
	fmt.Fprintf(md, "\nTargets: a hit's p99 under 300 µs in memory: %s (%s); under 500 µs with a local Redis: %s (%s). "+
		"Over the floor's p99 (%.0f µs) a hit in memory adds %s and one in Redis %s.\n",
		metOr(summarize(results["memory"].p99).med < 300), summarize(results["memory"].p99).us(),
		metOr(summarize(results["redis"].p99).med < 500), summarize(results["redis"].p99).us(),
		summarize(results["floor"].p99).med, over(summarize(results["memory"].p99).med-summarize(results["floor"].p99).med),
		over(summarize(results["redis"].p99).med-summarize(results["floor"].p99).med))
	fmt.Fprintf(md, "\nA Redis hit's p50 is %.0f µs over a memory hit's. A GET by itself takes %.0f µs at p50 when Redis has waited as long "+
		"as it does between a gateway's reads, and %.0f µs back to back: what an idle round trip costs over a busy one on this machine "+
		"(waking Redis, then the process waiting on it) is in every Redis hit, whatever the client.\n",
		summarize(results["redis"].p50).med-summarize(results["memory"].p50).med, summarize(results["get"].p50).med, summarize(results["get0"].p50).med)
	return nil
}

// redisAnswerKey returns the one response-cache key the cache benchmark's
// Redis holds (beside the reward scores of the miss that stored it).
func redisAnswerKey(addr string) (string, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("*2\r\n$4\r\nKEYS\r\n$1\r\n*\r\n")); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	var keys []string
	n := -1
	for n != 0 {
		line, err := br.ReadString('\n')
		if err != nil {
			return "", err
		}
		line = strings.TrimSpace(line)
		switch {
		case n < 0 && strings.HasPrefix(line, "*"):
			n, _ = strconv.Atoi(line[1:])
		case strings.HasPrefix(line, "$"):
		default:
			if strings.Contains(line, "resp:") {
				keys = append(keys, line)
			}
			n--
		}
	}
	if len(keys) != 1 {
		return "", fmt.Errorf("the cache benchmark's Redis holds %d answers, want the one", len(keys))
	}
	return keys[0], nil
}

// redisGets reads key from Redis on one connection for d, pausing before
// each GET, and times each GET.
func redisGets(addr, key string, pause, d time.Duration) (result, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return result{}, err
	}
	defer c.Close()
	cmd := fmt.Appendf(nil, "*2\r\n$3\r\nGET\r\n$%d\r\n%s\r\n", len(key), key)
	br := bufio.NewReaderSize(c, 64<<10)
	var r result
	for stop := time.Now().Add(d); time.Now().Before(stop); {
		time.Sleep(pause)
		t0 := time.Now()
		if _, err := c.Write(cmd); err != nil {
			return r, err
		}
		line, err := br.ReadString('\n')
		if err != nil {
			return r, err
		}
		size, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(line, "$")))
		if err != nil || size < 0 {
			return r, fmt.Errorf("redis GET %s: %q", key, line)
		}
		if _, err := br.Discard(size + 2); err != nil {
			return r, err
		}
		r.lat = append(r.lat, time.Since(t0))
		r.requests++
	}
	return r, nil
}

// counter reads one series of a gateway's /metrics (0 when absent).
func counter(gatewayURL, series string) float64 {
	u, err := url.Parse(gatewayURL)
	if err != nil {
		return 0
	}
	resp, err := http.Get(u.Scheme + "://" + u.Host + "/metrics")
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// redisCommands returns the server's total_commands_processed.
func redisCommands(addr string) int64 {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return 0
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	c.Write([]byte("INFO stats\r\n"))
	br := bufio.NewReader(c)
	for {
		line, err := br.ReadString('\n')
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			x, _ := strconv.ParseInt(v, 10, 64)
			return x
		}
		if err != nil {
			return 0
		}
	}
}

// rss returns a process's resident memory in bytes.
func (p *proc) rss() int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// streamingLoad holds n streaming clients open at once through the
// gateway to the reference server (tokens every 20 ms), and reports errors,
// the gateway's memory per open stream and its CPU per request: with every
// stream opened in the same instant, with them opened evenly over two
// seconds, and so with a 20 KB prompt, in interleaved rounds.
func streamingLoad(bin string, md *strings.Builder, n, rounds int) error {
	fmt.Fprintf(md, "\n## Load: %d concurrent streaming clients\n\n%d clients open streams through `steergate serve` "+
		"to the reference server (a token every 20 ms, up to 40 tokens, unseeded: passthrough streams relayed as bytes); all are held open "+
		"together, then read to the end. The clients open their streams in the same instant, or evenly over two seconds; each run "+
		"gets a gateway of its own. The prompt is one short question; the last row's is 20 KB. Memory per open stream is the gateway's "+
		"resident memory at the peak over its idle memory, by open streams. "+
		"The stacks column is the gateway's own count of goroutine stack memory (go_memstats_stack_inuse_bytes) once all are open, "+
		"by open streams.\n\n"+
		"| streams opened | clients | errors (all runs) | fewest streams open at once | gateway memory per open stream | of which goroutine stacks | gateway CPU per request |\n"+
		"|---|---|---|---|---|---|---|\n", n, n)
	type load struct {
		spread time.Duration
		prompt int // bytes of filler in the prompt
	}
	loads := [...]load{{0, 0}, {2 * time.Second, 0}, {2 * time.Second, 20 << 10}}
	var per, stk, cpu [len(loads)][]float64
	var errs [len(loads)]int64
	var fewest [len(loads)]int64
	for i := range fewest {
		fewest[i] = int64(n)
	}
	for range rounds {
		for i, l := range loads {
			r, err := openStreams(bin, n, l.spread, l.prompt)
			if err != nil {
				return err
			}
			per[i], stk[i], cpu[i] = append(per[i], r.perStream), append(stk[i], r.stacks), append(cpu[i], r.cpuPerRequest)
			errs[i], fewest[i] = errs[i]+r.errs, min(fewest[i], r.open)
		}
	}
	var med [len(loads)]stat
	for i, l := range loads {
		when := "in the same instant"
		if l.spread > 0 {
			when = fmt.Sprintf("over %.0f s", l.spread.Seconds())
		}
		if l.prompt > 0 {
			when += fmt.Sprintf(", %d KB prompt", l.prompt>>10)
		}
		med[i] = summarize(per[i])
		c, k := summarize(cpu[i]), summarize(stk[i])
		fmt.Fprintf(md, "| %s | %d | %d | %d | %.1f KiB (%.1f–%.1f) | %.1f KiB (%.1f–%.1f) | %.0f µs (%.0f–%.0f) |\n",
			when, n, errs[i], fewest[i], med[i].med, med[i].lo, med[i].hi, k.med, k.lo, k.hi, c.med, c.lo, c.hi)
	}
	fmt.Fprintf(md, "\nTarget: at most 32 KiB of gateway memory per open stream and no errors: %s for streams opened over two seconds "+
		"(%.1f KiB), %s for streams opened in the same instant (%.1f KiB); %d errors.\n",
		metOr(med[1].med <= 32 && errs[1] == 0), med[1].med, metOr(med[0].med <= 32 && errs[0] == 0), med[0].med, errs[0]+errs[1]+errs[2])
	if med[0].med > 32 || med[1].med > 32 {
		fmt.Fprintf(md, "\nWhere it goes: an open stream holds its connection's goroutine, whose stack keeps within 8 KiB "+
			"(make test checks it), the upstream connection's 4 KiB read buffer, the request's fasthttp context and the relay's buffers. "+
			"When every stream opens in the same instant, the gateway reads, decodes and forwards the thousand requests together, and "+
			"resident memory also carries their short-lived garbage (GOGC 100: the heap may grow to twice what is live between "+
			"collections). The reference server sends its 40 tokens whether or not the client reads them, so by the time the last "+
			"stream opens the gateway has finished relaying some of the first: those hold an idle kept-alive connection, waiting on "+
			"its goroutine for the next request, instead of a stream, and still count as open streams here. With a 20 KB prompt, a relayed stream gives "+
			"its request's body back once the request has gone up; the memory over the short prompt's is the prompt's copies made while "+
			"the requests are read, decoded and sent up (bodies go back to fasthttp's pool, the rest is garbage until a collection).\n")
	}
	if errs[0]+errs[1]+errs[2] > 0 {
		fmt.Fprintf(os.Stderr, "load: %d streams failed\n", errs[0]+errs[1]+errs[2])
	}
	return nil
}

// streams is one streaming load's outcome.
type streams struct {
	errs, open    int64
	perStream     float64 // KiB of gateway memory per open stream
	stacks        float64 // KiB of goroutine stacks per open stream, all open
	cpuPerRequest float64 // µs
}

// openStreams opens n streams through a gateway of its own, evenly over
// spread, holds them all open, then reads them to the end.
func openStreams(bin string, n int, spread time.Duration, prompt int) (streams, error) {
	refAddr := freePort()
	ref, err := startProc("reference", refAddr, bin, "reference-server", "--listen", refAddr, "--token-delay", "20ms")
	if err != nil {
		return streams{}, err
	}
	defer ref.stop()
	gw, url, err := gateway{name: "load", upstream: refAddr, maxInflight: 2 * n, maxConcurrency: 2 * n}.start(bin)
	if err != nil {
		return streams{}, err
	}
	defer gw.stop()
	// Unseeded, so that no stream is answered from the response cache:
	// each crosses the gateway as relayed bytes, as a passthrough stream
	// does.
	filler := strings.Repeat("Some context. ", prompt/14)
	body := func(i int) []byte {
		return []byte(fmt.Sprintf(`{"model":"reference","messages":[{"role":"user","content":"%sWhy is the sky blue?"}],"max_tokens":40,"stream":true,"temperature":0.%d1}`, filler, i%9))
	}
	_ = post(url, []byte(`{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":2}`))
	idle := gw.rss()
	cpu0 := gw.cpu()
	hc := &fasthttp.Client{MaxConnsPerHost: n + 10, StreamResponseBody: true, ReadTimeout: time.Minute}
	var (
		wg         sync.WaitGroup
		errs, open atomic.Int64
		peak       atomic.Int64
		release    = make(chan struct{})
	)
	start := time.Now()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Until(start.Add(spread * time.Duration(i) / time.Duration(n))))
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(url)
			req.Header.SetMethod("POST")
			req.SetBody(body(i))
			if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
				errs.Add(1)
				return
			}
			open.Add(1)
			<-release // every stream is open before any is read to the end
			data, err := io.ReadAll(resp.BodyStream())
			_ = resp.CloseBodyStream()
			if err != nil || !bytes.HasSuffix(bytes.TrimSpace(data), []byte("data: [DONE]")) || bytes.Contains(data, []byte(`"error"`)) {
				errs.Add(1)
				return
			}
		}()
	}
	deadline := time.Now().Add(time.Minute + spread)
	for open.Load()+errs.Load() < int64(n) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
		peak.Store(max(peak.Load(), gw.rss()))
	}
	peak.Store(max(peak.Load(), gw.rss()))
	stacks := counter(url, "go_memstats_stack_inuse_bytes")
	close(release)
	wg.Wait()
	cpu := gw.cpu() - cpu0
	return streams{errs: errs.Load(), open: open.Load(),
		perStream:     float64(peak.Load()-idle) / 1024 / float64(max(1, open.Load())),
		stacks:        stacks / 1024 / float64(max(1, open.Load())),
		cpuPerRequest: float64(cpu.Microseconds()) / float64(n)}, nil
}

// peers compares the floor (the reference server called directly), nginx
// as a plain reverse proxy, the Portkey AI gateway and Steergate in
// passthrough, side by side in one run.
func peers(bin string, md *strings.Builder, d time.Duration, rounds int) error {
	defer pinSelf()()
	refAddr := freePort()
	ref, err := startProc("reference", refAddr, pinned(cpuClient, bin, "reference-server", "--listen", refAddr)...)
	if err != nil {
		return err
	}
	defer ref.stop()
	targets := []*target{{name: "direct (floor)", url: "http://" + refAddr + "/v1/chat/completions", p: ref}}
	for _, start := range []func() (*target, error){
		func() (*target, error) { return startNginx(refAddr) },
		func() (*target, error) { return startPortkey(refAddr) },
		func() (*target, error) { return startBare(refAddr) },
		func() (*target, error) { return startSteergate(bin, refAddr) },
	} {
		t, err := start()
		if err != nil {
			return err
		}
		defer t.p.stop()
		targets = append(targets, t)
	}
	body := []byte(`{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":16,"seed":1}`)
	sbody := []byte(`{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":16,"seed":4,"stream":true}`)
	for _, t := range targets { // warm every path
		if r := loadWith(t.url, t.headers, body, 4, 500*time.Millisecond, false, t.cpu); r.errors > 0 || r.requests == 0 {
			return fmt.Errorf("%s does not answer: %d errors", t.name, r.errors)
		}
	}
	type scenario struct {
		name   string
		conc   int
		stream bool
	}
	scenarios := []scenario{{"c=1", 1, false}, {"c=16", 16, false}, {"c=64", 64, false}, {"stream c=1", 1, true}}
	res := map[string]map[string][]result{} // target -> scenario -> rounds
	for _, t := range targets {
		res[t.name] = map[string][]result{}
	}
	for round := range rounds {
		for _, sc := range scenarios {
			b := body
			if sc.stream {
				b = sbody
			}
			for k := range targets { // rotate the order each round
				t := targets[(k+round)%len(targets)]
				settle(targets, 10*time.Second)
				r := loadWith(t.url, t.headers, b, sc.conc, d, sc.stream, t.cpu)
				res[t.name][sc.name] = append(res[t.name][sc.name], r)
			}
			fmt.Fprintf(os.Stderr, "round %d %s done\n", round+1, sc.name)
		}
	}
	rates := map[string]float64{}
	for _, t := range targets {
		rates[t.name] = maxRate(t, targets, body, d, rounds)
		fmt.Fprintf(os.Stderr, "%s: %.0f req/s with p99 < 10 ms\n", t.name, rates[t.name])
	}
	med := func(name, sc string, f func(result) float64) stat {
		var xs []float64
		for _, r := range res[name][sc] {
			xs = append(xs, f(r))
		}
		return summarize(xs)
	}
	us := func(p float64) func(result) float64 {
		return func(r result) float64 { return float64(r.pct(p)) / 1e3 }
	}
	rps := func(r result) float64 { return r.rps() }
	cpuPer := func(r result) float64 { return float64(r.cpu.Microseconds()) / float64(max(1, r.requests)) }
	gap := func(r result) float64 {
		if len(r.gaps) == 0 {
			return 0
		}
		var sum time.Duration
		for _, g := range r.gaps {
			sum += g
		}
		return float64(sum/time.Duration(len(r.gaps))) / 1e3
	}
	floor := targets[0].name
	var failedStreams []string
	fmt.Fprintf(md, "\n## Passthrough against peers\n\nThe reference server (`steergate reference-server`, OpenAI face) called directly is the floor; "+
		"nginx %s (one worker, keep-alive upstream, no buffering) is the floor of any proxy; the Portkey AI gateway (npm `@portkey-ai/gateway`, "+
		"routing to the reference server as a custom OpenAI host) is a peer users pick; the bare Go proxy (this benchmark's own, `go run ./bench -bare-proxy`: "+
		"fasthttp server and client, the bytes copied up and back, nothing decoded or checked) is the floor of any proxy in Go on fasthttp; Steergate runs `serve` with the OpenAI-compatible adapter, "+
		"strategy none, response cache off. Every proxy is pinned to CPU %s; the load generator and the reference server share CPU %s. "+
		"Request: one chat completion, `max_tokens` 16, seeded. Closed loop with c concurrent clients; each run starts once every target has gone idle (a target that fell behind goes on working after its clients stop, on the CPU every proxy shares); added = target − floor at the same percentile.\n\n",
		nginxVersion(), cpuProxy, cpuClient)
	// added is what a target adds to the floor at c=1, at percentile p,
	// round by round.
	added := func(n string, p float64) stat {
		var xs []float64
		for k, r := range res[n]["c=1"] {
			xs = append(xs, float64(r.pct(p)-res[floor]["c=1"][k].pct(p))/1e3)
		}
		return summarize(xs)
	}
	md.WriteString("| target | c=1 p50 | c=1 p99 | added p50 | added p99 | c=16 p50 | c=64 p50 | c=64 req/s | stream: first chunk p50 | stream: between chunks | max req/s, p99 < 10 ms (open loop) | CPU per request (c=64) | errors |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, t := range targets {
		n := t.name
		addP50, addP99 := "–", "–"
		if n != floor {
			addP50, addP99 = added(n, 0.5).us(), added(n, 0.99).us()
		}
		errs := 0
		for _, rs := range res[n] {
			for _, r := range rs {
				errs += r.errors
			}
		}
		streamOK := 0
		for _, r := range res[n]["stream c=1"] {
			streamOK += r.requests
		}
		ttft, between := "all failed", "–"
		if streamOK > 0 {
			ttft, between = med(n, "stream c=1", us(0.5)).us(), fmt.Sprintf("%.1f µs", med(n, "stream c=1", gap).med)
		} else {
			failedStreams = append(failedStreams, n)
		}
		fmt.Fprintf(md, "| %s | %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %.0f | %.0f µs | %d |\n", n,
			med(n, "c=1", us(0.5)).us(), med(n, "c=1", us(0.99)).us(), addP50, addP99,
			med(n, "c=16", us(0.5)).us(), med(n, "c=64", us(0.5)).us(), med(n, "c=64", rps).med,
			ttft, between, rates[n], med(n, "c=64", cpuPer).med, errs)
	}
	if len(failedStreams) > 0 {
		fmt.Fprintf(md, "\nEvery streaming request through %s failed in this run (Portkey 1.15.2 on Node.js 20 answers "+
			"`{\"status\":\"failure\",\"message\":\"Something went wrong\"}` and logs `TypeError: immutable` for these upstream streams); "+
			"its errors column counts them.\n", strings.Join(failedStreams, ", "))
	}
	sg, pk, ng := "steergate", "portkey", "nginx"
	addedP50 := func(n string) float64 { return added(n, 0.5).med }
	addedP99 := func(n string) float64 { return added(n, 0.99).med }
	fmt.Fprintf(md, "\nSteergate's added p50 at c=1 is %.0f µs against Portkey's %.0f µs; its saturation throughput (c=64) is %.0f%% of nginx's, "+
		"and its highest open-loop rate with p99 under 10 ms is %.0f against nginx's %.0f (the highest rate of 250 … 8000 req/s that most of %d "+
		"runs at it hold with p99 under 10 ms and no errors). CPU per request is the process tree's user+system "+
		"time over the run divided by its requests (from /proc, 10 ms ticks). Allocations per request, in-process: "+
		"`go test -run - -bench 'Passthrough|Direct' -benchmem ./gateway/`.\n",
		addedP50(sg), addedP50(pk), 100*med(sg, "c=64", rps).med/med(ng, "c=64", rps).med, rates[sg], rates[ng], rounds)
	fmt.Fprintf(md, "\nTargets: added p50 under 100 µs at c=1: %s (%.0f µs; nginx adds %.0f µs); added p99 under 1 ms: %s (%.0f µs); "+
		"added latency below Portkey's: %s; saturation throughput at least 70%% of nginx's: %s (%.0f%%).\n",
		metOr(addedP50(sg) < 100), addedP50(sg), addedP50(ng), metOr(addedP99(sg) < 1000), addedP99(sg),
		metOr(addedP50(sg) < addedP50(pk)), metOr(med(sg, "c=64", rps).med >= 0.7*med(ng, "c=64", rps).med),
		100*med(sg, "c=64", rps).med/med(ng, "c=64", rps).med)
	// Against nginx, the floor of any proxy: CPU, added latency and
	// throughput at least as good.
	sgCPU, ngCPU := med(sg, "c=64", cpuPer).med, med(ng, "c=64", cpuPer).med
	fmt.Fprintf(md, "\nTargets against nginx: CPU per request at most nginx's: %s (%.0f µs against %.0f µs, %.1f times); "+
		"added latency at c=1 at most nginx's: p50 %s (%.0f µs against %.0f µs), p99 %s (%.0f µs against %.0f µs); "+
		"throughput at c=64 at least nginx's: %s (%.0f against %.0f req/s, %.0f%%). The profile of the passthrough path is under "+
		"\"Where the gateway's time goes\" below.\n",
		metOr(sgCPU <= ngCPU), sgCPU, ngCPU, sgCPU/ngCPU,
		metOr(addedP50(sg) <= addedP50(ng)), addedP50(sg), addedP50(ng),
		metOr(addedP99(sg) <= addedP99(ng)), addedP99(sg), addedP99(ng),
		metOr(med(sg, "c=64", rps).med >= med(ng, "c=64", rps).med), med(sg, "c=64", rps).med, med(ng, "c=64", rps).med,
		100*med(sg, "c=64", rps).med/med(ng, "c=64", rps).med)
	if addedP50(sg) >= 100 && addedP50(ng) >= 100 {
		fmt.Fprintf(md, "\nWhy the latency targets are missed here: on this machine any proxy's extra loopback hop (two more socket "+
			"reads and writes, and wake-ups across the two CPUs) costs more than 100 µs, as nginx's own added latency shows; "+
			"a proxy in Go on fasthttp costs more than nginx before it does any work (the bare proxy's row), and Steergate's own work "+
			"(decoding and checking the request, routing, metrics) comes on top of that (%.0f µs of CPU per request in all, against nginx's %.0f).\n", sgCPU, ngCPU)
	}
	// The bare Go proxy splits the gap to nginx: what Go and fasthttp
	// cost with no work done, and the gateway's own work on top.
	bCPU := med(bareName, "c=64", cpuPer).med
	fmt.Fprintf(md, "\nThe gap split by the bare Go proxy: it uses %.0f µs of CPU per request (%.1f times nginx's) and adds %.0f µs p50 at c=1 "+
		"(nginx %.0f µs), with nothing decoded or checked. Steergate's own work is what it spends over the bare proxy: %s of CPU per request "+
		"and %s of added p50.\n", bCPU, bCPU/ngCPU, addedP50(bareName), addedP50(ng),
		over(sgCPU-bCPU), over(addedP50(sg)-addedP50(bareName)))
	return nil
}

// over says a difference in µs, or that there was none to see.
func over(d float64) string {
	if d <= 0 {
		return "none to see in this run (" + strconv.FormatFloat(d, 'f', 0, 64) + " µs)"
	}
	return strconv.FormatFloat(d, 'f', 0, 64) + " µs"
}

func metOr(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func nginxVersion() string {
	out, err := exec.Command("nginx", "-v").CombinedOutput()
	if err != nil {
		return ""
	}
	_, v, _ := strings.Cut(strings.TrimSpace(string(out)), "nginx/")
	return v
}
