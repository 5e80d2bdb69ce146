package ollama_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/ollama"
	"github.com/steergate/steergate/test/golden"
)

// TestGoldenRequests: the /api/chat request the adapter sends for each
// chat fixture (or the error that refuses it). Regenerate with -update.
func TestGoldenRequests(t *testing.T) {
	for _, f := range backendtest.Fixtures() {
		if f.Request.Messages == nil || f.Request.Continue {
			continue // raw generation; continuation renders the template on the server
		}
		req, err := ollama.ChatRequest(f.Request, false)
		var got any = req
		if err != nil {
			got = map[string]string{"error": err.Error()}
		}
		golden.Check(t, filepath.Join("testdata", "golden", f.Name+".request.json"), got)
	}
	// Images must be data: URLs; Ollama fetches nothing.
	r := &backend.Request{Model: "m", Messages: []backend.Message{{Role: "user", Parts: []backend.Part{{Type: "image_url", ImageURL: "https://example.org/cat.png"}}}}}
	if _, err := ollama.ChatRequest(r, false); err == nil || !strings.Contains(err.Error(), "data: URLs") {
		t.Errorf("an http image: %v", err)
	}
}

// TestGoldenResponses replays recorded Ollama answers (NDJSON) through the
// adapter, streamed and not: text, thinking and tool calls (whose
// arguments become a JSON text and which get an id where Ollama gives
// none), finish reasons.
func TestGoldenResponses(t *testing.T) {
	files, _ := filepath.Glob("testdata/upstream/*.ndjson")
	if len(files) < 2 {
		t.Fatalf("only %d recorded answers", len(files))
	}
	for _, f := range files {
		body, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.Write(body)
		}))
		c, err := ollama.New("o", srv.URL, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		r := &backend.Request{Model: "m", Messages: []backend.Message{{Role: "user", Content: "hi"}}}
		g, err := c.Generate(context.Background(), r)
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		var deltas []backend.Delta
		sg, err := c.Stream(context.Background(), r, func(d backend.Delta) error { deltas = append(deltas, d); return nil })
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		srv.Close()
		golden.Check(t, filepath.Join("testdata", "golden", "responses", filepath.Base(f)+".json"),
			map[string]any{"generation": g, "stream": sg, "deltas": deltas})
	}
}
