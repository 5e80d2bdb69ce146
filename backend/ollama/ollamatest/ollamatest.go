// Package ollamatest runs a real Ollama for tests: `ollama serve` built
// from Ollama's own Go module (make test builds and caches it), serving a
// tiny random-weight Llama model that the gen command made, on a free
// loopback port, stopped when the tests end.
package ollamatest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Model is the name the tiny model is created under.
const Model = "steergate-tiny"

// Template is the model's chat template, Llama 3's with the `$last` test
// of Ollama's llama3.2 template: a trailing assistant message is left open,
// so Ollama's chat continues it. Tools, tool calls and tool results are
// rendered as Llama 3.1 does, so Ollama counts the model as calling tools.
const Template = `{{- if .Tools }}<|start_header_id|>system<|end_header_id|>

You may call these tools:
{{ range .Tools }}{{ json . }}
{{ end }}<|eot_id|>
{{- end }}
{{- range $i, $_ := .Messages }}
{{- $last := eq (len (slice $.Messages $i)) 1 -}}
<|start_header_id|>{{ if eq .Role "tool" }}ipython{{ else }}{{ .Role }}{{ end }}<|end_header_id|>

{{ if .ToolCalls }}{{ range .ToolCalls }}{"name": "{{ .Function.Name }}", "parameters": {{ .Function.Arguments }}}{{ end }}{{ else }}{{ .Content }}{{ end }}{{ if or (ne .Role "assistant") (not $last) }}<|eot_id|>{{ end }}
{{- if and (ne .Role "assistant") $last }}<|start_header_id|>assistant<|end_header_id|>

{{ end }}
{{- end }}`

// The environment make test sets: the binary and the models folder that
// holds Model.
const (
	EnvBinary = "STEERGATE_TEST_OLLAMA"
	EnvModels = "STEERGATE_TEST_OLLAMA_MODELS"
)

// Server is a running `ollama serve`.
type Server struct {
	Host string // host:port
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// Serve starts bin on a free loopback port with models as its models
// folder and waits until it answers.
func Serve(ctx context.Context, bin, models string) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := ln.Addr().String()
	ln.Close()
	logf, err := os.CreateTemp("", "ollama-*.log")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "OLLAMA_HOST="+host, "OLLAMA_MODELS="+models, "OLLAMA_KEEP_ALIVE=1h",
		"OLLAMA_NUM_PARALLEL=2", "OLLAMA_NOPRUNE=1")
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server dies with the process that started it, whatever happens.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	logf.Close()
	s := &Server{Host: host, cmd: cmd, log: logf.Name(), done: make(chan struct{})}
	go func() { _ = cmd.Wait(); close(s.done) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/api/version")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
		select {
		case <-s.done:
			b, _ := os.ReadFile(s.log)
			return nil, fmt.Errorf("ollama serve exited: %s", tail(b))
		case <-ctx.Done():
			s.Stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.Stop()
			return nil, errors.New("ollama serve did not answer within 30s")
		}
	}
}

// Stop kills the server and waits for it.
func (s *Server) Stop() {
	_ = syscall.Kill(-s.cmd.Process.Pid, syscall.SIGKILL)
	<-s.done
	os.Remove(s.log)
}

func tail(b []byte) string {
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

var (
	mu     sync.Mutex
	shared *Server
)

// Start returns the host:port of the package's real Ollama serving Model,
// starting it on first use; StopAll, called from TestMain, stops it.
// Without the binary or the model it skips, except under CI, where it
// fails: make test builds both.
func Start(t testing.TB) string {
	t.Helper()
	bin, models := os.Getenv(EnvBinary), os.Getenv(EnvModels)
	missing := ""
	switch {
	case bin == "" || models == "":
		missing = EnvBinary + " and " + EnvModels + " are not set"
	default:
		if _, err := os.Stat(bin); err != nil {
			missing = err.Error()
		} else if _, err := os.Stat(filepath.Join(models, "manifests")); err != nil {
			missing = "no models in " + models + ": " + err.Error()
		}
	}
	if missing != "" {
		if os.Getenv("CI") != "" {
			t.Fatalf("a real Ollama is required in CI (make test builds it): %s", missing)
		}
		t.Skipf("no real Ollama (%s): run the tests through make test, which builds it", missing)
	}
	mu.Lock()
	defer mu.Unlock()
	if shared == nil {
		s, err := Serve(context.Background(), bin, models)
		if err != nil {
			t.Fatal(err)
		}
		shared = s
	}
	return shared.Host
}

// StopAll stops the package's Ollama, if one was started.
func StopAll() {
	mu.Lock()
	defer mu.Unlock()
	if shared != nil {
		shared.Stop()
		shared = nil
	}
}
