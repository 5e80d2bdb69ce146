package rules

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"unicode"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// Objective names of the built-in rules.
const (
	Verbosity  = "verbosity"
	Repetition = "repetition"
	Format     = "format"
	ToolCalls  = "tool_calls"
)

func builtin(o string) bool {
	return o == Verbosity || o == Repetition || o == Format || o == ToolCalls
}

// Config selects and tunes the rules.
type Config struct {
	// Objectives to compute, in order; empty: verbosity, repetition,
	// format, tool_calls, then every keyword objective in name order.
	Objectives []string
	NGram      int    // repetition's n; 0: 3
	Regex      string // format: a response must match it (when JSON is not asked for)
	// Keywords maps an objective name to case-insensitive regular
	// expressions; the objective is the share of them the response matches.
	Keywords map[string][]string
}

// Rules is a rule-based rewarder.
type Rules struct {
	objectives []string
	n          int
	format     *regexp.Regexp
	keywords   map[string][]*regexp.Regexp
	id         string
	schemas    schemas
}

var (
	_ rm.Rewarder   = (*Rules)(nil)
	_ rm.Identified = (*Rules)(nil)
)

// New compiles a rule set.
func New(c Config) (*Rules, error) {
	r := &Rules{n: c.NGram, keywords: map[string][]*regexp.Regexp{}}
	if r.n == 0 {
		r.n = 3
	}
	if r.n < 1 {
		return nil, fault.Invalid("rules.ngram", "ngram must be at least 1")
	}
	if c.Regex != "" {
		re, err := regexp.Compile(c.Regex)
		if err != nil {
			return nil, fault.Invalid("rules.regex", "regex: %v", err)
		}
		r.format = re
	}
	names := make([]string, 0, len(c.Keywords))
	for name, pats := range c.Keywords {
		if builtin(name) {
			return nil, fault.Invalid("rules.keywords."+name, "keyword objective %q shadows a built-in rule", name)
		}
		if len(pats) == 0 {
			return nil, fault.Invalid("rules.keywords."+name, "keyword objective %q has no patterns", name)
		}
		for i, p := range pats {
			re, err := regexp.Compile("(?i)" + p)
			if err != nil {
				return nil, fault.Invalid(fmt.Sprintf("rules.keywords.%s[%d]", name, i), "keyword objective %q: %v", name, err)
			}
			r.keywords[name] = append(r.keywords[name], re)
		}
		names = append(names, name)
	}
	sort.Strings(names)
	r.objectives = c.Objectives
	if len(r.objectives) == 0 {
		r.objectives = append([]string{Verbosity, Repetition, Format, ToolCalls}, names...)
	}
	for _, o := range r.objectives {
		if _, ok := r.keywords[o]; !ok && !builtin(o) {
			return nil, fmt.Errorf("unknown rule objective %q", o)
		}
	}
	b, _ := json.Marshal(c)
	r.id = "rules:" + string(b)
	return r, nil
}

func (r *Rules) Objectives() []string { return r.objectives }
func (r *Rules) ID() string           { return r.id }

func (r *Rules) Score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
	out := make([][]float32, len(samples))
	for i, s := range samples {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		toks := Tokens(s.Response)
		row := make([]float32, len(r.objectives))
		for k, o := range r.objectives {
			switch o {
			case Verbosity:
				row[k] = float32(len(toks))
			case Repetition:
				row[k] = float32(RepeatedNGrams(toks, r.n))
			case Format:
				row[k] = r.formatScore(s)
			case ToolCalls:
				row[k] = r.schemas.toolCalls(s.Calls, s.Tools)
			default:
				row[k] = share(r.keywords[o], s.Response)
			}
		}
		out[i] = row
	}
	return out, nil
}

// formatScore: when the request asked for JSON, 1 for a JSON object (that
// follows the schema response_format gave); else whether the regex
// matches; else 1.
func (r *Rules) formatScore(s rm.Sample) float32 {
	text := s.Response
	if s.Calls != nil {
		text = s.Text
	}
	switch {
	case s.WantJSON:
		return boolScore(r.schemas.validJSON(text, s.Schema))
	case r.format != nil:
		return boolScore(r.format.MatchString(s.Response))
	}
	return 1
}

func boolScore(b bool) float32 {
	if b {
		return 1
	}
	return 0
}

func share(res []*regexp.Regexp, text string) float32 {
	hit := 0
	for _, re := range res {
		if re.MatchString(text) {
			hit++
		}
	}
	return float32(hit) / float32(len(res))
}

// Tokens splits text into lower-cased words and punctuation marks: the
// rules' notion of a token.
func Tokens(text string) []string {
	var out []string
	start := -1
	for i, c := range text {
		word := unicode.IsLetter(c) || unicode.IsDigit(c) || c == '\''
		if word {
			if start < 0 {
				start = i
			}
			continue
		}
		if start >= 0 {
			out = append(out, strings.ToLower(text[start:i]))
			start = -1
		}
		if !unicode.IsSpace(c) {
			out = append(out, string(c))
		}
	}
	if start >= 0 {
		out = append(out, strings.ToLower(text[start:]))
	}
	return out
}

// RepeatedNGrams is the share of the n-grams of toks that repeat an earlier
// one: 0 for no repetition, approaching 1 for a loop.
func RepeatedNGrams(toks []string, n int) float64 {
	total := len(toks) - n + 1
	if total <= 0 {
		return 0
	}
	seen := make(map[string]struct{}, total)
	repeats := 0
	for i := range total {
		k := strings.Join(toks[i:i+n], "\x00")
		if _, ok := seen[k]; ok {
			repeats++
			continue
		}
		seen[k] = struct{}{}
	}
	return float64(repeats) / float64(total)
}

// DefaultWeights are the weights a rules reward applies when neither the
// config nor a request names any: no preference on length, repetition
// penalized, a well-formed answer and each keyword objective rewarded.
func DefaultWeights(objectives []string) map[string]float64 {
	w := make(map[string]float64, len(objectives))
	for _, o := range objectives {
		switch o {
		case Verbosity:
			w[o] = 0
		case Repetition:
			w[o] = -1
		default:
			w[o] = 1
		}
	}
	return w
}
