package gateway_test

import (
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/openai"
	"github.com/steergate/steergate/backend/reference"
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
