package steering

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
)

// SelfConsistency is the strategy's name.
const SelfConsistency = "self_consistency"

func init() {
	Register(SelfConsistency, func() Strategy { return &selfConsistency{} }, RewardOptional)
}

// selfConsistency samples several answers, extracts the final answer of
// each (the whole text, the last number, a regex match, a JSON field, or a
// tool call's name and arguments), normalizes it, and returns the answer
// most samples agree on. Ties go to the group with the best reward (when a
// reward is configured) or the best mean token logprob. Sampled in waves,
// it stops as soon as the leader cannot be overtaken by the samples left.
type selfConsistency struct {
	N        int    `json:"n,omitempty"`
	Extract  string `json:"extract,omitempty"`
	Wave     int    `json:"wave,omitempty"`
	TieBreak string `json:"tie_break,omitempty"`
	extract  extractor
}

// Extraction modes.
const (
	extractAnswer     = "answer"
	extractLastNumber = "last_number"
	extractToolCall   = "tool_call"
)

type extractor func(c backend.Choice) (string, bool)

func (p *selfConsistency) Check(c *Check) error {
	if err := c.NoZero("n", "wave"); err != nil {
		return err
	}
	if err := c.Samples("n", &p.N, max(5, c.K)); err != nil {
		return err
	}
	if p.Wave == 0 {
		p.Wave = p.N
	}
	if p.Wave < 1 || p.Wave > p.N {
		return c.Bad("wave", "wave must be between 1 and n (%d)", p.N)
	}
	if p.Extract == "" {
		p.Extract = extractAnswer
	}
	var err error
	if p.extract, err = extractorOf(p.Extract); err != nil {
		return c.Bad("extract", "%v", err)
	}
	switch p.TieBreak {
	case "":
		p.TieBreak = "logprob"
		if c.Objectives != nil {
			p.TieBreak = "reward"
		}
	case "reward":
		if c.Objectives == nil {
			return c.Bad("tie_break", "tie_break reward needs a reward; none is configured")
		}
	case "logprob":
	default:
		return c.Bad("tie_break", "tie_break must be reward or logprob")
	}
	if p.TieBreak == "logprob" && !c.Caps.Logprobs {
		return c.Unsupported("tie_break", "tie_break logprob needs logprobs, which backend %s does not give", c.Backend)
	}
	return nil
}

var lastNumber = regexp.MustCompile(`-?\d[\d,]*(?:\.\d+)?`)

func extractorOf(mode string) (extractor, error) {
	switch {
	case mode == extractAnswer:
		return func(c backend.Choice) (string, bool) { return normalize(c.Text), strings.TrimSpace(c.Text) != "" }, nil
	case mode == extractLastNumber:
		return func(c backend.Choice) (string, bool) {
			all := lastNumber.FindAllString(c.Text, -1)
			if len(all) == 0 {
				return "", false
			}
			return canonicalNumber(all[len(all)-1]), true
		}, nil
	case mode == extractToolCall:
		return func(c backend.Choice) (string, bool) {
			if len(c.ToolCalls) == 0 {
				return "", false
			}
			var keys []string
			for _, tc := range c.ToolCalls {
				keys = append(keys, tc.Name+" "+canonicalJSON(tc.Arguments))
			}
			return strings.Join(keys, "\n"), true
		}, nil
	case strings.HasPrefix(mode, "regex:"):
		re, err := regexp.Compile(strings.TrimPrefix(mode, "regex:"))
		if err != nil {
			return nil, fmt.Errorf("extract regex: %v", err)
		}
		if re.MatchString("") {
			// It would find an answer, the empty one, in every sample.
			return nil, fmt.Errorf("extract regex %q matches the empty text: every sample would vote for nothing", fault.Clip(re.String(), 64))
		}
		return func(c backend.Choice) (string, bool) {
			m := re.FindStringSubmatch(c.Text)
			switch {
			case m == nil:
				return "", false
			case len(m) > 1:
				return normalize(m[1]), true
			}
			return normalize(m[0]), true
		}, nil
	case strings.HasPrefix(mode, "json:"):
		path := strings.Split(strings.TrimPrefix(mode, "json:"), ".")
		if slices.Contains(path, "") {
			return nil, fmt.Errorf("extract json:PATH needs field names separated by dots")
		}
		return func(c backend.Choice) (string, bool) {
			var v any
			if json.Unmarshal([]byte(strings.TrimSpace(c.Text)), &v) != nil {
				return "", false
			}
			for _, f := range path {
				m, ok := v.(map[string]any)
				if !ok {
					return "", false
				}
				if v, ok = m[f]; !ok {
					return "", false
				}
			}
			if s, ok := v.(string); ok {
				return normalize(s), true
			}
			b, _ := json.Marshal(v)
			return string(b), true
		}, nil
	}
	return nil, fmt.Errorf("extract must be answer, last_number, tool_call, regex:PATTERN or json:PATH; got %q", fault.Clip(mode, 64))
}

// normalize makes answers that differ only in case, spacing or a final
// full stop the same.
func normalize(s string) string {
	s = strings.Join(strings.Fields(strings.ToLower(s)), " ")
	return strings.TrimRight(s, ".!")
}

// canonicalNumber writes 1,000.50 and 1000.5 alike.
func canonicalNumber(s string) string {
	f, err := strconv.ParseFloat(strings.ReplaceAll(s, ",", ""), 64)
	if err != nil {
		return s
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}

// canonicalJSON writes equal JSON values alike (object keys sorted, no
// spaces); text that is not JSON stays as it is.
func canonicalJSON(s string) string {
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	b, _ := json.Marshal(v)
	return string(b)
}

// group is the samples that extracted the same answer.
type group struct {
	key     string
	members []*sample
	best    *sample // the representative: best by the tie-break
	score   float64 // the representative's tie-break score
}

// Stop reasons of self_consistency.
const (
	stopDecided = "decided" // the leader could no longer be overtaken
)

func (p *selfConsistency) Steer(ctx context.Context, r *backend.Request, env *Env) (*Outcome, error) {
	req := r
	if p.TieBreak == "logprob" && !r.Logprobs {
		req = r.Clone()
		req.Logprobs, req.TopLogprobs = true, 0
	}
	var all []*sample
	failed, next, waves := 0, 0, 0
	var first error
	reason := stopMaxSamples
	for next < p.N {
		size := min(p.Wave, p.N-next)
		got, f, sampleErr, err := draw(ctx, req, env, indices(next, size), 0)
		if err != nil {
			return nil, err
		}
		if first == nil {
			first = sampleErr
		}
		next, failed, waves = next+size, failed+f, waves+1
		all = append(all, got...)
		if env.Reward != nil && p.TieBreak == "reward" {
			if err := env.score(ctx, r, got); err != nil {
				return nil, err
			}
		}
		groups := p.vote(all)
		if next < p.N && len(usable(all)) >= env.Common.MinSuccess && decided(groups, p.N-next) {
			reason = stopDecided
			break
		}
	}
	for _, s := range all {
		if !s.scored {
			s.scores, s.utility, s.scored = nil, math.NaN(), false
		}
		if _, ok := p.extract(s.choice); !ok {
			s.dropped = "no answer could be extracted"
		}
	}
	if err := enough(all, env.Common.MinSuccess, failed, first); err != nil {
		return nil, err
	}
	groups := p.vote(all)
	k := min(r.Choices(), len(groups))
	var chosen []*sample
	for _, g := range groups[:k] {
		chosen = append(chosen, g.best)
	}
	if len(chosen) < r.Choices() {
		return nil, fmt.Errorf("%w: %d distinct answers could be extracted, %d were asked for", fault.ErrInsufficient, len(groups), r.Choices())
	}
	if !r.Logprobs {
		for _, s := range all {
			s.choice.Logprobs = nil
		}
	}
	votes := map[string]int{}
	for i, g := range groups {
		if i == 20 {
			break // the report names the 20 most voted answers
		}
		votes[g.key] = len(g.members)
	}
	for _, s := range all {
		key, ok := p.extract(s.choice)
		if s.extra == nil {
			s.extra = map[string]any{}
		}
		if ok {
			s.extra["answer"] = fault.Clip(key, 200)
		}
	}
	return finishChosen(env, all, chosen, failed, func(i *Info) {
		i.Waves, i.StopReason = waves, reason
		i.Extra = map[string]any{"votes": votes, "groups": len(groups), "tie_break": p.TieBreak}
	})
}

// vote groups the extracted answers, most votes first; ties go to the
// better representative, then to the lower sample index.
func (p *selfConsistency) vote(ss []*sample) []*group {
	by := map[string]*group{}
	var order []*group
	for _, s := range ss {
		key, ok := p.extract(s.choice)
		if !ok {
			continue
		}
		g := by[key]
		if g == nil {
			g = &group{key: key, score: math.Inf(-1)}
			by[key] = g
			order = append(order, g)
		}
		g.members = append(g.members, s)
		if sc := p.tieScore(s); g.best == nil || sc > g.score {
			g.best, g.score = s, sc
		}
	}
	sort.SliceStable(order, func(i, j int) bool {
		a, b := order[i], order[j]
		if len(a.members) != len(b.members) {
			return len(a.members) > len(b.members)
		}
		if a.score != b.score {
			return a.score > b.score
		}
		return a.best.index < b.best.index
	})
	return order
}

// tieScore is a sample's tie-break score: its utility, or the mean
// logprob of its tokens; −Inf when unknown.
func (p *selfConsistency) tieScore(s *sample) float64 {
	if p.TieBreak == "reward" {
		if s.scored && s.invalid == "" && finite(s.utility) {
			return s.utility
		}
		return math.Inf(-1)
	}
	if len(s.choice.Logprobs) == 0 {
		return math.Inf(-1)
	}
	var sum float64
	for _, lp := range s.choice.Logprobs {
		sum += lp.Logprob
	}
	return sum / float64(len(s.choice.Logprobs))
}

// decided reports whether the leader keeps its lead whatever the
// remaining samples say.
func decided(groups []*group, remaining int) bool {
	if len(groups) == 0 {
		return false
	}
	second := 0
	if len(groups) > 1 {
		second = len(groups[1].members)
	}
	return len(groups[0].members)-second > remaining
}
