package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/steergate/steergate/experiment"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/prefs"
	"github.com/steergate/steergate/steering"
	"github.com/steergate/steergate/wire"
	"github.com/valyala/fasthttp"
)

// identify reads the request's API key; a failure is answered (401) and
// counted.
func (s *Server) identify(ctx *fasthttp.RequestCtx) (prefs.Identity, bool) {
	id, err := s.opts.Keys.Identify(ctx, authorization(ctx))
	if err == nil {
		return id, true
	}
	reason := "invalid"
	switch {
	case errors.Is(err, prefs.ErrNoKey):
		reason = "missing"
	case !errors.Is(err, fault.ErrUnauthorized):
		reason = "lookup_failed"
		err = &fault.ParamError{Msg: "the API key could not be checked; try again shortly", Err: fault.ErrOverloaded}
	}
	s.metrics.AuthFailure(reason)
	writeError(ctx, err)
	return prefs.Identity{}, false
}

// preferences serves GET, PUT and DELETE /v1/users/{id}/preferences.
func (s *Server) preferences(ctx *fasthttp.RequestCtx, id prefs.Identity, user string) {
	svc := s.opts.Prefs
	if svc == nil {
		writeError(ctx, fault.New(fault.ErrNotFound, "", "preferences are not enabled on this gateway"))
		return
	}
	q, err := queryOf(ctx, "tenant", "reward")
	if err == nil {
		err = checkUser(user)
	}
	if err != nil {
		writeError(ctx, err)
		return
	}
	tenant, err := prefs.Scope(id, q["tenant"])
	if err != nil {
		writeError(ctx, err)
		return
	}
	reward := q["reward"]
	rctx, cancel := context.WithTimeout(s.base, 5*time.Second)
	defer cancel()
	method := string(ctx.Method())
	answer := func(p *prefs.Preferences, name string) {
		writeJSON(ctx, fasthttp.StatusOK, map[string]any{"user": user, "tenant": tenant, "reward": name,
			"weights": p.Weights, "normalize": p.Normalize, "updates": p.Updates})
	}
	outcome := "ok"
	defer func() { s.metrics.Preferences(strings.ToLower(method), outcome) }()
	switch method {
	case "GET":
		p, name, err := svc.Get(rctx, tenant, user, reward)
		if err == nil && p == nil {
			err = fault.New(fault.ErrNotFound, "user", "user %q has no preferences for reward %s", fault.Clip(user, 64), name)
		}
		if err != nil {
			outcome = "error"
			writeError(ctx, err)
			return
		}
		answer(p, name)
	case "PUT":
		// Only what a client may set: the update count and the learner's
		// state are the gateway's.
		var body struct {
			Weights   json.RawMessage `json:"weights"`
			Normalize bool            `json:"normalize"`
		}
		err := strictJSON(ctx.PostBody(), &body)
		var weights map[string]float64
		if err == nil {
			// Read as a steering object's are: each objective once, a
			// number (null is none).
			weights, err = steering.Weights(body.Weights, "weights")
		}
		if err != nil {
			outcome = "invalid"
			writeError(ctx, err)
			return
		}
		p, name, err := svc.Put(rctx, tenant, user, reward, &prefs.Preferences{Weights: weights, Normalize: body.Normalize})
		if err != nil {
			outcome = "invalid"
			writeError(ctx, err)
			return
		}
		answer(p, name)
	case "DELETE":
		ok, err := svc.Delete(rctx, tenant, user, reward)
		if err == nil && !ok {
			err = fault.New(fault.ErrNotFound, "user", "user %q has no preferences", fault.Clip(user, 64))
		}
		if err != nil {
			outcome = "error"
			writeError(ctx, err)
			return
		}
		ctx.SetStatusCode(fasthttp.StatusNoContent)
	}
}

// strictJSON decodes a request body, refusing unknown fields by name.
func strictJSON(body []byte, v any) error { return wire.DecodeStrict(body, v) }

// feedback serves POST /v1/feedback.
func (s *Server) feedback(ctx *fasthttp.RequestCtx, id prefs.Identity) {
	svc := s.opts.Prefs
	if svc == nil {
		writeError(ctx, fault.New(fault.ErrNotFound, "", "feedback is not enabled on this gateway"))
		return
	}
	var f prefs.Feedback
	q, err := queryOf(ctx, "tenant")
	if err == nil {
		err = strictJSON(ctx.PostBody(), &f)
	}
	if err != nil {
		s.metrics.Feedback(id.Class, "invalid", "invalid")
		writeError(ctx, err)
		return
	}
	// An admin gives feedback on another tenant's responses by naming it,
	// as on the preferences endpoints.
	tenant, err := prefs.Scope(id, q["tenant"])
	if err != nil {
		writeError(ctx, err)
		return
	}
	rctx, cancel := context.WithTimeout(s.base, 5*time.Second)
	defer cancel()
	out, err := svc.Learn(rctx, tenant, &f)
	if err != nil {
		s.metrics.Feedback(id.Class, f.Kind(), "refused")
		writeError(ctx, err)
		return
	}
	outcome := "learned"
	if out.Duplicate {
		outcome = "duplicate"
	}
	s.metrics.Feedback(id.Class, f.Kind(), outcome)
	s.recordFeedback(out)
	writeJSON(ctx, fasthttp.StatusOK, out)
}

// userPath reads /v1/users/{id}/preferences.
func userPath(path string) (string, bool) {
	rest, ok := strings.CutPrefix(path, "/v1/users/")
	if !ok {
		return "", false
	}
	user, ok := strings.CutSuffix(rest, "/preferences")
	if !ok || user == "" || strings.Contains(user, "/") {
		return "", false
	}
	u, err := url.PathUnescape(user)
	if err != nil {
		return "", false
	}
	return u, true
}

// checkUser refuses a user id no request could name: a request's user is
// UTF-8 text, like every body.
func checkUser(user string) error {
	if !utf8.ValidString(user) {
		return fault.Invalid("user", "the user id in the path is not UTF-8 text")
	}
	return nil
}

// userWeights lays the user's preferences into the plan, between the
// request's weights and the route's.
func (s *Server) userWeights(ctx context.Context, tenant, user string, plan *steering.Plan) error {
	if s.opts.Prefs == nil || user == "" || plan.RewardName == "" {
		return nil
	}
	p, err := s.opts.Prefs.Store.Get(ctx, tenant, user, plan.RewardName)
	if err != nil {
		return &fault.ParamError{Msg: "the user's preferences could not be read; try again shortly", Err: fault.ErrOverloaded}
	}
	plan.UserWeights = prefs.Apply(p, plan.Objectives)
	s.metrics.Preferences("apply", map[bool]string{true: "found", false: "none"}[p != nil])
	return nil
}

// logResponse keeps a response for feedback: a steered one with its
// candidates' objective vectors over the reward's objectives, when the
// reward's columns are those objectives (not an ensemble's or a gated
// model's); an experiment's, whatever its strategy, so that users can rate
// every arm (but for a forced arm's, which is no sample of its experiment).
func (s *Server) logResponse(id, tenant, user, route string, plan *steering.Plan, out *steering.Outcome, en *experiment.Enrollment) {
	if en != nil && en.Forced {
		en = nil // its feedback counts for no arm: the arm was not drawn
	}
	if s.opts.Prefs == nil || user == "" || out == nil || plan.RewardName == "" && en == nil {
		return
	}
	info := out.Info
	if out.Report != nil { // a cache hit: its report is stored encoded
		var full steering.Info
		if json.Unmarshal(out.Report, &full) == nil {
			info = &full
		}
	}
	r := &prefs.Response{ID: id, Tenant: tenant, User: user, Route: route, Strategy: plan.Name, Chosen: -1, Created: time.Now().Unix(), Tokens: spent(out)}
	if en != nil {
		r.Experiment, r.Arm = en.Experiment.Name, en.Arm
	}
	if vs, chosen, ok := vectors(plan, info); ok {
		r.Reward, r.Weights, r.Route0, r.Objectives, r.Candidates, r.Chosen = plan.RewardName, plan.Weights(), routeAnchor(plan), plan.Objectives, vs, chosen
	} else if en == nil {
		return // nothing to learn from, and no arm to count for
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(s.base), 2*time.Second)
	defer cancel()
	if err := s.opts.Prefs.Store.LogResponse(ctx, r, s.opts.Prefs.LogTTL); err != nil {
		s.log.Warn("response log write failed", "id", id, "err", err)
	}
}

// vectors reads the candidates' objective vectors and the chosen one's
// index from a report; ok is false when there is nothing linear in the
// objectives to learn from.
func vectors(plan *steering.Plan, info *steering.Info) ([]prefs.Candidate, int, bool) {
	if plan.RewardName == "" || info == nil || len(info.Candidates) == 0 {
		return nil, -1, false
	}
	var out []prefs.Candidate
	chosen := -1
	for _, c := range info.Candidates {
		v := make([]float64, len(plan.Objectives))
		for i, o := range plan.Objectives {
			x, ok := c.Objectives[o]
			if !ok {
				return nil, -1, false // columns are not the objectives
			}
			v[i] = float64(x)
		}
		if c.Utility.Finite() {
			out = append(out, prefs.Candidate{Index: c.Index, Vector: v})
		}
		if c.Chosen && chosen < 0 {
			chosen = c.Index
		}
	}
	return out, chosen, chosen >= 0
}

// routeAnchor is what learning pulls toward: the weights without the
// user's layer or the request's.
func routeAnchor(p *steering.Plan) map[string]float64 {
	q := *p
	q.RequestWeights, q.UserWeights = nil, nil
	return q.Weights()
}
