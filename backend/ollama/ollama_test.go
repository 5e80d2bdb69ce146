package ollama_test

import (
	"context"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/ollama"
	"github.com/steergate/steergate/backend/reference"
)

func newClient(t *testing.T) *ollama.Client {
	c, err := ollama.New("ollama", backendtest.StartReference(t, reference.Options{}), nil)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) { backendtest.Run(t, newClient(t)) }

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
