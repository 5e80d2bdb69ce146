package openai

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/test/golden"
)

// TestGoldenRequests: the body each flavour sends upstream for each
// fixture (or the error that refuses it). Regenerate with -update.
func TestGoldenRequests(t *testing.T) {
	for _, fl := range []string{FlavourOpenAI, FlavourVLLM, FlavourLlamaCPP} {
		c, err := New("up", "http://127.0.0.1:1/v1", "", fl, 1, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range backendtest.Fixtures() {
			for _, stream := range []bool{false, true} {
				name := f.Name
				if stream {
					name += ".stream"
				}
				body, path, err := c.body(f.Request, stream)
				var got any = map[string]any{"path": path, "body": json.RawMessage(body)}
				if err != nil {
					got = map[string]string{"error": err.Error()}
				}
				golden.Check(t, filepath.Join("testdata", "golden", fl, name+".request.json"), got)
			}
		}
	}
}

// TestGoldenResponses: what the adapter makes of recorded upstream
// answers, non-streamed and streamed (a tool call in argument pieces,
// reasoning, a refusal, fields it does not interpret).
func TestGoldenResponses(t *testing.T) {
	files, _ := filepath.Glob("testdata/upstream/*")
	if len(files) < 3 {
		t.Fatalf("only %d recorded answers", len(files))
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var g *backend.Generation
		var deltas []backend.Delta
		if filepath.Ext(f) == ".sse" {
			g, deltas, err = decodeStream(b)
		} else {
			g, err = decodeChat(b)
		}
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		golden.Check(t, filepath.Join("testdata", "golden", "responses", filepath.Base(f)+".json"),
			map[string]any{"generation": g, "deltas": deltas})
	}
}

// decodeStream runs a recorded stream through the adapter's stream reader.
func decodeStream(b []byte) (*backend.Generation, []backend.Delta, error) {
	var deltas []backend.Delta
	r := &backend.Request{Messages: []backend.Message{{Role: "user"}}}
	g, err := readStream(bytes.NewReader(b), r, "up", 1<<20, func(d backend.Delta) error { deltas = append(deltas, d); return nil })
	return g, deltas, err
}
