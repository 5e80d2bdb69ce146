package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend/ollama/ollamatest"
	"github.com/steergate/steergate/configs"
)

// curlExample is a curl command of the README: its URL and JSON body.
type curlExample struct{ url, body string }

var curlRe = regexp.MustCompile(`(?s)curl -s (\S+)\s*(?:\\\s*)?-d '([^']*)'`)

func readmeCurls(t *testing.T) []curlExample {
	t.Helper()
	b, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []curlExample
	for _, block := range regexp.MustCompile("(?s)```sh\n(.*?)```").FindAllStringSubmatch(string(b), -1) {
		for _, m := range curlRe.FindAllStringSubmatch(block[1], -1) {
			out = append(out, curlExample{url: m[1], body: m[2]})
		}
	}
	return out
}

// serveConfig serves a config file as serve does, on a free port, until
// the test ends, and returns its address.
func serveConfig(t *testing.T, file string) string {
	t.Helper()
	cfg, err := configs.Load(file)
	if err != nil {
		t.Fatal(err)
	}
	a, err := assemble(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), serving)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.server.Serve(ctx, ln) }()
	t.Cleanup(func() { cancel(); <-done; a.close() })
	return ln.Addr().String()
}

// TestREADMECurlExamples runs the README's curl examples as written: those
// for the reference model against the embedded default, the one for an
// Ollama against configs/ollama.yaml and a real Ollama (with its model's
// name put in).
func TestREADMECurlExamples(t *testing.T) {
	t.Chdir("../..")
	examples := readmeCurls(t)
	if len(examples) < 3 {
		t.Fatalf("found %d curl examples", len(examples))
	}
	defaultAddr := serveConfig(t, "configs/default.yaml")
	var ollamaAddr string
	for _, ex := range examples {
		var body map[string]any
		if err := json.Unmarshal([]byte(ex.body), &body); err != nil {
			t.Errorf("example body is not JSON: %v\n%s", err, ex.body)
			continue
		}
		addr, payload := defaultAddr, ex.body
		if body["model"] != "reference" {
			if ollamaAddr == "" {
				t.Setenv("OLLAMA_HOST", ollamatest.Start(t))
				ollamaAddr = serveConfig(t, "configs/ollama.yaml")
			}
			addr = ollamaAddr
			payload = strings.Replace(payload, `"model": "`+body["model"].(string)+`"`, `"model": "`+ollamatest.Model+`"`, 1)
		}
		url := "http://" + strings.Replace(ex.url, "127.0.0.1:8080", addr, 1)
		resp, err := http.Post(url, "application/json", strings.NewReader(payload))
		if err != nil {
			t.Fatal(err)
		}
		out, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var c struct {
			Choices []struct {
				Message struct {
					Content string `json:"content"`
				} `json:"message"`
			} `json:"choices"`
			Steering json.RawMessage `json:"steering"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(out, &c) != nil || len(c.Choices) == 0 {
			t.Errorf("%s %s: %d %s", ex.url, ex.body, resp.StatusCode, out)
			continue
		}
		if _, steered := body["steering"]; steered && len(c.Steering) == 0 {
			t.Errorf("%s: a steered example answered without its steering report", ex.body)
		}
	}
}
