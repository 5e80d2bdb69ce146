package rules

import (
	"context"
	"testing"

	"github.com/steergate/steergate/rm"
)

// A candidate earns an objective's weight when one of its patterns matches
// text that ends in the candidate; text already written earns nothing
// more, and the end of the answer matches nothing.
func TestLexicon(t *testing.T) {
	l, err := NewLexicon(map[string][]string{"helpfulness": {`\bbecause\b`, `for example`}, "rudeness": {`\bstupid\b`}},
		map[string]float64{"rudeness": -3})
	if err != nil {
		t.Fatal(err)
	}
	s := rm.Sample{Response: "It is blue because"}
	got, err := l.LogProbs(context.Background(), s, []string{" air", " stupid", "", " of", " BECAUSE"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{0, -3, 0, 0, 1}; !equal(got, want) {
		t.Errorf("bonuses %v, want %v", got, want)
	}
	// A pattern of several words is matched across candidates.
	got, _ = l.LogProbs(context.Background(), rm.Sample{Response: "for"}, []string{" example", " instance"})
	if want := []float32{1, 0}; !equal(got, want) {
		t.Errorf("across candidates %v, want %v", got, want)
	}
	for _, bad := range []map[string][]string{nil, {"x": {}}, {"x": {"("}}} {
		if _, err := NewLexicon(bad, nil); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
	if _, err := NewLexicon(map[string][]string{"x": {"a"}}, map[string]float64{"y": 1}); err == nil {
		t.Error("a weight for an objective without patterns accepted")
	}
}

func equal(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
