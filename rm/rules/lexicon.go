package rules

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"

	"github.com/steergate/steergate/rm"
)

// Lexicon is a token-level reward with no model: a candidate next piece of
// text earns, for each objective, its weight when one of the objective's
// patterns (case-insensitive regular expressions) matches a stretch of the
// answer that ends inside the candidate, so that guided decoding leans
// towards, or away from (negative weights), those words as it writes.
type Lexicon struct {
	objectives []string
	patterns   [][]*regexp.Regexp
	weights    []float64
}

var _ rm.TokenRewarder = (*Lexicon)(nil)

// NewLexicon compiles patterns by objective, weighted (default 1).
func NewLexicon(patterns map[string][]string, weights map[string]float64) (*Lexicon, error) {
	if len(patterns) == 0 {
		return nil, fmt.Errorf("a lexicon needs patterns for at least one objective")
	}
	l := &Lexicon{objectives: slices.Sorted(maps.Keys(patterns))}
	for _, o := range l.objectives {
		var res []*regexp.Regexp
		for _, p := range patterns[o] {
			re, err := regexp.Compile("(?i)" + p)
			if err != nil {
				return nil, fmt.Errorf("lexicon %s: pattern %q: %w", o, p, err)
			}
			res = append(res, re)
		}
		if len(res) == 0 {
			return nil, fmt.Errorf("lexicon %s: no patterns", o)
		}
		w, ok := weights[o]
		if !ok {
			w = 1
		}
		l.patterns, l.weights = append(l.patterns, res), append(l.weights, w)
	}
	for o := range weights {
		if _, ok := patterns[o]; !ok {
			return nil, fmt.Errorf("lexicon: weight for %q, which has no patterns", o)
		}
	}
	return l, nil
}

// Objectives are the lexicon's objectives, in name order.
func (l *Lexicon) Objectives() []string { return l.objectives }

// ID names the lexicon's content, for caches.
func (l *Lexicon) ID() string {
	id := "lexicon"
	for i, o := range l.objectives {
		id += fmt.Sprintf(":%s=%g", o, l.weights[i])
		for _, re := range l.patterns[i] {
			id += "|" + re.String()
		}
	}
	return id
}

// LogProbs returns each candidate's bonus after the partial answer.
func (l *Lexicon) LogProbs(_ context.Context, s rm.Sample, next []string) ([]float32, error) {
	out := make([]float32, len(next))
	for i, n := range next {
		if n == "" {
			continue // the end of the answer matches nothing
		}
		text := s.Response + n
		for o, res := range l.patterns {
			for _, re := range res {
				if endsIn(re, text, len(s.Response)) {
					out[i] += float32(l.weights[o])
					break
				}
			}
		}
	}
	return out, nil
}

// endsIn reports whether re matches text somewhere ending after from, in
// the appended candidate.
func endsIn(re *regexp.Regexp, text string, from int) bool {
	for _, m := range re.FindAllStringIndex(text, -1) {
		if m[1] > from {
			return true
		}
	}
	return false
}
