package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"testing"

	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
	"github.com/valyala/fasthttp"
)

// An open stream waits on its connection's goroutine, on the stack its
// request was read, decoded and sent upstream with (gateway.sendStream):
// the memory of a thousand open streams rests on that stack keeping within
// 8 KiB. The gateway runs in a child process whose goroutines may not grow
// past 8 KiB once it is warm: a deeper path kills the child with "goroutine
// stack exceeds 8192-byte limit" and the stack that went past it. The race
// detector's instrumentation enlarges frames, so a race build allows 16 KiB
// (a path gone far deeper); make test also runs this test in an ordinary
// build, where 8 KiB holds.
func TestStreamStackStaysWithin8KiB(t *testing.T) {
	if os.Getenv("STREAM_STACK_CHILD") == "" {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestStreamStackStaysWithin8KiB$", "-test.count=1", "-test.v")
		cmd.Env = append(os.Environ(), "STREAM_STACK_CHILD=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !bytes.Contains(out, []byte("--- PASS: TestStreamStackStaysWithin8KiB")) {
			if len(out) > 8000 {
				out = out[:8000] // the overflowing stack comes first
			}
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	up := backendtest.StartReference(t, reference.Options{})
	cfg := filepath.Join(t.TempDir(), "relay.yaml")
	if err := os.WriteFile(cfg, []byte(`backends:
  up: {type: openai, url: "`+up+`/v1", flavour: vllm}
models:
  - {name: reference, backend: up}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := serveConfig(t, cfg)
	rich := `{"model":"reference","max_tokens":16,"stream":true,"stream_options":{"include_usage":true},"stop":["x","y"],` +
		`"messages":[{"role":"system","content":"Be brief."},` +
		`{"role":"user","content":[{"type":"text","text":"Why is the sky blue?"},{"type":"image_url","image_url":{"url":"data:image/png;base64,AAAA"}}]},` +
		`{"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},` +
		`{"role":"tool","tool_call_id":"c1","content":"ok"}],` +
		`"tools":[{"type":"function","function":{"name":"f","description":"d","parameters":{"type":"object","properties":{"a":{"type":"object","properties":{"b":{"type":"string"}}}}}}}],` +
		`"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}}}`
	cases := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":16,"stream":true}`},
		{"/v1/chat/completions", rich},
		{"/v1/completions", `{"model":"reference","prompt":"Why is the sky blue?","max_tokens":16,"stream":true,"stream_options":{"include_usage":true}}`},
	}
	stream := func(path, body string) string {
		// A client of its own: a new connection, so a new connection
		// goroutine on the gateway, and a new upstream connection.
		hc := &fasthttp.Client{}
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		req.SetRequestURI("http://" + addr + path)
		req.Header.SetMethod("POST")
		req.SetBodyString(body)
		if err := hc.Do(req, resp); err != nil {
			return err.Error()
		}
		if resp.StatusCode() != 200 || !strings.HasSuffix(strings.TrimSpace(string(resp.Body())), "data: [DONE]") {
			return string(resp.Body())
		}
		return ""
	}
	// Warm: each kind of request once, so that what is done once per
	// process (encoding/json's caches of each type) is done.
	for _, c := range cases {
		if msg := stream(c.path, c.body); msg != "" {
			t.Fatalf("%s: %s", c.path, msg)
		}
	}
	// The clients' goroutines grow their stacks first: only the gateway's
	// may not grow.
	const per = 3
	var wg, ready sync.WaitGroup
	gate := make(chan struct{})
	fails := make(chan string, per*len(cases))
	for _, c := range cases {
		for range per {
			wg.Add(1)
			ready.Add(1)
			go func() {
				defer wg.Done()
				growStack(0)
				ready.Done()
				<-gate
				if msg := stream(c.path, c.body); msg != "" {
					fails <- c.path + ": " + msg
				}
			}()
		}
	}
	ready.Wait()
	growStack(0)
	old := debug.SetMaxStack(streamStackLimit)
	close(gate)
	wg.Wait()
	debug.SetMaxStack(old)
	close(fails)
	for msg := range fails {
		t.Error(msg)
	}
}

// growStack grows the calling goroutine's stack to 64 KiB.
//
//go:noinline
func growStack(i int) byte {
	var b [60 << 10]byte
	b[i] = byte(i)
	return b[len(b)-1-i]
}
