package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// Cores: the load generator and the reference server share CPU 0; every
// proxy under test gets CPU 1 to itself, the same for each.
const (
	cpuClient = "0"
	cpuProxy  = "1"
)

// pinned runs args on the given CPUs (taskset execs, so the pid is the
// target's own).
func pinned(cpus string, args ...string) []string {
	if _, err := exec.LookPath("taskset"); err != nil {
		return args
	}
	return append([]string{"taskset", "-c", cpus}, args...)
}

// pinSelf moves every thread of this process to CPU 0; the returned
// function gives it every CPU again, so that a section's placement does not
// leak into the sections after it.
func pinSelf() (unpin func()) {
	pid := strconv.Itoa(os.Getpid())
	_ = exec.Command("taskset", "-a", "-cp", cpuClient, pid).Run()
	return func() {
		_ = exec.Command("taskset", "-a", "-cp", fmt.Sprintf("0-%d", runtime.NumCPU()-1), pid).Run()
	}
}

// treeCPU is the CPU time of pid and its child processes (nginx workers).
func treeCPU(pid int) time.Duration {
	total := procCPU(pid)
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", child))
		if err != nil {
			continue
		}
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		if ppid, _ := strconv.Atoi(f[1]); ppid == pid {
			total += procCPU(child)
		}
	}
	return total
}

func procCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * time.Second / 100
}

// target is one thing the load generator drives.
type target struct {
	name    string
	url     string
	headers map[string]string
	p       *proc
	hc      *fasthttp.Client // the open-loop client, kept so its connections stay warm
}

func (t *target) cpu() time.Duration { return treeCPU(t.p.cmd.Process.Pid) }

// startNginx runs nginx as a plain keep-alive reverse proxy to upstream.
func startNginx(upstream string) (*target, error) {
	nginx, err := exec.LookPath("nginx")
	if err != nil {
		return nil, fmt.Errorf("nginx is needed for the peer benchmark (apt-get install nginx): %w", err)
	}
	dir, err := os.MkdirTemp("", "steergate-nginx")
	if err != nil {
		return nil, err
	}
	addr := freePort()
	conf := fmt.Sprintf(`worker_processes 1;
user root;
pid %[1]s/nginx.pid;
error_log stderr error;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %[1]s/body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream backend { server %[2]s; keepalive 256; }
  server {
    listen %[3]s;
    location / {
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }
  }
}
`, dir, upstream, addr)
	cf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	p, err := startProc("nginx", addr, pinned(cpuProxy, nginx, "-c", cf, "-p", dir, "-g", "daemon off;")...)
	if err != nil {
		return nil, err
	}
	return &target{name: "nginx", url: "http://" + addr + "/v1/chat/completions", p: p}, nil
}

// portkeyScript is the Portkey AI gateway's server, installed by make bench.
func portkeyScript() string {
	dir := os.Getenv("STEERGATE_DOWNLOADS")
	if dir == "" {
		home, _ := os.UserHomeDir()
		dir = filepath.Join(home, ".cache", "steergate")
	}
	return filepath.Join(dir, "portkey", "node_modules", "@portkey-ai", "gateway", "build", "start-server.js")
}

// startPortkey runs the Portkey gateway routing to upstream as a custom
// OpenAI-compatible host.
func startPortkey(upstream string) (*target, error) {
	script := portkeyScript()
	if _, err := os.Stat(script); err != nil {
		return nil, fmt.Errorf("the Portkey gateway is needed for the peer benchmark (make bench installs it): %w", err)
	}
	addr := freePort()
	_, port, _ := strings.Cut(addr, ":")
	p, err := startProc("portkey", addr, pinned(cpuProxy, "node", script, "--port="+port, "--headless")...)
	if err != nil {
		return nil, err
	}
	return &target{name: "portkey", url: "http://" + addr + "/v1/chat/completions", p: p, headers: map[string]string{
		"x-portkey-provider": "openai", "x-portkey-custom-host": "http://" + upstream + "/v1", "Authorization": "Bearer none"}}, nil
}

// gateway describes a `steergate serve` for a benchmark: the model
// "reference" routed to the reference server at upstream, plus YAML for the
// route's entry and for the top level.
type gateway struct {
	name           string
	upstream       string
	maxInflight    int
	maxConcurrency int
	route          string // lines under the models entry, indented four spaces
	extra          string // top-level YAML
	cpus           string // pin to these CPUs; "" for none
}

// start writes the config and serves it; it returns the process and the
// chat completions URL.
func (g gateway) start(bin string) (*proc, string, error) {
	addr := freePort()
	cfg := filepath.Join(os.TempDir(), "steergate-bench-"+g.name+".yaml")
	y := fmt.Sprintf("server:\n  listen: %s\n  max_inflight: %d\nlog:\n  level: warn\nbackends:\n  upstream:\n    type: openai\n"+
		"    flavour: vllm\n    url: http://%s/v1\n    max_concurrency: %d\nmodels:\n  - name: reference\n    backend: upstream\n%s%s",
		addr, max(g.maxInflight, 1024), g.upstream, max(g.maxConcurrency, 64), g.route, g.extra)
	if err := os.WriteFile(cfg, []byte(y), 0o644); err != nil {
		return nil, "", err
	}
	args := []string{bin, "serve", "--config", cfg}
	if g.cpus != "" {
		args = pinned(g.cpus, args...)
	}
	p, err := startProc("steergate-"+g.name, addr, args...)
	return p, "http://" + addr + "/v1/chat/completions", err
}

// noResponseCache keeps seeded benchmark requests from being answered by
// the response cache.
const noResponseCache = "cache:\n  responses:\n    enabled: false\n"

func startSteergate(bin, upstream string) (*target, error) {
	p, url, err := gateway{name: "peer", upstream: upstream, maxInflight: 4096, maxConcurrency: 512, extra: noResponseCache, cpus: cpuProxy}.start(bin)
	if err != nil {
		return nil, err
	}
	return &target{name: "steergate", url: url, p: p}, nil
}

// openLoop sends requests at a fixed rate for d, each on its own
// schedule, and measures latency from when each request was due, not when
// it was sent, so a stalled target cannot hide its queue (coordinated
// omission). More than limit outstanding requests count as errors.
func openLoop(t *target, body []byte, rate float64, d time.Duration, limit int) result {
	if t.hc == nil {
		t.hc = &fasthttp.Client{MaxConnsPerHost: limit, ReadTimeout: 10 * time.Second, MaxConnWaitTimeout: 5 * time.Second}
	}
	hc := t.hc
	n := int(rate * d.Seconds())
	lat := make([]time.Duration, n)
	ok := make([]bool, n)
	var outstanding atomic.Int64
	var wg sync.WaitGroup
	cpu0 := t.cpu()
	start := time.Now()
	for i := range n {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if w := time.Until(due); w > 0 {
			time.Sleep(w)
		}
		if outstanding.Load() >= int64(limit) {
			continue // generator saturated: counted as an error
		}
		outstanding.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer outstanding.Add(-1)
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			req.SetRequestURI(t.url)
			req.Header.SetMethod("POST")
			req.Header.SetContentType("application/json")
			for k, v := range t.headers {
				req.Header.Set(k, v)
			}
			req.SetBody(body)
			if err := hc.Do(req, resp); err == nil && resp.StatusCode() == 200 {
				lat[i], ok[i] = time.Since(due), true
			}
		}()
	}
	wg.Wait()
	res := result{elapsed: time.Since(start), cpu: t.cpu() - cpu0}
	for i := range n {
		if ok[i] {
			res.lat = append(res.lat, lat[i])
		} else {
			res.errors++
		}
	}
	res.requests = len(res.lat)
	return res
}

// settle waits until no target is still working off the run before: every
// proxy shares one CPU, and one that fell behind (Portkey does) goes on
// answering after its clients stop, which would slow whichever target runs
// next. It gives up after limit and says so.
func settle(targets []*target, limit time.Duration) {
	const window = 200 * time.Millisecond
	cpu := func() (sum time.Duration) {
		for _, t := range targets {
			sum += t.cpu()
		}
		return sum
	}
	start := time.Now()
	for {
		before := cpu()
		time.Sleep(window)
		used := cpu() - before
		if used <= window/20 { // a tick of /proc's 10 ms clock at most
			if w := time.Since(start); w > 2*window {
				fmt.Fprintf(os.Stderr, "  waited %v for the targets to go idle\n", w.Round(time.Millisecond))
			}
			return
		}
		if time.Since(start) > limit {
			fmt.Fprintf(os.Stderr, "  targets still busy after %v (%v of CPU in the last %v)\n", limit, used, window)
			return
		}
	}
}

// maxRate finds the highest rate (of a fixed ladder) at which t keeps p99
// under 10 ms with no errors; all are the targets alive beside it.
func maxRate(t *target, all []*target, body []byte, d time.Duration, rounds int) float64 {
	best := 0.0
	for _, rate := range []float64{250, 500, 1000, 1500, 2000, 3000, 4000, 6000, 8000} {
		openLoop(t, body, rate, d/4, 512) // unmeasured: opens the connections this rate needs
		// The rate holds when most runs at it do, as the median run
		// would: one stall on a shared machine does not end the ladder.
		pass, fail := 0, 0
		for pass <= rounds/2 && fail <= rounds/2 {
			settle(all, 10*time.Second)
			r := openLoop(t, body, rate, d, 512)
			fmt.Fprintf(os.Stderr, "  %s at %.0f/s: p99 %v, %d errors of %d\n", t.name, rate, r.pct(0.99), r.errors, r.errors+r.requests)
			if r.errors > 0 || r.pct(0.99) >= 10*time.Millisecond {
				fail++
			} else {
				pass++
			}
		}
		if fail > rounds/2 {
			break
		}
		best = rate
	}
	return best
}
