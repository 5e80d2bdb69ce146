package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/experiment"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/prefs"
	"github.com/steergate/steergate/steering"
	"github.com/valyala/fasthttp"
)

// evaluator scores a final answer with a named reward, the same way for
// every arm (the steering engine does).
type evaluator interface {
	Evaluate(ctx context.Context, reward string, r *backend.Request, g *backend.Generation) (float64, error)
}

// enroll places a request in the experiment covering its model, if any,
// and returns the steering to plan with. The model is the name the router
// matched, so that "x:latest" is in x's experiment.
func (s *Server) enroll(rctx context.Context, id prefs.Identity, req *request, rt backend.Route, reqID string) (*experiment.Enrollment, json.RawMessage, error) {
	if s.opts.Experiments == nil && len(req.steering) == 0 {
		return nil, req.steering, nil
	}
	// With no experiments, Enroll still refuses a steering.arm (it names
	// an arm no experiment has), and has no store to wait for.
	ctx := rctx
	if s.opts.Experiments != nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(rctx, 2*time.Second)
		defer cancel()
	}
	en, steer, err := s.opts.Experiments.Enroll(ctx, experiment.Request{Model: rt.Matched, Route: rt.Name, Tenant: id.Tenant,
		User: req.backend.User, RequestID: reqID, Admin: id.Admin(), Steering: req.steering})
	if errors.Is(err, experiment.ErrStore) {
		// The shared store could not place the unit: answer outside the
		// experiment rather than fail the request.
		s.log.Warn("experiment assignment failed; request not enrolled", "request_id", reqID, "err", err)
		return nil, req.steering, nil
	}
	if en != nil {
		s.metrics.Enrolled(en.Experiment.Name, en.Arm)
	}
	return en, steer, err
}

// recordRequest adds a finished request to its arm; with an evaluation
// outcome it also scores the final answer, in the background, on the
// experiment's share of responses.
func (s *Server) recordRequest(en *experiment.Enrollment, respID string, r *backend.Request, out *steering.Outcome, failed bool, took time.Duration) {
	if en == nil || en.Forced {
		return // a forced arm was not drawn: it is no sample of the experiment
	}
	o := experiment.Observation{Request: true, Error: failed, Latency: took}
	if out != nil && out.Cache != steering.CacheHit { // a cache hit spent nothing
		o.Samples = 1
		if out.Info != nil {
			o.Samples = out.Info.SamplesUsed
		}
		o.Tokens = spent(out)
	}
	record := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), 2*time.Second)
		defer cancel()
		if err := s.opts.Experiments.Record(ctx, en, o); err != nil {
			s.log.Warn("experiment record failed", "experiment", en.String(), "err", err)
		}
	}
	// The shared store's round trip is not the client's to wait for: it
	// runs beside the answer, with a bound on how many at once; past it,
	// in line, so that a slow store slows requests rather than losing
	// their counts.
	select {
	case s.recordSlots <- struct{}{}:
		s.background.Add(1)
		go func() {
			defer s.background.Done()
			defer func() { <-s.recordSlots }()
			record()
		}()
	default:
		record()
	}
	ev, ok := s.engine.(evaluator)
	if failed || out == nil || !ok || !en.Evaluated(respID) {
		return
	}
	select {
	case s.evalSlots <- struct{}{}:
	default:
		s.metrics.EvaluationSkipped(en.Experiment.Name)
		return // evaluations are a sample already: skip one rather than queue without bound
	}
	s.background.Add(1)
	go func() {
		defer s.background.Done()
		defer func() { <-s.evalSlots }()
		ctx, cancel := context.WithTimeout(s.base, time.Minute)
		defer cancel()
		v, err := ev.Evaluate(ctx, en.Experiment.Reward, r, out.Generation)
		if err != nil {
			s.log.Warn("experiment evaluation failed", "experiment", en.String(), "err", err)
			return
		}
		if err := s.opts.Experiments.Record(ctx, en, experiment.Observation{Outcome: &v, OutcomeTokens: o.Tokens, Unit: en.Unit}); err != nil {
			s.log.Warn("experiment record failed", "experiment", en.String(), "err", err)
		}
	}()
}

// recordFeedback adds learned feedback to the arms of the responses it
// was about: a rating is the outcome of a feedback experiment and a win
// or loss; a choice between two responses is a win and a loss. Each
// response counts once in its arm's results, however often it is rated:
// the first feedback on it is the one its arm keeps.
func (s *Server) recordFeedback(out *prefs.Learned) {
	if s.opts.Experiments == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), 2*time.Second)
	defer cancel()
	for _, a := range out.Arms {
		e := s.opts.Experiments.Get(a.Experiment)
		if e == nil || e.Arm(a.Arm) == nil {
			continue // an experiment or arm since removed
		}
		first, err := s.opts.Prefs.Store.FirstFeedback(ctx, out.Tenant, prefs.ArmKey(a.ResponseID), s.opts.Prefs.LogTTL)
		if err != nil || !first {
			continue
		}
		o := experiment.Observation{Feedback: a.Win}
		if a.Rating != nil && e.Outcome == "feedback" {
			o.Outcome, o.OutcomeTokens = a.Rating, a.Tokens
			// Under unit user, the rating is one of its user's; under unit
			// request, the one outcome of its request.
			if e.Unit == experiment.UnitUser {
				o.Unit = experiment.UnitOf(out.Tenant, out.User)
			}
		}
		if err := s.opts.Experiments.Record(ctx, &experiment.Enrollment{Experiment: e, Arm: a.Arm}, o); err != nil {
			s.log.Warn("experiment record failed", "experiment", a.Experiment, "err", err)
		}
	}
}

// spent is the backend tokens an answer took; a cache hit took none.
func spent(out *steering.Outcome) int {
	if out == nil || out.Cache == steering.CacheHit || out.Generation == nil {
		return 0
	}
	return out.Generation.Usage.PromptTokens + out.Generation.Usage.CompletionTokens
}

// experiments serves GET /v1/experiments and /v1/experiments/{name}: the
// results of every tenant's traffic, so for admin keys only.
func (s *Server) experiments(ctx *fasthttp.RequestCtx, id prefs.Identity, name string) {
	if !id.Admin() {
		writeError(ctx, fault.New(fault.ErrForbidden, "", "experiment results cover every tenant: an admin key may read them"))
		return
	}
	set := s.opts.Experiments
	rctx, cancel := context.WithTimeout(s.base, 5*time.Second)
	defer cancel()
	if name != "" {
		e := set.Get(name)
		if e == nil {
			writeError(ctx, fault.New(fault.ErrNotFound, "", "no experiment %q", fault.Clip(name, 64)))
			return
		}
		r, err := set.Results(rctx, e)
		if err != nil {
			writeError(ctx, &fault.ParamError{Msg: "the experiment's totals could not be read; try again shortly", Err: fault.ErrOverloaded})
			return
		}
		writeJSON(ctx, fasthttp.StatusOK, r)
		return
	}
	list := []*experiment.Report{}
	for _, e := range set.Experiments() {
		r, err := set.Results(rctx, e)
		if err != nil {
			writeError(ctx, &fault.ParamError{Msg: "the experiments' totals could not be read; try again shortly", Err: fault.ErrOverloaded})
			return
		}
		for i := range r.Arms {
			r.Arms[i].Series, r.Arms[i].Recent = nil, nil // the list is a summary; one experiment's page has the history
		}
		list = append(list, r)
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]any{"object": "list", "data": list})
}

// experimentPath reads /v1/experiments[/{name}].
func experimentPath(path string) (string, bool) {
	if path == "/v1/experiments" {
		return "", true
	}
	name, ok := strings.CutPrefix(path, "/v1/experiments/")
	return name, ok && name != "" && !strings.Contains(name, "/")
}
