package steering

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// Guided is the strategy's name.
const Guided = "guided"

func init() { Register(Guided, func() Strategy { return &guided{} }, RewardNone) }

// guided writes the answer a token (or a block) at a time, reweighting the
// backend's candidates by token-level rewards (GenARM; ARGS with a value
// function): each step takes the base model's top k next tokens with their
// log-probabilities, scores them with every token reward, and samples from
// log p_base + (1/β)·Σ_i w_i·log π_i renormalized over the k, under the
// request's temperature and top_p. In block mode it samples k
// continuations of block_tokens tokens from the base model and picks one
// with weight π^(1/β) (the base probability is in how often a block is
// drawn). Chosen text streams as it is chosen.
type guided struct {
	K            int                `json:"k,omitempty"`
	Beta         *float64           `json:"beta,omitempty"`
	BlockTokens  int                `json:"block_tokens,omitempty"`
	Temperature  *float64           `json:"temperature,omitempty"`
	TopP         *float64           `json:"top_p,omitempty"`
	TokenRewards map[string]float64 `json:"token_rewards,omitempty"`
}

const (
	defaultGuidedK = 8
	maxBlockTokens = 64
)

func (p *guided) Check(c *Check) error {
	if c.K > 1 {
		return c.Bad("n", "guided writes one answer; n must be 1")
	}
	if c.Common.MinSuccess > 1 {
		return c.Bad("min_success", "guided writes one answer; min_success must be 1")
	}
	if err := c.NoZero("block_tokens", "k"); err != nil {
		return err
	}
	if p.BlockTokens == 0 {
		p.BlockTokens = 1
	}
	if p.K == 0 {
		p.K = defaultGuidedK
		if p.BlockTokens == 1 && c.Caps.MaxTopLogprobs > 0 {
			p.K = min(p.K, c.Caps.MaxTopLogprobs)
		}
	}
	one := 1.0
	if p.Beta == nil {
		p.Beta = &one
	}
	switch {
	case p.BlockTokens < 1 || p.BlockTokens > maxBlockTokens:
		return c.Bad("block_tokens", "block_tokens must be between 1 and %d", maxBlockTokens)
	case c.Limits.MaxTokens > 0 && p.BlockTokens > c.Limits.MaxTokens:
		return c.Bad("block_tokens", "block_tokens must be at most %d (server.max_tokens)", c.Limits.MaxTokens)
	case p.K < 2:
		return c.Bad("k", "k must be at least 2")
	case p.BlockTokens == 1 && !c.Caps.Logprobs:
		return c.Unsupported("strategy", "guided reads the next-token alternatives (top_logprobs), which backend %s does not give", c.Backend)
	case p.BlockTokens == 1 && p.K > c.Caps.MaxTopLogprobs:
		return c.Bad("k", "k must be at most %d, the top_logprobs backend %s gives", c.Caps.MaxTopLogprobs, c.Backend)
	case p.BlockTokens > 1 && p.K > c.Limits.MaxSamples:
		return c.Bad("k", "k blocks must be at most %d (server.max_samples)", c.Limits.MaxSamples)
	case c.Chat && !c.Caps.Continuation:
		return c.Unsupported("strategy", "guided continues the answer step by step, which backend %s cannot do", c.Backend)
	case *p.Beta <= 0 || !finite(*p.Beta):
		return c.Bad("beta", "beta must be a finite number above 0")
	case p.Temperature != nil && (*p.Temperature <= 0 || !finite(*p.Temperature)):
		return c.Bad("temperature", "temperature must be a finite number above 0")
	case p.TopP != nil && (*p.TopP <= 0 || *p.TopP > 1):
		return c.Bad("top_p", "top_p must be in (0, 1]")
	}
	// Weights, as a request's weights are: a null or a key given twice is
	// refused, not read as 0 or as the last.
	if _, err := Weights(c.given["token_rewards"], c.prefix+".token_rewards"); err != nil {
		return err
	}
	if len(p.TokenRewards) == 0 {
		if len(c.TokenRewards) != 1 {
			return c.Bad("token_rewards", "name the token rewards and their weights (configured: %s)", listOr(c.TokenRewards))
		}
		p.TokenRewards = map[string]float64{c.TokenRewards[0]: 1}
	}
	for _, name := range slices.Sorted(maps.Keys(p.TokenRewards)) {
		if !slices.Contains(c.TokenRewards, name) {
			return c.Bad("token_rewards", "unknown token reward %q (configured: %s)", fault.Clip(name, 64), listOr(c.TokenRewards))
		}
		if w := p.TokenRewards[name]; !finite(w) || math.Abs(w) > MaxWeight {
			return c.Bad("token_rewards", "weight of %q must be a finite number of magnitude at most %g", name, MaxWeight)
		}
	}
	return nil
}

func listOr(names []string) string {
	if len(names) == 0 {
		return "none"
	}
	return strings.Join(names, ", ")
}

// candidate is one possible next piece of text with its base
// log-probability (token mode) and what a block carries (block mode).
type candidate struct {
	text     string
	base     float64
	lp       backend.TokenLogprob // the token's own entry, for the client's logprobs
	block    *backend.Choice
	ends     bool // choosing it ends the answer
	finished string
}

// guidedRun is one request's state.
type guidedRun struct {
	p                       *guided
	r                       *backend.Request
	env                     *Env
	rng                     *rand.Rand
	text                    strings.Builder
	logprobs                []backend.TokenLogprob
	tokens                  int
	sent                    int     // bytes of the answer streamed
	lpSent, lpEnd           int     // logprobs streamed, and the bytes of answer they cover
	stop                    *string // the request's stop sequence that ended the answer (stop_reason)
	steps, calls            int
	mass                    float64 // Σ top-k probability mass over token steps
	backendT, rewardT, allT time.Duration
}

func (p *guided) Steer(ctx context.Context, r *backend.Request, env *Env) (*Outcome, error) {
	switch {
	case len(r.Tools) > 0:
		return nil, fault.Unsupported("tools", "guided writes text token by token; tool calls are not steered")
	case r.ResponseFormat != nil && r.ResponseFormat.Type != "text":
		return nil, fault.Unsupported("response_format", "guided chooses tokens itself; a JSON constraint does not follow")
	}
	for name := range p.TokenRewards {
		if env.Tokens[name] == nil {
			return nil, fmt.Errorf("%w: token reward %q is not loaded", fault.ErrReward, name)
		}
	}
	// The reweighted distribution is sampled at the request's temperature
	// and top_p, unless the steering object gives its own; the backend is
	// asked for its raw one (request).
	p.Temperature, p.TopP = cmp.Or(p.Temperature, r.Temperature, new(1.0)), cmp.Or(p.TopP, r.TopP, new(1.0))
	g := &guidedRun{p: p, r: r, env: env, rng: tieBreaker(r.Seed)}
	maxTokens := r.MaxTokens
	if maxTokens <= 0 {
		maxTokens = 256
		if most := env.Limits.MaxTokens; most > 0 {
			maxTokens = min(maxTokens, most)
		}
	}
	if env.Emit != nil {
		if err := env.Emit(backend.Delta{}); err != nil {
			return nil, err
		}
	}
	finish := backend.FinishLength
	for g.tokens < maxTokens {
		t0 := time.Now()
		cands, err := g.candidates(ctx, min(p.BlockTokens, maxTokens-g.tokens))
		if err != nil {
			return nil, err
		}
		g.steps++
		if len(cands) == 0 {
			finish = backend.FinishStop // the base model ended the answer
			g.allT += time.Since(t0)
			break
		}
		pick, err := g.choose(ctx, cands)
		if err != nil {
			return nil, err
		}
		c := cands[pick]
		stopped, err := g.append(c)
		g.allT += time.Since(t0)
		if err != nil {
			return nil, err
		}
		if stopped || c.ends {
			finish = backend.FinishStop
			if c.finished != "" {
				finish = c.finished
			}
			break
		}
	}
	if err := g.flush(); err != nil {
		return nil, err
	}
	choice := backend.Choice{Text: g.text.String(), FinishReason: finish, Tokens: g.tokens, StopSequence: g.stop}
	if r.Logprobs {
		choice.Logprobs = g.logprobs
	}
	if env.Emit != nil {
		// The rest of the logprobs (tokens a stop sequence cut) go with
		// the finish, so that a stream carries what the answer does.
		if err := env.Emit(backend.Delta{FinishReason: finish, Logprobs: g.streamLogprobs(-1)}); err != nil {
			return nil, err
		}
	}
	env.Metrics.Steps(Guided, g.steps, 0)
	perStep := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(max(g.steps, 1)) }
	gateway := g.allT - g.backendT - g.rewardT
	extra := map[string]any{"steps": g.steps, "backend_calls": g.calls,
		"step_ms": map[string]float64{"backend": perStep(g.backendT), "reward": perStep(g.rewardT), "gateway": perStep(gateway)}}
	if p.BlockTokens == 1 && g.steps > 0 {
		extra["topk_mass"] = g.mass / float64(g.steps)
	}
	info := &Info{SamplesUsed: 1, Waves: g.steps, Extra: extra,
		Candidates: []Candidate{{Index: 0, Chosen: true, FinishReason: finish, CompletionTokens: g.tokens, Utility: Number(math.NaN())}}}
	return &Outcome{Generation: &backend.Generation{Choices: []backend.Choice{choice}}, Info: info}, nil
}

// request is the step's backend request: the answer so far continued.
func (g *guidedRun) request(tokens int) *backend.Request {
	c := g.r.Clone()
	c.N, c.MaxTokens = 1, tokens
	c.Seed = StepSeed(g.r.Seed, 0, g.steps)
	one := 1.0
	c.Temperature, c.TopP = &one, &one // the raw distribution; temperature and top_p apply after reweighting
	if partial := g.text.String(); partial != "" {
		if c.Messages != nil {
			c.Messages = append(c.Messages, backend.Message{Role: "assistant", Content: partial})
			c.Continue = true
		} else {
			c.Prompt += partial
		}
	}
	return c
}

// candidates asks the backend for the next token's top k (token mode) or
// k blocks (block mode). None means the base model ended the answer.
func (g *guidedRun) candidates(ctx context.Context, tokens int) ([]candidate, error) {
	t0 := time.Now()
	defer func() { g.backendT += time.Since(t0) }()
	if g.p.BlockTokens == 1 {
		req := g.request(1)
		// The k likeliest are the candidates; a request that wants more
		// top_logprobs gets them in its answer's logprobs.
		req.Stop, req.Logprobs, req.TopLogprobs = nil, true, max(g.p.K, g.r.TopLogprobs)
		gen, err := g.env.Backend.Generate(ctx, req)
		g.calls++
		if err != nil {
			return nil, err
		}
		if len(gen.Choices) == 0 || len(gen.Choices[0].Logprobs) == 0 {
			return nil, nil
		}
		lp := gen.Choices[0].Logprobs[0]
		top := lp.Top
		if len(top) > g.p.K {
			top = slices.Clone(top)
			slices.SortStableFunc(top, func(a, b backend.TopLogprob) int { return cmp.Compare(b.Logprob, a.Logprob) })
			top = top[:g.p.K]
		}
		var out []candidate
		seen := map[string]int{}
		for _, t := range top {
			if i, ok := seen[t.Token]; ok { // spellings of one text: one candidate
				out[i].base = rm.LogSumExp(out[i].base, t.Logprob)
				continue
			}
			seen[t.Token] = len(out)
			out = append(out, candidate{text: t.Token, base: t.Logprob, lp: backend.TokenLogprob{Token: t.Token, Logprob: t.Logprob, Top: lp.Top}, ends: t.Token == ""})
		}
		for _, c := range out {
			g.mass += math.Exp(c.base)
		}
		return out, nil
	}
	req := g.request(tokens)
	req.N = g.p.K
	gen, err := backend.GenerateN(ctx, g.env.Backend, req)
	g.calls += g.p.K
	if err != nil {
		return nil, err
	}
	var out []candidate
	for i := range gen.Choices {
		c := gen.Choices[i]
		if c.Tokens == 0 && c.FinishReason == backend.FinishLength {
			c.Tokens = tokens // uncounted, but a block cut by length is all it was asked for
		}
		out = append(out, candidate{text: c.Text, block: &c, ends: c.FinishReason != backend.FinishLength, finished: c.FinishReason})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: backend returned no block", fault.ErrUpstream)
	}
	return out, nil
}

// choose scores the candidates with every token reward and draws one from
// the reweighted distribution.
func (g *guidedRun) choose(ctx context.Context, cands []candidate) (int, error) {
	t0 := time.Now()
	texts := make([]string, len(cands))
	for i, c := range cands {
		texts[i] = c.text
	}
	s := rm.Sample{Messages: g.r.Messages, Prompt: g.r.Prompt, Response: g.text.String(), Partial: true, Scope: g.env.Route}
	names := slices.Sorted(maps.Keys(g.p.TokenRewards))
	scores := make([][]float32, len(names))
	errs := make([]error, len(names))
	done := make(chan struct{}, len(names))
	for i, name := range names {
		go func() {
			defer func() { done <- struct{}{} }()
			scores[i], errs[i] = g.env.Tokens[name].LogProbs(ctx, s, texts)
			if errs[i] == nil && len(scores[i]) != len(texts) {
				errs[i] = fmt.Errorf("%w: token reward %s gave %d scores for %d candidates", fault.ErrReward, name, len(scores[i]), len(texts))
			}
		}()
	}
	for range names {
		<-done
	}
	g.rewardT += time.Since(t0)
	if ctx.Err() != nil {
		return 0, context.Cause(ctx)
	}
	for i, err := range errs {
		if err != nil {
			if !errors.Is(err, fault.ErrReward) {
				err = fmt.Errorf("%w: %s: %w", fault.ErrReward, names[i], err)
			}
			return 0, err
		}
	}
	logits := make([]float64, len(cands))
	for j, c := range cands {
		logits[j] = c.base // 0 for sampled blocks: their base probability is in how often they were drawn
		for i, name := range names {
			logits[j] += g.p.TokenRewards[name] / *g.p.Beta * float64(scores[i][j])
		}
	}
	return sampleFrom(logits, *g.p.Temperature, *g.p.TopP, g.rng), nil
}

// Reweight returns the distribution guided samples from over candidates
// with base log-probabilities base and token-reward log-probabilities
// rewards[i] weighted w[i]: softmax((base + (1/β)·Σ_i w_i·rewards_i)/T),
// cut to the top_p nucleus and renormalized.
func Reweight(base []float64, rewards [][]float64, w []float64, beta, temperature, topP float64) []float64 {
	logits := slices.Clone(base)
	for i, r := range rewards {
		for j := range logits {
			logits[j] += w[i] / beta * r[j]
		}
	}
	return nucleus(logits, temperature, topP)
}

// nucleus is softmax(logits/T) cut to the smallest set of candidates whose
// probability reaches topP (always at least the best one), renormalized.
// At temperature 0 it is all on the best (the first of equals): greedy.
func nucleus(logits []float64, temperature, topP float64) []float64 {
	if temperature <= 0 {
		out := make([]float64, len(logits))
		if len(out) > 0 {
			out[argmax(logits)] = 1
		}
		return out
	}
	scaled := make([]float64, len(logits))
	for i, l := range logits {
		scaled[i] = l / temperature
	}
	p := weightsOf(scaled)
	if topP >= 1 {
		return p
	}
	order := make([]int, len(p))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		switch {
		case p[a] > p[b]:
			return -1
		case p[a] < p[b]:
			return 1
		}
		return 0
	})
	var kept float64
	cut := len(order)
	for n, i := range order {
		kept += p[i]
		if kept >= topP {
			cut = n + 1
			break
		}
	}
	out := make([]float64, len(p))
	for _, i := range order[:cut] {
		out[i] = p[i] / kept
	}
	return out
}

// sampleFrom draws an index from the reweighted distribution.
func sampleFrom(logits []float64, temperature, topP float64, rng *rand.Rand) int {
	return Multinomial(nucleus(logits, temperature, topP), 1, rng)[0]
}

// append adds the chosen candidate to the answer, streams what is safe to
// send, and reports whether one of the request's stop sequences appeared
// (the answer then ends before it).
func (g *guidedRun) append(c candidate) (bool, error) {
	if c.block != nil {
		g.tokens += max(c.block.Tokens, 1)
		for _, lp := range c.block.Logprobs {
			g.logprobs = append(g.logprobs, g.asked(lp))
		}
	} else if !c.ends {
		g.tokens++
		g.logprobs = append(g.logprobs, g.asked(c.lp))
	}
	before := g.text.Len()
	g.text.WriteString(c.text)
	full := g.text.String()
	cut := -1
	for _, stop := range g.r.Stop {
		from := max(0, before-len(stop)+1)
		if i := strings.Index(full[from:], stop); stop != "" && i >= 0 && (cut < 0 || from+i < cut) {
			cut, g.stop = from+i, &stop
		}
	}
	if cut >= 0 {
		g.text.Reset()
		g.text.WriteString(full[:cut])
		return true, g.flush()
	}
	hold := 0
	for _, stop := range g.r.Stop {
		for k := min(len(stop)-1, len(full)); k > hold; k-- {
			if strings.HasSuffix(full, stop[:k]) {
				hold = k
				break
			}
		}
	}
	return false, g.send(len(full) - hold)
}

// asked is a token's entry as the client asked for it: with its
// request's top_logprobs alternatives, not the k the steering reads.
func (g *guidedRun) asked(lp backend.TokenLogprob) backend.TokenLogprob {
	lp.Top = lp.Top[:min(len(lp.Top), g.r.TopLogprobs)]
	if len(lp.Top) == 0 {
		lp.Top = nil
	}
	return lp
}

// send streams the answer up to byte end, with the logprobs of the
// tokens it completes.
func (g *guidedRun) send(end int) error {
	if g.env.Emit == nil || end <= g.sent {
		return nil
	}
	s := g.text.String()[g.sent:end]
	g.sent = end
	return g.env.Emit(backend.Delta{Text: s, Logprobs: g.streamLogprobs(end)})
}

// streamLogprobs takes the logprobs not yet streamed of the tokens that
// end within the first end bytes of the answer (all of them for end < 0),
// when the client asked for logprobs.
func (g *guidedRun) streamLogprobs(end int) []backend.TokenLogprob {
	if !g.r.Logprobs {
		return nil
	}
	from := g.lpSent
	for g.lpSent < len(g.logprobs) && (end < 0 || g.lpEnd+len(g.logprobs[g.lpSent].Token) <= end) {
		g.lpEnd += len(g.logprobs[g.lpSent].Token)
		g.lpSent++
	}
	return g.logprobs[from:g.lpSent]
}

// flush streams whatever of the answer is not yet sent.
func (g *guidedRun) flush() error { return g.send(g.text.Len()) }

// drawsOwn reports a temperature of guided's own above 0: it samples then
// even where the request asked for temperature 0.
func (p *guided) drawsOwn() bool { return p.Temperature != nil && *p.Temperature > 0 }

// argmax is the index of the largest of xs, the first of equals (NaN is
// never the largest).
func argmax(xs []float64) int {
	best := 0
	for i, x := range xs {
		if x > xs[best] || math.IsNaN(xs[best]) && !math.IsNaN(x) {
			best = i
		}
	}
	return best
}
