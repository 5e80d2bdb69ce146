package openai

import (
	"context"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/reference"
)

// A streamed answer read to [DONE] leaves its connection to the next
// call, relayed or decoded: one connection for many streams.
func TestStreamsReuseTheirConnection(t *testing.T) {
	c, err := New("upstream", backendtest.StartReference(t, reference.Options{})+"/v1", "", FlavourVLLM, 4, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dialled := recordDials(c)
	ctx := context.Background()
	req := &backend.Request{Model: "reference", Messages: []backend.Message{{Role: "user", Content: "Hello"}}, MaxTokens: 8, Seed: ptr(int64(1))}
	for i := range 3 {
		ans, err := c.Raw(ctx, &backend.RawRequest{Chat: true, Stream: true, Req: req,
			Body: []byte(`{"model":"reference","messages":[{"role":"user","content":"Hello"}],"max_tokens":8,"seed":1,"stream":true}`)})
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(ans.Stream)
		ans.Close()
		if err != nil || !strings.HasSuffix(strings.TrimSpace(string(b)), "data: [DONE]") {
			t.Fatalf("relayed stream %d: %v %q", i, err, b)
		}
		if _, err := c.Stream(ctx, req, func(backend.Delta) error { return nil }); err != nil {
			t.Fatalf("decoded stream %d: %v", i, err)
		}
	}
	if n := len(dialled()); n != 1 {
		t.Errorf("6 streams one after another dialled %d connections, want 1", n)
	}
}

// The end of a stream is seen however the reads fall.
func TestEndReader(t *testing.T) {
	for body, want := range map[string]bool{
		"data: {\"a\":1}\n\ndata: [DONE]\n\n":        true,
		"data: {\"a\":1}\r\n\r\ndata:[DONE]\r\n\r\n": true,
		"data: {\"a\":1}\n\n":                        false,
		"data: {\"c\":\"[DONE]\"}\n\n":               false,
		"data: [DONE]\n\ndata: {\"a\":1}\n\n":        false,
	} {
		for _, r := range []io.Reader{strings.NewReader(body), iotest.OneByteReader(strings.NewReader(body)), iotest.HalfReader(strings.NewReader(body))} {
			e := &endReader{r: r}
			if b, err := io.ReadAll(e); err != nil || string(b) != body {
				t.Fatalf("%q: read %q %v", body, b, err)
			}
			if e.ended() != want {
				t.Errorf("%q: ended %v, want %v", body, e.ended(), want)
			}
		}
	}
}
