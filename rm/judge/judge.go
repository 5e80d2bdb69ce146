package judge

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"regexp"
	"strconv"
	"strings"
	"text/template"
	"unicode"
	"unicode/utf8"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
	"golang.org/x/sync/errgroup"
)

// DefaultQuestion is the judge's prompt: .Conversation is the whole
// conversation the answer continues (one "role: content" line a message),
// .Prompt its last user message, .Response the answer.
const DefaultQuestion = `Here is a conversation and the assistant's next answer.

{{.Conversation}}

Answer: {{.Response}}

Is the answer helpful, correct and clear? Reply with Yes or No.`

// RatingQuestion is the rating judge's prompt: a number from 1 to 10.
const RatingQuestion = `Here is a conversation and the assistant's next answer.

{{.Conversation}}

Answer: {{.Response}}

Rate the answer from 1 (useless) to 10 (excellent). Reply with the number only.`

// CritiqueQuestion is the critique judge's prompt: a critique, then the
// score on a last line of its own.
const CritiqueQuestion = `Here is a conversation and the assistant's next answer.

{{.Conversation}}

Answer: {{.Response}}

Critique the answer in a few sentences: is it helpful, correct and clear? Then, on a last line of its own, give a score from 1 (useless) to 10 (excellent) exactly as "Score: N".`

// Default objective names: each mode has its own, since each is on its
// own scale (log-odds, a 1–10 rating, a log ratio).
const (
	Objective             = "judge"
	RatingObjective       = "judge_rating"
	CritiqueObjective     = "judge_critique"
	DensityRatioObjective = "density_ratio"
)

// Judge modes.
const (
	ModeYesNo    = "yes_no"
	ModeRating   = "rating"
	ModeCritique = "critique"
)

// Judge is an LLM-as-judge rewarder with one objective: the log-odds of
// Yes over No (yes_no), a parsed 1–10 rating (rating), or a critique
// followed by a 1–10 score (critique, whose critique is the sample's
// detail).
type Judge struct {
	b           backend.Backend
	model       string
	objective   string
	question    *template.Template
	mode        string
	floor       *float64
	maxTokens   int // critique: tokens the judge may write
	maxCritique int // critique: runes of it kept in the report
	concurrent  int
}

var (
	_ rm.Rewarder   = (*Judge)(nil)
	_ rm.Identified = (*Judge)(nil)
	_ rm.Explainer  = (*Judge)(nil)
)

// New returns a yes/no judge asking model on b, which must give logprobs.
// question is a template (empty: DefaultQuestion); objective names the
// score (empty: Objective). floor, when set, is the logprob given to "Yes"
// or "No" when the judge's top alternatives list only the other.
func New(b backend.Backend, model, question, objective string, floor *float64) (*Judge, error) {
	return newJudge(b, model, cmp.Or(question, DefaultQuestion), cmp.Or(objective, Objective), ModeYesNo, floor)
}

// NewRating returns a judge that asks for a 1–10 rating and reads it from
// the answer's text: for backends without logprobs. question is a template
// (empty: RatingQuestion); objective names the score (empty:
// RatingObjective).
func NewRating(b backend.Backend, model, question, objective string) (*Judge, error) {
	return newJudge(b, model, cmp.Or(question, RatingQuestion), cmp.Or(objective, RatingObjective), ModeRating, nil)
}

// Critique defaults: tokens the judge may write, and runes of its critique
// kept in the report.
const (
	DefaultCritiqueTokens = 512
	DefaultCritiqueRunes  = 1000
)

// NewCritique returns a judge that writes a critique, then a score from 1
// to 10 on a line "Score: N" (see ParseCritique). maxTokens bounds what it
// writes (0: DefaultCritiqueTokens), maxRunes what of the critique the
// report keeps (0: DefaultCritiqueRunes).
func NewCritique(b backend.Backend, model, question, objective string, maxTokens, maxRunes int) (*Judge, error) {
	j, err := newJudge(b, model, cmp.Or(question, CritiqueQuestion), cmp.Or(objective, CritiqueObjective), ModeCritique, nil)
	if err != nil {
		return nil, err
	}
	j.maxTokens, j.maxCritique = cmp.Or(maxTokens, DefaultCritiqueTokens), cmp.Or(maxRunes, DefaultCritiqueRunes)
	return j, nil
}

// CheckQuestion parses a judge's question template and asks it of a
// sample conversation, as the judge will: for a config's check, so that a
// field the data lacks ({{.prompt}}) is found before the first request.
func CheckQuestion(question string) error {
	q, err := parseQuestion(question)
	if err != nil {
		return err
	}
	s := rm.Sample{Messages: []backend.Message{{Role: "user", Content: "q"}}, Response: "a"}
	if err := q.Execute(io.Discard, questionData(s)); err != nil {
		return fmt.Errorf("judge question: %w", err)
	}
	return nil
}

func parseQuestion(question string) (*template.Template, error) {
	q, err := template.New("judge").Option("missingkey=error").Parse(question)
	if err != nil {
		return nil, fmt.Errorf("judge question: %w", err)
	}
	return q, nil
}

// questionData is what a question template reads.
func questionData(s rm.Sample) map[string]string {
	return map[string]string{"Conversation": conversation(s), "Prompt": s.PromptText(), "Response": s.Response}
}

func newJudge(b backend.Backend, model, question, objective, mode string, floor *float64) (*Judge, error) {
	q, err := parseQuestion(question)
	if err != nil {
		return nil, err
	}
	return &Judge{b: b, model: model, objective: objective, question: q, floor: floor, mode: mode, concurrent: 8}, nil
}

func (j *Judge) Objectives() []string { return []string{j.objective} }
func (j *Judge) ID() string {
	return fmt.Sprintf("judge:%s:%s/%s/%s:%d:%x", j.mode, j.b.Name(), j.model, j.objective, j.maxTokens, hashString(j.question.Root.String()))
}

func hashString(s string) uint32 {
	h := uint32(2166136261)
	for i := range len(s) {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

func (j *Judge) Score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
	scores, _, err := j.Explain(ctx, samples)
	return scores, err
}

// Explain asks the judge about every sample, 8 at a time; a critique
// judge's critiques are the details.
func (j *Judge) Explain(ctx context.Context, samples []rm.Sample) ([][]float32, []json.RawMessage, error) {
	out := make([][]float32, len(samples))
	var details []json.RawMessage
	if j.mode == ModeCritique {
		details = make([]json.RawMessage, len(samples))
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.concurrent)
	for i, s := range samples {
		g.Go(func() error {
			v, critique, err := j.one(gctx, s)
			if err != nil {
				return fmt.Errorf("%w: judge: %w", fault.ErrReward, err)
			}
			out[i] = []float32{float32(v)}
			if details != nil {
				details[i], _ = json.Marshal(map[string]string{"critique": critique})
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, nil, err
	}
	return out, details, nil
}

func (j *Judge) ask(ctx context.Context, s rm.Sample, logprobs bool) (*backend.Choice, error) {
	var b strings.Builder
	if err := j.question.Execute(&b, questionData(s)); err != nil {
		return nil, err
	}
	zero := 0.0
	r := &backend.Request{Model: j.model, Messages: []backend.Message{{Role: "user", Content: b.String()}},
		Temperature: &zero, MaxTokens: 4}
	switch {
	case logprobs:
		r.MaxTokens, r.Logprobs, r.TopLogprobs = 1, true, min(20, j.b.Caps().MaxTopLogprobs)
	case j.mode == ModeCritique:
		r.MaxTokens = j.maxTokens
	}
	g, err := j.b.Generate(ctx, r)
	if err != nil {
		return nil, err
	}
	if len(g.Choices) == 0 {
		return nil, fmt.Errorf("no answer")
	}
	return &g.Choices[0], nil
}

// one scores a sample; a critique judge also returns its critique.
func (j *Judge) one(ctx context.Context, s rm.Sample) (float64, string, error) {
	switch j.mode {
	case ModeRating:
		c, err := j.ask(ctx, s, false)
		if err != nil {
			return 0, "", err
		}
		v, err := ParseRating(c.Text)
		return v, "", err
	case ModeCritique:
		c, err := j.ask(ctx, s, false)
		if err != nil {
			return 0, "", err
		}
		critique, v, err := ParseCritique(c.Text)
		if err != nil {
			return 0, "", err
		}
		return v, clipRunes(critique, j.maxCritique), nil
	}
	if !j.b.Caps().Logprobs {
		return 0, "", fmt.Errorf("backend %s gives no logprobs, which yes_no reads (judge.mode: rating asks for a 1–10 rating instead)", j.b.Name())
	}
	c, err := j.ask(ctx, s, true)
	if err != nil {
		return 0, "", err
	}
	if len(c.Logprobs) == 0 {
		return 0, "", fmt.Errorf("backend returned no logprobs")
	}
	v, err := YesNo(c.Logprobs[0], j.floor)
	return v, "", err
}

// scoreLine finds "Score: N", "**Score:** N", "score = N/10" and the like.
var scoreLine = regexp.MustCompile(`(?i)\bscore\W{0,4}?\s*[:=]\s*\**\s*(\d+(?:\.\d+)?)\s*\**\s*(?:/\s*10\b|out of 10\b)?`)

// ParseCritique splits a critique judge's answer into the critique (what
// comes before the last score) and the score, which must be a number from 1
// to 10. Anything else is an error quoting the answer's start: never a 0.
func ParseCritique(text string) (string, float64, error) {
	all := scoreLine.FindAllStringSubmatchIndex(text, -1)
	if len(all) == 0 {
		return "", 0, fmt.Errorf(`the judge's answer has no "Score: N" line (1–10); it begins %q`, clipRunes(strings.TrimSpace(text), 80))
	}
	m := all[len(all)-1]
	if otherScale(text[m[1]:]) {
		return "", 0, fmt.Errorf("the judge's score %q is on another scale than 1–10", clipRunes(strings.TrimSpace(text[m[2]:]), 24))
	}
	v, err := strconv.ParseFloat(text[m[2]:m[3]], 64)
	if err != nil || v < 1 || v > 10 {
		return "", 0, fmt.Errorf("the judge's score %q is outside 1–10", text[m[2]:m[3]])
	}
	critique := strings.TrimSpace(text[:m[0]])
	if critique == "" {
		return "", 0, fmt.Errorf("the judge gave a score but no critique")
	}
	return critique, v, nil
}

// clipRunes keeps at most n runes of s, marking a cut with "…".
func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return strings.TrimRightFunc(string(r[:n]), unicode.IsSpace) + "…"
}

// conversation renders the sample's messages, or its raw prompt, one
// "role: content" line a message.
func conversation(s rm.Sample) string {
	if s.Messages == nil {
		return "user: " + s.Prompt
	}
	var b strings.Builder
	for _, m := range s.Messages {
		fmt.Fprintf(&b, "%s: %s\n", m.Role, m.Content)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// answerWord reads a token as the word it spells: "Yes", " yes", "YES",
// "**Yes**", "Yes." and "▁Yes" are all "yes".
func answerWord(tok string) string {
	tok = strings.TrimLeft(tok, " \t\n▁Ġ")
	return strings.ToLower(strings.Trim(tok, " \t\n*_`'\".,:;!?()[]"))
}

// YesNo returns log P(Yes) − log P(No) from one position's alternatives,
// summing the spellings of each answer. The alternatives must list at least
// one of them; the other, when missing, has at most the smallest listed
// probability: floor when given, else that bound.
func YesNo(lp backend.TokenLogprob, floor *float64) (float64, error) {
	if len(lp.Top) == 0 {
		return 0, fmt.Errorf("the judge's answer has no alternatives to read Yes and No from (top_logprobs)")
	}
	yes, no := math.Inf(-1), math.Inf(-1)
	smallest := math.Inf(1)
	for _, a := range lp.Top {
		smallest = math.Min(smallest, a.Logprob)
		switch answerWord(a.Token) {
		case "yes":
			yes = rm.LogSumExp(yes, a.Logprob)
		case "no":
			no = rm.LogSumExp(no, a.Logprob)
		}
	}
	missing := smallest
	if floor != nil {
		missing = *floor
	}
	switch {
	case math.IsInf(yes, -1) && math.IsInf(no, -1):
		return 0, fmt.Errorf("neither Yes nor No is among the judge's %d likeliest answers (the first was %q)", len(lp.Top), lp.Token)
	case math.IsInf(yes, -1):
		yes = missing
	case math.IsInf(no, -1):
		no = missing
	}
	return yes - no, nil
}

var (
	// ratingScale is the scale restated ("Rating 1-10: 9"), no rating.
	ratingScale = regexp.MustCompile(`\b1\s*(?:-|–|to)\s*10\b`)
	// aNumber is a rating as written: signed, with decimals, and the
	// scale it may name after it.
	aNumber = regexp.MustCompile(`[-−]?\d+(?:\.\d+)?(?:\s*(?:/\s*\d+|out of\s*\d+|%))?`)
	// onTen is the one scale a rating may name.
	onTen = regexp.MustCompile(`^[-−]?\d+(?:\.\d+)?(?:\s*(?:/\s*10|out of\s*10))?$`)
)

// ParseRating reads the first number of a judge's answer (past a
// restated scale such as "1-10") as a 1–10 rating: with decimals, and
// "/10" or "out of 10" after it at most. A number on another scale
// ("4/5", "90%") or outside 1–10 is an error, never a rating.
func ParseRating(text string) (float64, error) {
	m := aNumber.FindString(ratingScale.ReplaceAllString(text, ""))
	if m == "" {
		return 0, fmt.Errorf("no rating in %q", clipRunes(text, 80))
	}
	if !onTen.MatchString(m) {
		return 0, fmt.Errorf("rating %q is on another scale than 1–10", m)
	}
	n, _, _ := strings.Cut(m, "/")
	n, _, _ = strings.Cut(n, "out")
	v, err := strconv.ParseFloat(strings.TrimSpace(n), 64)
	if err != nil || v < 1 || v > 10 {
		return 0, fmt.Errorf("rating %q outside 1–10", m)
	}
	return v, nil
}

// otherScale reports a score followed by a scale other than 10 ("/5",
// "%", "out of 100"): what follows the match of scoreLine.
func otherScale(rest string) bool {
	rest = strings.TrimLeft(rest, " *")
	return strings.HasPrefix(rest, "/") || strings.HasPrefix(rest, "%") || strings.HasPrefix(strings.ToLower(rest), "out of")
}

// DensityRatio is the reward log p_strong(response | prompt) −
// log p_weak(response | prompt), from two backends that can score given
// text; with PerToken, divided by the response's tokens.
type DensityRatio struct {
	strong, weak           backend.Scorer
	strongName, weakName   string
	strongModel, weakModel string
	objective              string
	format                 *rm.Format
	perToken               bool
}

var _ rm.Rewarder = (*DensityRatio)(nil)

// NewDensityRatio checks that both backends can score the samples: given
// text, and, for chat samples, either chat messages or, with format, the
// conversation rendered through the models' template to a raw prompt.
func NewDensityRatio(strong backend.Backend, strongModel string, weak backend.Backend, weakModel, objective string, format *rm.Format, perToken bool) (*DensityRatio, error) {
	for _, b := range []backend.Backend{strong, weak} {
		if !b.Caps().Scoring {
			return nil, fmt.Errorf("backend %s cannot score given text, which the density ratio needs", b.Name())
		}
		if format == nil && !b.Caps().ScoringChat {
			return nil, fmt.Errorf("backend %s scores raw prompts only: set judge.format to render chats through the model's template", b.Name())
		}
	}
	ss, ok1 := strong.(backend.Scorer)
	ws, ok2 := weak.(backend.Scorer)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("density ratio: backends must implement scoring")
	}
	if objective == "" {
		objective = DensityRatioObjective
	}
	return &DensityRatio{strong: ss, weak: ws, strongName: strong.Name(), weakName: weak.Name(),
		strongModel: strongModel, weakModel: weakModel, objective: objective, format: format, perToken: perToken}, nil
}

func (d *DensityRatio) Objectives() []string { return []string{d.objective} }
func (d *DensityRatio) ID() string {
	f := ""
	if d.format != nil {
		f = d.format.Name
	}
	return fmt.Sprintf("cdr:%s/%s-%s/%s:%s:%v", d.strongName, d.strongModel, d.weakName, d.weakModel, f, d.perToken)
}

func (d *DensityRatio) Score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
	out := make([][]float32, len(samples))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, s := range samples {
		g.Go(func() error {
			prompt := s.Prompt
			if s.Messages != nil && d.format != nil {
				var err error
				if prompt, err = d.format.RenderOpen(rm.Sample{Messages: s.Messages}); err != nil {
					return fmt.Errorf("%w: density ratio: %w", fault.ErrReward, err)
				}
			}
			req := func(model string) *backend.Request {
				if s.Messages != nil && d.format == nil {
					return &backend.Request{Model: model, Messages: s.Messages}
				}
				return &backend.Request{Model: model, Prompt: prompt}
			}
			a, err := d.strong.ScoreText(gctx, req(d.strongModel), s.Response)
			if err != nil {
				return fmt.Errorf("%w: density ratio (strong): %w", fault.ErrReward, err)
			}
			b, err := d.weak.ScoreText(gctx, req(d.weakModel), s.Response)
			if err != nil {
				return fmt.Errorf("%w: density ratio (weak): %w", fault.ErrReward, err)
			}
			if s.Response != "" && (a.Tokens == 0 || b.Tokens == 0) {
				// A sum over no tokens is 0, which would read as a
				// confident score: a backend that gave none failed.
				return fmt.Errorf("%w: density ratio: a backend gave no logprobs for the answer", fault.ErrReward)
			}
			v := a.Logprob - b.Logprob
			if d.perToken && a.Tokens > 0 {
				v /= float64(a.Tokens)
			}
			out[i] = []float32{float32(v)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
