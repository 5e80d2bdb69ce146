package gateway_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/openai"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rules"
	"github.com/steergate/steergate/steering"
	"github.com/valyala/fasthttp"
)

// BenchmarkPassthrough measures one non-streaming chat completion through
// the gateway to the reference server on loopback; compare with
// BenchmarkDirect, the same request to the reference server itself.
func BenchmarkPassthrough(b *testing.B) {
	up := backendtest.StartReference(b, reference.Options{})
	c := upstream(b, "upstream", up+"/v1", openai.FlavourVLLM)
	e := start(b, defaultOptions(), map[string]backend.Backend{"reference": c})
	b.Cleanup(func() { _ = e.stop() })
	benchPost(b, e.url+"/v1/chat/completions")
}

// BenchmarkPassthroughStream is BenchmarkPassthrough streamed: the
// backend's events relayed as bytes, read to [DONE].
func BenchmarkPassthroughStream(b *testing.B) {
	up := backendtest.StartReference(b, reference.Options{})
	c := upstream(b, "upstream", up+"/v1", openai.FlavourVLLM)
	e := start(b, defaultOptions(), map[string]backend.Backend{"reference": c})
	b.Cleanup(func() { _ = e.stop() })
	body := []byte(`{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":16,"seed":1,"stream":true}`)
	hc := &fasthttp.Client{}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	b.ReportAllocs()
	for b.Loop() {
		req.Reset()
		req.SetRequestURI(e.url + "/v1/chat/completions")
		req.Header.SetMethod("POST")
		req.SetBody(body)
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 || !bytes.HasSuffix(resp.Body(), []byte("data: [DONE]\n\n")) {
			b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
		}
	}
}

func BenchmarkDirect(b *testing.B) {
	benchPost(b, backendtest.StartReference(b, reference.Options{})+"/v1/chat/completions")
}

func benchPost(b *testing.B, url string) {
	body := []byte(`{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":16,"seed":1}`)
	hc := &fasthttp.Client{}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	b.ReportAllocs()
	for b.Loop() {
		req.Reset()
		req.SetRequestURI(url)
		req.Header.SetMethod("POST")
		req.SetBody(body)
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
		}
	}
}

// BenchmarkCacheHit is a seeded best-of-4 request answered from the
// in-memory response cache through the gateway.
func BenchmarkCacheHit(b *testing.B) {
	rt := backend.NewRouter()
	rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"})
	rl, _ := rules.New(rules.Config{Keywords: map[string][]string{"helpfulness": {`\bbecause\b`}}})
	mem := cache.NewMemory(64 << 20)
	eng := steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": rl}, Limits: steering.Limits{MaxSamples: 16},
		Responses: steering.NewResponseCache(mem, true, time.Hour, 1<<20, nil)})
	e := serveWith(b, defaultOptions(), rt, eng)
	body := []byte(`{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":32,"seed":1,"steering":{"strategy":"best_of_n","n":4}}`)
	hc := &fasthttp.Client{}
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	send := func() {
		req.Reset()
		req.SetRequestURI(e.url + "/v1/chat/completions")
		req.Header.SetMethod("POST")
		req.SetBody(body)
		if err := hc.Do(req, resp); err != nil || resp.StatusCode() != 200 {
			b.Fatalf("%v %d %s", err, resp.StatusCode(), resp.Body())
		}
	}
	send() // the miss that fills the cache
	b.ReportAllocs()
	for b.Loop() {
		send()
		if string(resp.Header.Peek("X-Cache")) != "hit" {
			b.Fatal("not a hit")
		}
	}
}
