package openai_test

import (
	"testing"

	"github.com/steergate/steergate/backend/backendtest"
	"github.com/steergate/steergate/backend/openai"
	"github.com/steergate/steergate/backend/reference"
)

func newClient(t *testing.T, flavour string) *openai.Client {
	c, err := openai.New("upstream", backendtest.StartReference(t, reference.Options{})+"/v1", "sk-test", flavour, 16, 0)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConformance(t *testing.T) {
	for _, fl := range []string{openai.FlavourOpenAI, openai.FlavourVLLM, openai.FlavourLlamaCPP} {
		t.Run(fl, func(t *testing.T) { backendtest.Run(t, newClient(t, fl), backendtest.Reference) })
	}
}

func TestSameAsReference(t *testing.T) {
	backendtest.SameAsReference(t, newClient(t, openai.FlavourVLLM))
}
