package ollama_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/ollama"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/fault"
)

func newClient(t *testing.T) *ollama.Client {
	c, err := ollama.New("ollama", backendtest.StartReference(t, reference.Options{}), nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) { backendtest.Run(t, newClient(t), backendtest.Reference) }

func TestSameAsReference(t *testing.T) { backendtest.SameAsReference(t, newClient(t)) }

func TestOptionsKeepZeroesAndOverrideOllamaDefaults(t *testing.T) {
	zero, seed := 0.0, int64(0)
	o := ollama.Options(&backend.Request{Temperature: &zero, Seed: &seed, MaxTokens: 5, Stop: []string{"\n"}})
	want := map[string]any{"temperature": 0.0, "seed": int64(0), "top_p": 1.0, "top_k": 0, "repeat_penalty": 1.0, "num_predict": 5}
	for k, v := range want {
		if o[k] != v {
			t.Errorf("options[%q] = %v (%T), want %v (%T)", k, o[k], o[k], v, v)
		}
	}
}

func TestModelsListsLatest(t *testing.T) {
	names, err := newClient(t).Models(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "reference:latest" {
		t.Errorf("models %v", names)
	}
}

func TestProbeSetsLogprobsByVersion(t *testing.T) {
	for version, want := range map[string]bool{"0.12.10": false, "0.12.11": true, "0.17.4": true, "0.0.0": true, "1.0.0": true, "0.9.6": false} {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `{"version":%q}`, version)
		}))
		c, _ := ollama.New("o", srv.URL, nil, 0)
		if err := c.Probe(context.Background()); err != nil {
			t.Fatal(err)
		}
		if got := c.Caps().Logprobs; got != want {
			t.Errorf("version %s: logprobs %v, want %v", version, got, want)
		}
		srv.Close()
	}
}

// A field Ollama has no place for is refused by name, not dropped; its
// own options pass.
func TestUnservedFieldsAreRefused(t *testing.T) {
	c := newClient(t)
	no := false
	for _, r := range []*backend.Request{
		{Extra: map[string]json.RawMessage{"logit_bias": json.RawMessage(`{"50256":-100}`)}},
		{ParallelToolCalls: &no},
	} {
		r.Model, r.MaxTokens, r.Messages = "reference", 2, []backend.Message{{Role: "user", Content: "hi"}}
		_, err := c.Generate(context.Background(), r)
		if !errors.Is(err, fault.ErrUnsupported) || fault.Param(err) == "" {
			t.Errorf("%+v: %v", r, err)
		}
	}
	ok := &backend.Request{Model: "reference", MaxTokens: 2, Messages: []backend.Message{{Role: "user", Content: "hi"}},
		Extra: map[string]json.RawMessage{"top_k": json.RawMessage(`5`)}}
	if _, err := c.Generate(context.Background(), ok); err != nil {
		t.Errorf("an Ollama option: %v", err)
	}
}

// Ollama's refusals and an unreachable server are reported after the
// backend's own name, as every adapter's errors are.
func TestErrorsNameTheBackend(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"error":"invalid think value"}`)
	}))
	defer srv.Close()
	c, _ := ollama.New("local-gpu", srv.URL, nil, 0)
	r := &backend.Request{Model: "m", Messages: []backend.Message{{Role: "user", Content: "hi"}}}
	_, err := c.Generate(context.Background(), r)
	if !errors.Is(err, fault.ErrInvalid) || err.Error() != "local-gpu: invalid think value" {
		t.Errorf("refusal: %v", err)
	}
	srv.Close()
	_, err = c.Generate(context.Background(), r)
	if !errors.Is(err, fault.ErrUpstream) || !strings.Contains(err.Error(), "local-gpu: ") || strings.Contains(err.Error(), "ollama:") {
		t.Errorf("unreachable: %v", err)
	}
}

// Fields inside a message, a tool or response_format that Ollama has no
// place for are refused by their path, as top-level ones are; so is a
// trailing assistant message without continue_final_message, which
// Ollama would continue where OpenAI answers after it.
func TestUnservedNestedFieldsAreRefused(t *testing.T) {
	c := newClient(t)
	yes := true
	for want, r := range map[string]*backend.Request{
		"messages[0].bogus":        {Messages: []backend.Message{{Role: "user", Content: "hi", Raw: json.RawMessage(`{"role":"user","content":"hi","bogus":1}`)}}},
		"messages[1]":              {Messages: []backend.Message{{Role: "user", Content: "hi"}, {Role: "assistant", Content: "The sky"}}},
		"tools[0].function.strict": {Tools: []backend.Tool{{Type: "function", Name: "f", Strict: &yes}}},
		"tools[0].function.bogus":  {Tools: []backend.Tool{{Type: "function", Name: "f", Raw: json.RawMessage(`{"type":"function","function":{"name":"f","bogus":1}}`)}}},
		"response_format.json_schema.bogus": {ResponseFormat: &backend.ResponseFormat{Type: "json_schema", SchemaName: "n", Schema: json.RawMessage(`{}`),
			Raw: json.RawMessage(`{"type":"json_schema","json_schema":{"name":"n","schema":{},"bogus":1}}`)}},
	} {
		r.Model, r.MaxTokens = "reference", 2
		if r.Messages == nil {
			r.Messages = []backend.Message{{Role: "user", Content: "hi"}}
		}
		_, err := c.Generate(context.Background(), r)
		if !errors.Is(err, fault.ErrUnsupported) || fault.Param(err) != want {
			t.Errorf("%s: %v (param %q)", want, err, fault.Param(err))
		}
	}
}
