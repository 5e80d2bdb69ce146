package judge

import (
	"context"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
	"text/template"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
	"golang.org/x/sync/errgroup"
)

// DefaultQuestion is the judge's prompt; .Prompt and .Response are the
// sample's.
const DefaultQuestion = `Here is a question and an answer.

Question: {{.Prompt}}

Answer: {{.Response}}

Is the answer helpful, correct and clear? Reply with Yes or No.`

// RatingQuestion is asked instead where the backend has no logprobs.
const RatingQuestion = `Here is a question and an answer.

Question: {{.Prompt}}

Answer: {{.Response}}

Rate the answer from 1 (useless) to 10 (excellent). Reply with the number only.`

// Default objective names.
const (
	Objective             = "judge"
	DensityRatioObjective = "density_ratio"
)

// Judge is an LLM-as-judge rewarder with one objective.
type Judge struct {
	b          backend.Backend
	model      string
	objective  string
	question   *template.Template
	rating     *template.Template
	concurrent int
}

var (
	_ rm.Rewarder   = (*Judge)(nil)
	_ rm.Identified = (*Judge)(nil)
)

// New returns a judge asking model on b. question is a template (empty:
// DefaultQuestion); objective names the score (empty: "judge").
func New(b backend.Backend, model, question, objective string) (*Judge, error) {
	if question == "" {
		question = DefaultQuestion
	}
	if objective == "" {
		objective = Objective
	}
	q, err := template.New("judge").Option("missingkey=error").Parse(question)
	if err != nil {
		return nil, fmt.Errorf("judge question: %w", err)
	}
	return &Judge{b: b, model: model, objective: objective, question: q,
		rating: template.Must(template.New("rating").Parse(RatingQuestion)), concurrent: 8}, nil
}

func (j *Judge) Objectives() []string { return []string{j.objective} }
func (j *Judge) ID() string {
	return fmt.Sprintf("judge:%s/%s/%s:%x", j.b.Name(), j.model, j.objective, hashString(j.question.Root.String()))
}

func hashString(s string) uint32 {
	h := uint32(2166136261)
	for i := range len(s) {
		h = (h ^ uint32(s[i])) * 16777619
	}
	return h
}

func (j *Judge) Score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
	out := make([][]float32, len(samples))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(j.concurrent)
	for i, s := range samples {
		g.Go(func() error {
			v, err := j.one(gctx, s)
			if err != nil {
				return fmt.Errorf("%w: judge: %w", fault.ErrReward, err)
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

func (j *Judge) ask(ctx context.Context, t *template.Template, s rm.Sample, logprobs bool) (*backend.Choice, error) {
	var b strings.Builder
	if err := t.Execute(&b, map[string]string{"Prompt": s.PromptText(), "Response": s.Response}); err != nil {
		return nil, err
	}
	zero := 0.0
	r := &backend.Request{Model: j.model, Messages: []backend.Message{{Role: "user", Content: b.String()}},
		Temperature: &zero, MaxTokens: 4}
	if logprobs {
		r.MaxTokens, r.Logprobs, r.TopLogprobs = 1, true, min(20, j.b.Caps().MaxTopLogprobs)
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

func (j *Judge) one(ctx context.Context, s rm.Sample) (float64, error) {
	if !j.b.Caps().Logprobs {
		c, err := j.ask(ctx, j.rating, s, false)
		if err != nil {
			return 0, err
		}
		return ParseRating(c.Text)
	}
	c, err := j.ask(ctx, j.question, s, true)
	if err != nil {
		return 0, err
	}
	if len(c.Logprobs) == 0 {
		return 0, fmt.Errorf("backend returned no logprobs")
	}
	return YesNo(c.Logprobs[0]), nil
}

// YesNo returns log P(Yes) − log P(No) from one position's alternatives,
// summing the spellings of each answer (" yes", "Yes", "YES" …). An answer
// missing from the list has at most the smallest listed probability, which
// is used as its (generous) estimate, so the score stays finite.
func YesNo(lp backend.TokenLogprob) float64 {
	alts := lp.Top
	if len(alts) == 0 {
		alts = []backend.TopLogprob{{Token: lp.Token, Logprob: lp.Logprob}}
	}
	yes, no := math.Inf(-1), math.Inf(-1)
	floor := math.Inf(1)
	for _, a := range alts {
		floor = math.Min(floor, a.Logprob)
		switch strings.ToLower(strings.TrimSpace(a.Token)) {
		case "yes":
			yes = rm.LogSumExp(yes, a.Logprob)
		case "no":
			no = rm.LogSumExp(no, a.Logprob)
		}
	}
	if math.IsInf(yes, -1) {
		yes = floor
	}
	if math.IsInf(no, -1) {
		no = floor
	}
	return yes - no
}

var firstNumber = regexp.MustCompile(`\d+`)

// ParseRating reads the first integer of a judge's answer as a 1–10 rating.
func ParseRating(text string) (float64, error) {
	m := firstNumber.FindString(text)
	if m == "" {
		return 0, fmt.Errorf("no rating in %q", text)
	}
	v, _ := strconv.Atoi(m)
	if v < 1 || v > 10 {
		return 0, fmt.Errorf("rating %d outside 1–10", v)
	}
	return float64(v), nil
}

// DensityRatio is the reward log p_strong(response | prompt) −
// log p_weak(response | prompt), from two backends that can score given text.
type DensityRatio struct {
	strong, weak           backend.Scorer
	strongName, weakName   string
	strongModel, weakModel string
	objective              string
}

var _ rm.Rewarder = (*DensityRatio)(nil)

// NewDensityRatio checks that both backends declare scoring.
func NewDensityRatio(strong backend.Backend, strongModel string, weak backend.Backend, weakModel, objective string) (*DensityRatio, error) {
	for _, b := range []backend.Backend{strong, weak} {
		if !b.Caps().Scoring {
			return nil, fmt.Errorf("backend %s cannot score given text, which the density ratio needs", b.Name())
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
		strongModel: strongModel, weakModel: weakModel, objective: objective}, nil
}

func (d *DensityRatio) Objectives() []string { return []string{d.objective} }
func (d *DensityRatio) ID() string {
	return fmt.Sprintf("cdr:%s/%s-%s/%s", d.strongName, d.strongModel, d.weakName, d.weakModel)
}

func (d *DensityRatio) Score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
	out := make([][]float32, len(samples))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, s := range samples {
		g.Go(func() error {
			req := func(model string) *backend.Request {
				if s.Messages != nil {
					return &backend.Request{Model: model, Messages: s.Messages}
				}
				return &backend.Request{Model: model, Prompt: s.Prompt}
			}
			a, err := d.strong.ScoreText(gctx, req(d.strongModel), s.Response)
			if err != nil {
				return fmt.Errorf("%w: density ratio (strong): %w", fault.ErrReward, err)
			}
			b, err := d.weak.ScoreText(gctx, req(d.weakModel), s.Response)
			if err != nil {
				return fmt.Errorf("%w: density ratio (weak): %w", fault.ErrReward, err)
			}
			out[i] = []float32{float32(a.Logprob - b.Logprob)}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}
