package backend

import (
	"context"
	"encoding/json"
	"testing"
)

// Usage details are summed member by member over a request's calls; a
// detail that is no object of integers cannot be summed and is left out.
func TestMeterSumsUsageDetails(t *testing.T) {
	_, m := WithMeter(context.Background())
	if m.Details() != nil {
		t.Error("details before any call")
	}
	m.AddDetails(map[string]json.RawMessage{"prompt_tokens_details": json.RawMessage(`{"cached_tokens":5,"audio_tokens":0}`),
		"completion_tokens_details": json.RawMessage(`{"reasoning_tokens":2}`)})
	m.AddDetails(map[string]json.RawMessage{"prompt_tokens_details": json.RawMessage(`{"cached_tokens":3}`),
		"odd": json.RawMessage(`{"nested":{"x":1}}`), "text": json.RawMessage(`"x"`)})
	m.AddDetails(nil)
	d := m.Details()
	if string(d["prompt_tokens_details"]) != `{"audio_tokens":0,"cached_tokens":8}` || string(d["completion_tokens_details"]) != `{"reasoning_tokens":2}` || len(d) != 2 {
		t.Errorf("details %s", d)
	}
}
