package steering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// sample is one generated candidate with its scores.
type sample struct {
	index   int
	choice  backend.Choice
	scores  []float32
	utility float64
	scored  bool
	pruned  bool
	invalid string          // why the utility cannot be used (NaN, ±Inf)
	dropped string          // why, scores aside, the sample is no candidate answer
	tie     uint64          // a seeded draw that orders samples scoring alike when pruning
	extra   map[string]any  // strategy-specific report fields
	detail  json.RawMessage // what the reward said beside the scores (steps, a critique)
	partial bool            // a partial answer a step-wise strategy is still extending
	steps   []string        // its steps so far, when the strategy has them
	// What its backend answered beside the choice, for the answer it
	// becomes: the system fingerprint and top-level fields this gateway
	// does not know (service_tier, …).
	fingerprint string
	top         map[string]json.RawMessage
}

// usable samples are whole answers with a finite utility that no strategy
// rule dropped.
func (s *sample) usable() bool { return !s.pruned && s.invalid == "" && s.dropped == "" }

// sampleRequest is r for sample i alone: one choice, its own seed derived
// from the request's (so a seeded request is reproducible and its samples
// differ), and an optional token cap.
func sampleRequest(r *backend.Request, i, maxTokens int) *backend.Request {
	s := r.Clone()
	s.N = 1
	s.Seed = backend.SampleSeed(r.Seed, i)
	if maxTokens > 0 {
		s.MaxTokens = maxTokens
	}
	return s
}

func newSample(i int, g *backend.Generation) *sample {
	c := g.Choices[0]
	if c.Tokens == 0 {
		c.Tokens = g.Usage.CompletionTokens
	}
	return &sample{index: i, choice: c, fingerprint: g.SystemFingerprint, top: g.Extra}
}

// draw generates the samples with the given indices concurrently (the
// backend's own limit bounds how many run at once). Failed samples are
// dropped and counted; the first error is kept to explain a total failure.
// A cancelled context fails the whole draw.
func draw(ctx context.Context, r *backend.Request, env *Env, indices []int, maxTokens int) ([]*sample, int, error, error) {
	start := time.Now()
	defer func() { env.timing.backend += time.Since(start) }()
	out := make([]*sample, len(indices))
	errs := make([]error, len(indices))
	var wg sync.WaitGroup
	for j, i := range indices {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g, err := env.Backend.Generate(ctx, sampleRequest(r, i, maxTokens))
			if err == nil && (g == nil || len(g.Choices) == 0) {
				err = fmt.Errorf("%w: backend returned no choice", fault.ErrUpstream)
			}
			if err != nil {
				errs[j] = err
				return
			}
			out[j] = newSample(i, g)
		}()
	}
	wg.Wait()
	if ctx.Err() != nil {
		return nil, 0, nil, context.Cause(ctx)
	}
	var ok []*sample
	var first error
	for j := range indices {
		if out[j] != nil {
			ok = append(ok, out[j])
		} else if first == nil {
			first = errs[j]
		}
	}
	return ok, len(indices) - len(ok), first, nil
}

// drawScored draws like draw and scores the samples as they finish: each
// scoring call takes every sample that finished while the last one ran,
// so that scoring overlaps the slower samples and only the last few are
// scored after the last one ends. Like draw it returns the samples, the
// failures and the first failure's error; scoreErr is a reward failure
// (the request fails with it unless on_reward_error: first), err a
// cancelled request.
func drawScored(ctx context.Context, r *backend.Request, env *Env, idx []int) (ss []*sample, failed int, first, scoreErr, err error) {
	start := time.Now()
	type result struct {
		j   int
		s   *sample
		err error
	}
	results := make(chan result, len(idx))
	for j, i := range idx {
		go func() {
			g, err := env.Backend.Generate(ctx, sampleRequest(r, i, 0))
			if err == nil && (g == nil || len(g.Choices) == 0) {
				err = fmt.Errorf("%w: backend returned no choice", fault.ErrUpstream)
			}
			if err != nil {
				results <- result{j: j, err: err}
				return
			}
			results <- result{j: j, s: newSample(i, g)}
		}()
	}
	out := make([]*sample, len(idx))
	errs := make([]error, len(idx))
	for got := 0; got < len(idx); {
		res := <-results // at least one more
		batch := []result{res}
	more:
		for {
			select {
			case res := <-results:
				batch = append(batch, res)
			default:
				break more
			}
		}
		got += len(batch)
		var finished []*sample
		for _, res := range batch {
			out[res.j], errs[res.j] = res.s, res.err
			if res.s != nil {
				finished = append(finished, res.s)
			}
		}
		if got == len(idx) {
			env.timing.backend += time.Since(start)
		}
		if scoreErr == nil && ctx.Err() == nil && len(finished) > 0 {
			scoreErr = env.score(ctx, r, finished)
		}
	}
	if ctx.Err() != nil {
		return nil, 0, nil, nil, context.Cause(ctx)
	}
	for j := range idx {
		if out[j] != nil {
			ss = append(ss, out[j])
		} else if first == nil {
			first = errs[j]
		}
	}
	return ss, len(idx) - len(ss), first, scoreErr, nil
}

// indices returns [from, from+n).
func indices(from, n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = from + i
	}
	return out
}

// rmSample is what the reward sees of a sample: the conversation, and the
// answer rendered as text (tool calls as JSON); reasoning is not scored.
func rmSample(r *backend.Request, s *sample, env *Env) rm.Sample {
	return rm.Sample{Messages: r.Messages, Prompt: r.Prompt, Response: rm.Render(s.choice), WantJSON: env.WantJSON,
		Tools: r.Tools, Text: s.choice.Text, Calls: s.choice.ToolCalls, Schema: schemaOf(r), Partial: s.pruned || s.partial, Steps: s.steps, Scope: env.Route}
}

func schemaOf(r *backend.Request) []byte {
	if rf := r.ResponseFormat; rf != nil && rf.Type == "json_schema" {
		return rf.Schema
	}
	return nil
}

// score scores the samples that have no scores yet in one batched call and
// computes their utilities. A reward that answers with the wrong shape
// fails the request (reward_error); a NaN or infinite utility marks its
// sample unusable. With on_reward_error: first a failing reward leaves the
// samples unscored (equal utilities: the first wins).
func (env *Env) score(ctx context.Context, r *backend.Request, ss []*sample) error {
	var todo []*sample
	var batch []rm.Sample
	for _, s := range ss {
		if !s.scored {
			todo = append(todo, s)
			batch = append(batch, rmSample(r, s, env))
		}
	}
	if len(todo) == 0 {
		return nil
	}
	start := time.Now()
	defer func() { env.timing.reward += time.Since(start) }()
	scores, details, err := rm.ScoreExplained(ctx, env.Reward, batch)
	if err == nil {
		err = rm.CheckShape(scores, len(batch), len(env.Objectives))
	}
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	env.Metrics.RewardCall(env.RewardName, outcome, time.Since(start))
	if err != nil && ctx.Err() != nil {
		return context.Cause(ctx)
	}
	if err != nil && env.Common.OnRewardError == "first" {
		env.rewardErr = err
		for _, s := range todo {
			s.scores, s.scored, s.utility = make([]float32, len(env.Objectives)), true, 0
		}
		return nil
	}
	if err != nil {
		if !errors.Is(err, fault.ErrReward) {
			err = fmt.Errorf("%w: %s: %w", fault.ErrReward, env.RewardName, err)
		}
		return err
	}
	for i, s := range todo {
		s.scores, s.scored = scores[i], true
		if i < len(details) {
			s.detail = details[i]
		}
		s.utility = env.Utility.Of(env.Objectives, s.scores, s.choice.Tokens)
		if math.IsNaN(s.utility) || math.IsInf(s.utility, 0) {
			s.invalid = fmt.Sprintf("utility is %v", s.utility)
		} else {
			s.invalid = ""
		}
	}
	return nil
}

// rank orders samples best first: usable ones by utility (ties to the
// lower index), then the unusable ones by index.
func rank(ss []*sample) []*sample { return order(ss, (*sample).usable) }

// order sorts samples for which ok holds by utility, best first, ties to
// the lower index; the others follow by index.
func order(ss []*sample, ok func(*sample) bool) []*sample {
	out := slices.Clone(ss)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if ok(a) != ok(b) {
			return ok(a)
		}
		if ok(a) && a.utility != b.utility {
			return a.utility > b.utility
		}
		return a.index < b.index
	})
	return out
}

// usable returns the usable samples.
func usable(ss []*sample) []*sample {
	var out []*sample
	for _, s := range ss {
		if s.usable() {
			out = append(out, s)
		}
	}
	return out
}

// choose returns the k best usable samples with distinct answers (topped up
// with repeats in rank order when there are not k distinct ones).
func choose(ss []*sample, k int) []*sample {
	ranked := rank(usable(ss))
	seen := map[string]bool{}
	var out []*sample
	for _, s := range ranked {
		key := rm.Render(s.choice)
		if len(out) < k && !seen[key] {
			seen[key] = true
			out = append(out, s)
		}
	}
	for _, s := range ranked {
		if len(out) >= k {
			break
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// enough fails the request when fewer than need usable answers exist. When
// backend calls failed, the failure keeps their class (every sample failing
// with a 404 is a 404); otherwise too few usable answers is its own class.
func enough(ss []*sample, need, failed int, first error) error {
	got := len(usable(ss))
	if got >= need {
		return nil
	}
	if failed > 0 && first != nil {
		if got == 0 && len(ss) == 0 {
			return first
		}
		return fmt.Errorf("%w: %d of %d answers usable, %d needed: %w", fault.ErrUpstream, got, len(ss)+failed, need, first)
	}
	invalid, pruned, dropped := 0, 0, 0
	for _, s := range ss {
		switch {
		case s.pruned:
			pruned++
		case s.invalid != "":
			invalid++
		case s.dropped != "":
			dropped++
		}
	}
	return fmt.Errorf("%w: %d of %d answers usable, %d needed (%d with unusable scores, %d pruned, %d dropped)", fault.ErrInsufficient,
		got, len(ss), need, invalid, pruned, dropped)
}

// finish builds the outcome: the chosen samples as choices 0..k-1 and the
// report (the engine fills in usage). When streaming, the chosen answers
// are emitted now, each as one delta and a finishing delta.
func finish(env *Env, ss []*sample, failed, k int, extra func(*Info)) (*Outcome, error) {
	return finishChosen(env, ss, choose(ss, k), failed, extra)
}

// finishChosen is finish with the answers already chosen, in order.
func finishChosen(env *Env, ss, chosen []*sample, failed int, extra func(*Info)) (*Outcome, error) {
	info := &Info{SamplesUsed: len(ss) + failed, Failed: failed}
	for _, s := range ss {
		c := Candidate{Index: s.index, Utility: Number(s.utility), Objectives: objectives(env.Objectives, s.scores),
			Chosen: slices.Contains(chosen, s), FinishReason: s.choice.FinishReason, CompletionTokens: s.choice.Tokens,
			Pruned: s.pruned, ScoreError: s.invalid, Dropped: s.dropped, Extra: s.extra, RewardDetail: s.detail}
		if s.invalid != "" {
			info.InvalidScores++
		}
		if !s.scored {
			c.Utility = Number(math.NaN())
		}
		info.Candidates = append(info.Candidates, c)
	}
	sort.Slice(info.Candidates, func(i, j int) bool { return info.Candidates[i].Index < info.Candidates[j].Index })
	g := &backend.Generation{}
	if len(chosen) > 0 {
		g.SystemFingerprint, g.Extra = chosen[0].fingerprint, chosen[0].top
	}
	for i, s := range chosen {
		c := s.choice
		c.Index = i
		g.Choices = append(g.Choices, c)
	}
	if len(chosen) > 0 && chosen[0].scored {
		info.Reward = &RewardReport{Utility: Number(chosen[0].utility), Objectives: objectives(env.Objectives, chosen[0].scores)}
	}
	if env.rewardErr != nil {
		info.RewardError = env.rewardErr.Error()
		info.Reward = nil
	}
	if extra != nil {
		extra(info)
	}
	if err := emitAnswer(env.Emit, g); err != nil {
		return nil, err
	}
	return &Outcome{Generation: g, Info: info}, nil
}

// emitAnswer streams a finished answer (steered, or from the cache): each
// choice as one delta and a finishing delta, with the fingerprint and the
// top-level fields of the backend's answer, so that its chunks carry what
// the backend's own would.
func emitAnswer(emit func(backend.Delta) error, g *backend.Generation) error {
	if emit == nil {
		return nil
	}
	for _, c := range g.Choices {
		if err := emit(backend.Delta{Index: c.Index, Text: c.Text, Logprobs: c.Logprobs, Reasoning: c.Reasoning,
			Refusal: c.Refusal, ToolCalls: c.ToolCalls, Fingerprint: g.SystemFingerprint, Extra: g.Extra}); err != nil {
			return err
		}
		if err := emit(backend.Delta{Index: c.Index, FinishReason: c.FinishReason, Fingerprint: g.SystemFingerprint, Extra: g.Extra}); err != nil {
			return err
		}
	}
	return nil
}

func objectives(names []string, scores []float32) map[string]Number {
	m := make(map[string]Number, len(names))
	for i, o := range names {
		if i < len(scores) {
			m[o] = Number(rm.Widen(scores[i]))
		}
	}
	return m
}
