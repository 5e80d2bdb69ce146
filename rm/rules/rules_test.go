package rules

import (
	"context"
	"testing"

	"github.com/steergate/steergate/rm"
)

func TestRules(t *testing.T) {
	r, err := New(Config{NGram: 2, Regex: `^\d+$`, Keywords: map[string][]string{"explain": {`\bbecause\b`, `\bfirst\b`}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := r.Objectives(); len(got) != 4 || got[3] != "explain" {
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
		{7, 0, 0, 0.5},
		{4, 2.0 / 3, 0, 0},
		{7, 0, 1, 0},
		{6, 0, 0, 0},
		{1, 0, 1, 0},
		// 12 tokens, 11 bigrams; the second sentence repeats 5 of them
		// and "is ." -> ". first" is new, so 5/11.
		{12, 5.0 / 11, 0, 1},
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
