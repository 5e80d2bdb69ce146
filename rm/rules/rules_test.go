package rules

import (
	"context"
	"testing"

	"github.com/steergate/steergate/backend"

	"github.com/steergate/steergate/rm"
)

func TestRules(t *testing.T) {
	r, err := New(Config{NGram: 2, Regex: `^\d+$`, Keywords: map[string][]string{"explain": {`\bbecause\b`, `\bfirst\b`}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Objectives(); len(got) != 5 || got[3] != ToolCalls || got[4] != "explain" {
		t.Fatalf("objectives %v", got)
	}
	samples := []rm.Sample{
		{Response: "It is blue because of air."},                  // 7 tokens, no repeats, regex fails
		{Response: "go go go go"},                                 // 4 tokens, bigrams: 3, 2 repeats
		{Response: `{"a": 1}`, WantJSON: true},                    // valid JSON
		{Response: `{"a": }`, WantJSON: true},                     // invalid JSON
		{Response: "42"},                                          // regex matches
		{Response: "First, BECAUSE it is. First, because it is."}, // both keywords, repeats
	}
	got, err := r.Score(context.Background(), samples)
	if err != nil {
		t.Fatal(err)
	}
	want := [][]float32{
		{7, 0, 0, 1, 0.5},
		{4, 2.0 / 3, 0, 1, 0},
		{7, 0, 1, 1, 0},
		{6, 0, 0, 1, 0},
		{1, 0, 1, 1, 0},
		// 12 tokens, 11 bigrams; the second sentence repeats 5 of them
		// and "is ." -> ". first" is new, so 5/11.
		{12, 5.0 / 11, 0, 1, 1},
	}
	for i := range want {
		for k := range want[i] {
			if d := got[i][k] - want[i][k]; d > 1e-6 || d < -1e-6 {
				t.Errorf("sample %d %s: %v, want %v", i, r.Objectives()[k], got[i][k], want[i][k])
			}
		}
	}
}

func TestRulesConfigErrors(t *testing.T) {
	for _, c := range []Config{
		{Regex: "("},
		{Keywords: map[string][]string{"x": {"("}}},
		{Keywords: map[string][]string{"verbosity": {"a"}}},
		{Objectives: []string{"nonsense"}},
		{Keywords: map[string][]string{"x": {}}},
	} {
		if _, err := New(c); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

// The JSON schema a request gives through response_format, and its tools'
// parameters, decide the format and tool_calls objectives.
func TestSchemaObjectives(t *testing.T) {
	r, err := New(Config{Objectives: []string{Format, ToolCalls}})
	if err != nil {
		t.Fatal(err)
	}
	schema := []byte(`{"type":"object","properties":{"city":{"type":"string"}},"required":["city"],"additionalProperties":false}`)
	tools := []backend.Tool{{Type: "function", Name: "weather", Parameters: schema}}
	call := func(name, args string) []backend.ToolCall {
		return []backend.ToolCall{{ID: "c", Type: "function", Name: name, Arguments: args}}
	}
	for _, c := range []struct {
		s      rm.Sample
		format float32
		calls  float32
	}{
		{rm.Sample{Response: `{"city":"Paris"}`, WantJSON: true, Schema: schema}, 1, 1},
		{rm.Sample{Response: `{"city":3}`, WantJSON: true, Schema: schema}, 0, 1},
		{rm.Sample{Response: `{"town":"x"}`, WantJSON: true, Schema: schema}, 0, 1},
		{rm.Sample{Response: `[1]`, WantJSON: true}, 0, 1}, // json_object: an object
		{rm.Sample{Response: "x", Calls: call("weather", `{"city":"Paris"}`), Tools: tools}, 1, 1},
		{rm.Sample{Response: "x", Calls: call("weather", `{"city":42}`), Tools: tools}, 1, 0},
		{rm.Sample{Response: "x", Calls: call("weather", `{"city": "Par`), Tools: tools}, 1, 0},
		{rm.Sample{Response: "x", Calls: call("stocks", `{}`), Tools: tools}, 1, 0},
		{rm.Sample{Response: "x", Calls: append(call("weather", `{"city":"a"}`), call("stocks", `{}`)...), Tools: tools}, 1, 0.5},
		// A schema that tries to read a file validates nothing.
		{rm.Sample{Response: `{"city":"Paris"}`, WantJSON: true, Schema: []byte(`{"$ref":"file:///etc/passwd"}`)}, 0, 1},
	} {
		got, err := r.Score(context.Background(), []rm.Sample{c.s})
		if err != nil {
			t.Fatal(err)
		}
		if got[0][0] != c.format || got[0][1] != c.calls {
			t.Errorf("%+v: format %v, tool_calls %v; want %v, %v", c.s, got[0][0], got[0][1], c.format, c.calls)
		}
	}
}
