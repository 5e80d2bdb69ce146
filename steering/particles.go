package steering

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// Particles is the strategy's name.
const Particles = "particles"

func init() { Register(Particles, func() Strategy { return &particles{} }, RewardRequired) }

// particles is sequential Monte Carlo over partial answers (Feynman–Kac
// steering; particle filtering for LLM inference): n particles advance one
// step at a time (a step ends at the delimiter or after step_tokens), the
// reward scores every partial answer, each particle's weight is multiplied
// by its potential G_t, and when the effective sample size falls below
// ess_threshold·n the particles are resampled by weight, so that the budget
// moves to the promising ones. The answer is the best finished particle
// (select argmax) or one drawn by weight (sample).
type particles struct {
	N            int      `json:"n,omitempty"`
	StepTokens   int      `json:"step_tokens,omitempty"`
	Delimiter    *string  `json:"delimiter,omitempty"`
	Potential    string   `json:"potential,omitempty"`
	Lambda       *float64 `json:"lambda,omitempty"`
	Resample     string   `json:"resample,omitempty"`
	ESSThreshold *float64 `json:"ess_threshold,omitempty"`
	MaxSteps     int      `json:"max_steps,omitempty"`
	TokenBudget  int      `json:"token_budget,omitempty"`
	Select       string   `json:"select,omitempty"`
	stops        []string // the delimiter's stop sequences
}

// Potentials: log G_t of a particle whose partial answers scored r_1..r_t.
const (
	potentialDiff = "diff" // λ·(r_t − r_{t−1}), r_0 = 0: the product telescopes to exp(λ·r_t)
	potentialMax  = "max"  // λ·max_{s≤t} r_s
	potentialSum  = "sum"  // λ·Σ_{s≤t} r_s
	potentialLast = "last" // λ·r_t
)

// Named delimiters.
const (
	delimSentence  = "sentence"
	delimParagraph = "paragraph"
	delimLine      = "line"
)

var sentenceEnds = []string{".", "!", "?"}

// Defaults, chosen on the dev prompts (eval/dev.jsonl) with the embedded
// default; see docs/benchmarks.md.
const (
	defaultParticles    = 8
	defaultStepTokens   = 32
	defaultDelimiter    = "."
	defaultLambda       = 20.0
	defaultESSThreshold = 0.5
	defaultMaxSteps     = 32
)

func (p *particles) Check(c *Check) error {
	if err := c.NoZero("n", "step_tokens", "max_steps", "token_budget"); err != nil {
		return err
	}
	if err := c.Samples("n", &p.N, max(defaultParticles, c.K)); err != nil {
		return err
	}
	if p.StepTokens == 0 {
		p.StepTokens = defaultStepTokens
		if c.Limits.MaxTokens > 0 {
			p.StepTokens = min(p.StepTokens, c.Limits.MaxTokens)
		}
	}
	if p.Delimiter == nil {
		d := defaultDelimiter
		p.Delimiter = &d
	}
	if p.Potential == "" {
		p.Potential = potentialDiff
	}
	if p.Lambda == nil {
		l := defaultLambda
		p.Lambda = &l
	}
	if p.Resample == "" {
		p.Resample = resampleSystematic
	}
	if p.ESSThreshold == nil {
		t := defaultESSThreshold
		p.ESSThreshold = &t
	}
	if p.MaxSteps == 0 {
		p.MaxSteps = defaultMaxSteps
	}
	if p.Select == "" {
		p.Select = "argmax"
	}
	switch *p.Delimiter {
	case "":
		return c.Bad("delimiter", `delimiter must be "sentence", "paragraph", "line" or a non-empty string`)
	case delimSentence:
		if !c.Caps.StopSequence {
			return c.Unsupported("delimiter", "delimiter sentence ends steps at several stop sequences, and backend %s does not say which one matched; use one string such as \".\"", c.Backend)
		}
		p.stops = sentenceEnds
	case delimParagraph:
		p.stops = []string{"\n\n"}
	case delimLine:
		p.stops = []string{"\n"}
	default:
		p.stops = []string{*p.Delimiter}
	}
	switch {
	case p.StepTokens < 1:
		return c.Bad("step_tokens", "step_tokens must be at least 1")
	case c.Limits.MaxTokens > 0 && p.StepTokens > c.Limits.MaxTokens:
		return c.Bad("step_tokens", "step_tokens must be at most %d (server.max_tokens)", c.Limits.MaxTokens)
	case !slices.Contains([]string{potentialDiff, potentialMax, potentialSum, potentialLast}, p.Potential):
		return c.Bad("potential", "potential must be diff, max, sum or last")
	case *p.Lambda < 0 || !finite(*p.Lambda):
		return c.Bad("lambda", "lambda must be a finite number, not negative")
	case !slices.Contains([]string{resampleSystematic, resampleMultinomial, resampleStratified}, p.Resample):
		return c.Bad("resample", "resample must be systematic, multinomial or stratified")
	case *p.ESSThreshold <= 0 || *p.ESSThreshold > 1:
		return c.Bad("ess_threshold", "ess_threshold must be in (0, 1]: resample when the effective sample size falls below it times n")
	case p.MaxSteps < 1:
		return c.Bad("max_steps", "max_steps must be at least 1")
	case p.TokenBudget < 0:
		return c.Bad("token_budget", "token_budget must not be negative")
	case p.Select != "argmax" && p.Select != "sample":
		return c.Bad("select", "select must be argmax or sample")
	case c.Chat && !c.Caps.Continuation:
		return c.Unsupported("strategy", "particles continue partial answers, which backend %s cannot do", c.Backend)
	}
	return nil
}

// particle is one partial answer with its weight.
type particle struct {
	slot     int // its place in the population: the candidate index
	parent   int // the particle it was copied from at the last resampling (−1: none)
	text     string
	steps    []string
	tokens   int
	logprobs []backend.TokenLogprob
	done     bool
	finish   string
	stop     *string   // the stop sequence that ended it, where the backend said (stop_reason)
	rs       []float64 // the reward of each partial answer, r_1..r_t
	logw     float64   // log-weight since the last resampling
}

func (q *particle) clone(slot int) *particle {
	c := *q
	c.slot, c.parent = slot, q.slot
	c.steps = slices.Clone(q.steps)
	c.logprobs = slices.Clone(q.logprobs)
	c.rs = slices.Clone(q.rs)
	c.logw = 0
	return &c
}

// answerTokens is the most tokens an answer without max_tokens may take:
// max_steps full steps, but no more than server.max_tokens (most; 0:
// unbounded), and without overflowing on absurd parameters.
func answerTokens(stepTokens, maxSteps, most int) int {
	if most <= 0 {
		most = math.MaxInt
	}
	if maxSteps > most/stepTokens {
		return most
	}
	return stepTokens * maxSteps
}

// resampling is one resampling event of the report.
type resampling struct {
	Step int     `json:"step"`
	ESS  float64 `json:"ess"`
	Kept int     `json:"distinct_parents"`
}

func (p *particles) Steer(ctx context.Context, r *backend.Request, env *Env) (*Outcome, error) {
	caps := env.Backend.Caps()
	switch {
	case len(r.Tools) > 0:
		return nil, fault.Unsupported("tools", "particles steer text step by step; a tool call cannot be continued")
	case r.ResponseFormat != nil && r.ResponseFormat.Type != "text":
		return nil, fault.Unsupported("response_format", "particles continue partial answers, which a JSON constraint does not follow")
	case len(r.Stop) > 0 && !caps.StopSequence:
		return nil, fault.Unsupported("stop", "with particles, backend %s cannot tell a stop sequence from the step delimiter (it does not say which one matched)", env.Backend.Name())
	}
	maxTokens := r.MaxTokens
	if maxTokens <= 0 {
		maxTokens = answerTokens(p.StepTokens, p.MaxSteps, env.Limits.MaxTokens)
	}
	rng := tieBreaker(r.Seed)
	pop := make([]*particle, p.N)
	for i := range pop {
		pop[i] = &particle{slot: i, parent: -1}
	}
	stream := newPrefixStream(env, r, p.stops)
	if err := stream.start(); err != nil {
		return nil, err
	}
	var (
		ess       []float64
		events    = []resampling{}
		spent     int
		failed    int
		firstErr  error
		steps     int
		stepScore = stepScorer(env)
	)
	for steps < p.MaxSteps {
		var live []*particle
		for _, q := range pop {
			if !q.done {
				live = append(live, q)
			}
		}
		if len(live) == 0 || p.TokenBudget > 0 && spent >= p.TokenBudget {
			break
		}
		steps++
		gens, errs := p.step(ctx, r, env, live, steps, maxTokens)
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		var moved []*particle
		for i, q := range live {
			if errs[i] != nil {
				failed++
				if firstErr == nil {
					firstErr = errs[i]
				}
				pop = slices.DeleteFunc(pop, func(x *particle) bool { return x == q })
				continue
			}
			spent += gens[i].Usage.PromptTokens + gens[i].Usage.CompletionTokens
			p.advance(q, gens[i].Choices[0], maxTokens, r.Stop)
			moved = append(moved, q)
		}
		switch {
		case len(pop) == 0:
			// Every particle failed: the failure keeps its class (a
			// deadline is a 504, a missing model a 404), as best-of-N's.
			return nil, fmt.Errorf("%d of %d particles failed: %w", failed, p.N, firstErr)
		case len(pop) < env.Common.MinSuccess:
			return nil, fmt.Errorf("%w: %d of %d particles failed: %w", fault.ErrUpstream, failed, p.N, firstErr)
		}
		if err := p.weigh(ctx, r, env, moved, stepScore); err != nil {
			return nil, err
		}
		logw := make([]float64, len(pop))
		for i, q := range pop {
			logw[i] = q.logw
		}
		w := weightsOf(logw)
		e := ESS(w)
		ess = append(ess, e)
		if e < *p.ESSThreshold*float64(len(pop)) && slices.ContainsFunc(pop, func(q *particle) bool { return !q.done }) {
			anc := resample(p.Resample, w, len(pop), rng)
			next := make([]*particle, len(pop))
			for i, a := range anc {
				next[i] = pop[a].clone(pop[i].slot)
			}
			pop = next
			events = append(events, resampling{Step: steps, ESS: e, Kept: distinct(anc)})
		}
		if err := stream.shared(pop); err != nil {
			return nil, err
		}
	}
	for _, q := range pop {
		if !q.done {
			q.done, q.finish = true, backend.FinishLength
		}
	}
	env.Metrics.Steps(Particles, steps, len(events))
	return p.finish(ctx, r, env, pop, failed, rng, stream, func(info *Info) {
		info.Waves = steps
		info.Extra = map[string]any{"steps": steps, "resamplings": events, "ess": ess, "step_backend_tokens": spent}
	})
}

// step continues every live particle by one step, concurrently; each call
// has its own seed from (seed, slot, step).
func (p *particles) step(ctx context.Context, r *backend.Request, env *Env, live []*particle, step, maxTokens int) ([]*backend.Generation, []error) {
	gens := make([]*backend.Generation, len(live))
	errs := make([]error, len(live))
	done := make(chan struct{}, len(live))
	for i, q := range live {
		go func() {
			defer func() { done <- struct{}{} }()
			c := r.Clone()
			c.N = 1
			c.Seed = StepSeed(r.Seed, q.slot, step)
			c.MaxTokens = min(p.StepTokens, maxTokens-q.tokens)
			c.Stop = append(slices.Clone(p.stops), r.Stop...)
			if q.text != "" {
				if c.Messages != nil {
					c.Messages = append(c.Messages, backend.Message{Role: "assistant", Content: q.text})
					c.Continue = true
				} else {
					c.Prompt += q.text
				}
			}
			g, err := env.Backend.Generate(ctx, c)
			if err == nil && (g == nil || len(g.Choices) == 0) {
				err = fmt.Errorf("%w: backend returned no choice", fault.ErrUpstream)
			}
			gens[i], errs[i] = g, err
		}()
	}
	for range live {
		<-done
	}
	return gens, errs
}

// advance appends a step to a particle and decides whether it is done: it
// goes on after the delimiter or when the step ran out of step_tokens, and
// ends at the end of the answer, one of the request's stop sequences
// (stops; also where it is the delimiter too), or max_tokens.
func (p *particles) advance(q *particle, c backend.Choice, maxTokens int, stops []string) {
	if c.Tokens == 0 && c.Text != "" {
		// The backend did not count them: a step cut by length wrote all
		// it was asked for (step_tokens, or what max_tokens left), one
		// that stopped at least a token.
		c.Tokens = 1
		if c.FinishReason == backend.FinishLength {
			c.Tokens = min(p.StepTokens, maxTokens-q.tokens)
		}
	}
	q.tokens += c.Tokens
	q.logprobs = append(q.logprobs, c.Logprobs...)
	q.finish = c.FinishReason
	joint := len(q.text)
	defer p.stopAcross(q, joint, stops)
	switch {
	case c.FinishReason == backend.FinishLength:
		q.text += c.Text
		q.steps = append(q.steps, c.Text)
		q.done = q.tokens >= maxTokens
	case c.FinishReason != backend.FinishStop:
		q.text += c.Text // content filter and the like: the answer is over
		q.done = true
	case c.StopSequence != nil:
		q.text += c.Text
		if c.Text != "" {
			q.steps = append(q.steps, c.Text)
		}
		if slices.Contains(p.stops, *c.StopSequence) && !slices.Contains(stops, *c.StopSequence) {
			q.text += *c.StopSequence // a step ended: the answer goes on
		} else {
			q.done, q.stop = true, c.StopSequence
		}
	case c.Text == "":
		// The backend does not say which stop matched: a step that stops
		// at once is the end of the answer, and the white space of the
		// delimiter guessed after the last step is taken back.
		q.text = strings.TrimRightFunc(q.text, unicode.IsSpace)
		q.done = true
	default:
		q.text += c.Text + p.stops[0]
		q.steps = append(q.steps, c.Text)
	}
	if len(q.steps) == 0 && q.text != "" {
		q.steps = []string{q.text}
	}
	if !q.done && q.tokens >= maxTokens {
		// A step that ended at its delimiter can use up max_tokens too:
		// the next would ask for 0 tokens, which a backend reads as no
		// limit.
		q.done, q.finish = true, backend.FinishLength
	}
}

// stopAcross ends a particle at a request stop sequence that its newest
// step completed across the joint with the text before it, or with the
// delimiter after it, which the backend could not see.
func (p *particles) stopAcross(q *particle, joint int, stops []string) {
	at, stop, ok := stopAfter(q.text, joint, stops)
	if !ok {
		return
	}
	kept := cutLogprobs(q.logprobs, len(q.text)-at)
	if len(q.logprobs) > 0 { // a token each: the cut ones are not the answer's
		q.tokens -= len(q.logprobs) - len(kept)
	}
	q.logprobs = kept
	q.text = q.text[:at]
	q.steps = trimSteps(q.steps, q.text, p.stops)
	q.done, q.finish, q.stop = true, backend.FinishStop, &stop
}

// stepScorer is the process reward behind env.Reward, if it is one.
func stepScorer(env *Env) rm.StepScorer {
	s, _ := rm.As[rm.StepScorer](env.Reward)
	return s
}

// weigh scores the particles that moved and multiplies their weights by
// their potentials. With a process reward, r_t is its score of the newest
// step; otherwise r_t is the utility of the partial answer.
func (p *particles) weigh(ctx context.Context, r *backend.Request, env *Env, moved []*particle, steps rm.StepScorer) error {
	if len(moved) == 0 {
		return nil
	}
	rs := make([]float64, len(moved))
	if steps != nil {
		batch := make([]rm.Sample, len(moved))
		for i, q := range moved {
			batch[i] = rmSample(r, partialSample(q), env)
		}
		scored, err := steps.ScoreSteps(ctx, batch)
		if err == nil && len(scored) != len(moved) {
			err = fmt.Errorf("%w: %d step scores for %d particles", fault.ErrReward, len(scored), len(moved))
		}
		if err != nil {
			return rewardErr(ctx, env, err)
		}
		for i, q := range moved {
			if len(scored[i]) == 0 { // no step yet to score: as an unusable score
				rs[i] = math.Inf(-1)
				continue
			}
			last := scored[i][len(scored[i])-1]
			rs[i] = env.Utility.Of(env.Objectives, []float32{float32(last)}, q.tokens)
		}
	} else {
		ss := make([]*sample, len(moved))
		for i, q := range moved {
			ss[i] = partialSample(q)
		}
		if err := env.score(ctx, r, ss); err != nil {
			return err
		}
		for i, s := range ss {
			rs[i] = s.utility
			if s.invalid != "" {
				rs[i] = math.Inf(-1)
			}
		}
	}
	for i, q := range moved {
		q.rs = append(q.rs, rs[i])
		pot := p.potential(q.rs)
		inc := *p.Lambda * pot
		if math.IsInf(inc, 0) && !math.IsInf(pot, 0) {
			// λ·r past float64's range: the largest finite value, so that
			// a later step's opposite can still cancel it (Inf − Inf is
			// NaN); weightsOf shares the weight among log-weights at +Inf.
			inc = math.Copysign(math.MaxFloat64, inc)
		}
		q.logw += inc
		if math.IsNaN(q.logw) {
			q.logw = math.Inf(-1)
		}
	}
	return nil
}

// potential is log G_t / λ for rewards r_1..r_t.
func (p *particles) potential(rs []float64) float64 {
	t := len(rs) - 1
	switch p.Potential {
	case potentialMax:
		return slices.Max(rs)
	case potentialSum:
		var s float64
		for _, x := range rs {
			s += x
		}
		return s
	case potentialLast:
		return rs[t]
	}
	if t == 0 {
		return rs[0]
	}
	return rs[t] - rs[t-1]
}

// rewardErr is a scoring failure as the request sees it.
func rewardErr(ctx context.Context, env *Env, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if !errors.Is(err, fault.ErrReward) {
		err = fmt.Errorf("%w: %s: %w", fault.ErrReward, env.RewardName, err)
	}
	return err
}

// partialSample is a particle as the reward sees it: partial until done.
func partialSample(q *particle) *sample {
	return &sample{index: q.slot, choice: backend.Choice{Text: q.text, Tokens: q.tokens, FinishReason: q.finish, Logprobs: q.logprobs, StopSequence: q.stop},
		partial: !q.done, steps: q.steps}
}

// finish scores the final answers as whole answers, chooses, and reports
// each particle's parent and final weight.
func (p *particles) finish(ctx context.Context, r *backend.Request, env *Env, pop []*particle, failed int, rng *rand.Rand, stream *prefixStream, extra func(*Info)) (*Outcome, error) {
	ss := make([]*sample, len(pop))
	logw := make([]float64, len(pop))
	for i, q := range pop {
		ss[i] = partialSample(q)
		logw[i] = q.logw
	}
	if err := env.score(ctx, r, ss); err != nil {
		return nil, err
	}
	w := weightsOf(logw)
	for i, q := range pop {
		ss[i].extra = map[string]any{"parent": q.parent, "weight": w[i]}
	}
	if err := enough(ss, env.Common.MinSuccess, failed, nil); err != nil {
		return nil, err
	}
	chosen := choose(ss, r.Choices())
	if p.Select == "sample" && r.Choices() == 1 {
		chosen = []*sample{ss[Multinomial(w, 1, rng)[0]]}
	}
	quiet := *env
	quiet.Emit = nil
	out, err := finishChosen(&quiet, ss, chosen, failed, extra)
	if err != nil {
		return nil, err
	}
	return out, stream.rest(out.Generation.Choices)
}

func distinct(xs []int) int {
	seen := map[int]bool{}
	for _, x := range xs {
		seen[x] = true
	}
	return len(seen)
}

// prefixStream streams, while particles run, the text every particle
// already shares (it is the start of any answer they can give), then the
// rest of the chosen answer. With several answers wanted, or logprobs, it
// streams whole answers at the end.
type prefixStream struct {
	env     *Env
	on      bool
	stops   []string
	hold    int // a request stop's length but one: the end of a running particle that a stop may yet claim
	emitted string
}

func newPrefixStream(env *Env, r *backend.Request, stops []string) *prefixStream {
	s := &prefixStream{env: env, on: env.Emit != nil && r.Choices() == 1 && !r.Logprobs, stops: stops}
	for _, stop := range r.Stop {
		s.hold = max(s.hold, len(stop)-1)
	}
	return s
}

// start opens the stream at once, with an empty first chunk, so that the
// client sees the answer begin while the particles run.
func (s *prefixStream) start() error {
	if !s.on {
		return nil
	}
	return s.env.Emit(backend.Delta{})
}

// shared emits what the particles' texts now share beyond what was sent.
// A trailing delimiter is held back: it may be taken back when the answer
// ends; so is the end of a running particle that a request stop sequence
// may yet cut.
func (s *prefixStream) shared(pop []*particle) error {
	if !s.on || len(pop) == 0 {
		return nil
	}
	prefix := pop[0].text
	for _, q := range pop[1:] {
		prefix = prefix[:commonPrefix(prefix, q.text)]
	}
	for _, d := range s.stops {
		prefix = strings.TrimSuffix(prefix, d)
	}
	// A request stop sequence that the next step completes may begin in
	// a running particle's last bytes (stopAcross): they are not sent yet.
	for _, q := range pop {
		if !q.done {
			prefix = prefix[:max(0, min(len(prefix), len(q.text)-s.hold))]
		}
	}
	for !utf8.ValidString(prefix) && prefix != "" {
		prefix = prefix[:len(prefix)-1]
	}
	if len(prefix) <= len(s.emitted) {
		return nil
	}
	delta := prefix[len(s.emitted):]
	s.emitted = prefix
	return s.env.Emit(backend.Delta{Text: delta})
}

// rest emits the chosen answers: what was not yet sent of the one answer,
// or every answer whole.
func (s *prefixStream) rest(cs []backend.Choice) error {
	if s.env.Emit == nil {
		return nil
	}
	if !s.on {
		return emitAnswer(s.env.Emit, &backend.Generation{Choices: cs})
	}
	c := cs[0]
	if !strings.HasPrefix(c.Text, s.emitted) {
		return fmt.Errorf("%w: particles: the chosen answer does not start with the text already streamed", fault.ErrInternal)
	}
	if more := c.Text[len(s.emitted):]; more != "" {
		if err := s.env.Emit(backend.Delta{Text: more}); err != nil {
			return err
		}
	}
	return s.env.Emit(backend.Delta{FinishReason: c.FinishReason})
}

func commonPrefix(a, b string) int {
	n := min(len(a), len(b))
	for i := range n {
		if a[i] != b[i] {
			return i
		}
	}
	return n
}
