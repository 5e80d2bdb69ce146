package prefs

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/steergate/steergate/fault"
)

// Service is what the gateway asks of prefs.
type Service struct {
	Store    Store
	Learning Learning
	LogTTL   time.Duration // how long responses are kept for feedback
	// Rewards answers a reward's objectives and whether its shaping drifts
	// (then feedback is not learned from it); ok false for an unknown one.
	Rewards func(name string) (objectives []string, drifts, ok bool)
	// DefaultReward is the reward preferences are for when none is named.
	DefaultReward string
}

// Scope is whose preferences a call reads or writes: the caller's tenant,
// or, for an admin key, the one it names.
func Scope(id Identity, tenant string) (string, error) {
	if tenant == "" || tenant == id.Tenant {
		return id.Tenant, nil
	}
	if !id.Admin() {
		return "", &fault.ParamError{Param: "tenant", Msg: "only an admin key may act on another tenant", Err: fault.ErrForbidden}
	}
	return tenant, nil
}

// reward resolves the reward preferences are for.
func (s *Service) reward(name string) (string, []string, bool, error) {
	if name == "" {
		name = s.DefaultReward
	}
	objs, drifts, ok := s.Rewards(name)
	if !ok || name == "" {
		return "", nil, false, invalid("reward", "unknown reward %q: preferences are weights over a reward's objectives", name)
	}
	return name, objs, drifts, nil
}

// Put checks and stores a user's preferences for a reward.
func (s *Service) Put(ctx context.Context, tenant, user, rewardName string, p *Preferences) (*Preferences, string, error) {
	if user == "" {
		return nil, "", invalid("user", "a user id is required")
	}
	name, objs, _, err := s.reward(rewardName)
	if err != nil {
		return nil, "", err
	}
	if len(p.Weights) == 0 {
		return nil, "", invalid("weights", "weights must name at least one objective of reward %s (%v)", name, objs)
	}
	for _, o := range slices.Sorted(maps.Keys(p.Weights)) {
		v := p.Weights[o]
		if !slices.Contains(objs, o) {
			return nil, "", invalid("weights."+o, "reward %s has no objective %q (it has %v)", name, o, objs)
		}
		if math.IsNaN(v) || math.IsInf(v, 0) || math.Abs(v) > s.Learning.Bound {
			return nil, "", invalid("weights."+o, "weight must be a finite number of magnitude at most %g (preferences.max_weight)", s.Learning.Bound)
		}
	}
	// The weights replace the learned ones, and learn afresh: their step
	// sizes restart and updates counts from 0.
	stored, err := s.Store.Update(ctx, tenant, user, name, func(*Preferences) (*Preferences, error) {
		return &Preferences{Weights: p.Weights, Normalize: p.Normalize}, nil
	})
	return stored, name, err
}

// Get returns a user's preferences for a reward (nil when none).
func (s *Service) Get(ctx context.Context, tenant, user, rewardName string) (*Preferences, string, error) {
	name, _, _, err := s.reward(rewardName)
	if err != nil {
		return nil, "", err
	}
	p, err := s.Store.Get(ctx, tenant, user, name)
	return p, name, err
}

// Delete removes a user's preferences for a reward.
func (s *Service) Delete(ctx context.Context, tenant, user, rewardName string) (bool, error) {
	name, _, _, err := s.reward(rewardName)
	if err != nil {
		return false, err
	}
	return s.Store.Delete(ctx, tenant, user, name)
}

// Feedback is a POST /v1/feedback body: a rating of a response, a choice
// between two of its candidates, or a choice between two responses.
type Feedback struct {
	ResponseID string          `json:"response_id"`
	Rating     json.RawMessage `json:"rating"`
	Chosen     *int            `json:"chosen"`
	Rejected   *int            `json:"rejected"`
	ChosenID   string          `json:"chosen_id"`
	RejectedID string          `json:"rejected_id"`
	FeedbackID *string         `json:"feedback_id"` // nil: none given
}

// Learned is what feedback left: the user's weights now.
type Learned struct {
	User      string             `json:"user"`
	Tenant    string             `json:"tenant"`
	Reward    string             `json:"reward"`
	Weights   map[string]float64 `json:"weights"`
	Updates   int                `json:"updates"`
	Duplicate bool               `json:"duplicate,omitempty"`
	// Learned is false for feedback that taught the weights nothing (a
	// duplicate, or an experiment's answer without candidates to rank).
	Learned bool `json:"learned"`
	// Arms are what the feedback says about experiment arms, for their
	// results (empty for a duplicate, or responses outside experiments).
	Arms []ArmFeedback `json:"-"`
}

// ArmFeedback is feedback on one response in an experiment arm.
type ArmFeedback struct {
	ResponseID      string
	Experiment, Arm string
	Win             int      // +1 a win, −1 a loss
	Rating          *float64 // the rating, when the feedback was one
	Tokens          int      // the backend tokens the response spent
}

// Kind names the feedback's form, for metrics.
func (f *Feedback) Kind() string {
	switch {
	case f.ChosenID != "" || f.RejectedID != "":
		return "responses"
	case f.Chosen != nil || f.Rejected != nil:
		return "candidates"
	}
	return "rating"
}

// ArmKey is the feedback id under which a response's first feedback is
// counted for its experiment arm.
func ArmKey(responseID string) string { return "experiment:" + responseID }

// Learn checks the feedback against the logged responses of the tenant
// it is about (Scope's answer: the key's own, or the one an admin named)
// and updates the user's weights. Nothing changes unless everything
// checks.
func (s *Service) Learn(ctx context.Context, tenant string, f *Feedback) (*Learned, error) {
	if f.FeedbackID != nil && *f.FeedbackID == "" {
		return nil, invalid("feedback_id", "must not be empty (leave it out to count every feedback)")
	}
	pairs, resp, arms, err := s.pairs(ctx, tenant, f)
	if err != nil {
		return nil, err
	}
	if len(pairs) > 0 {
		objs, drifts, ok := s.Rewards(resp.Reward)
		if !ok || !slices.Equal(objs, resp.Objectives) {
			return nil, invalid("response_id", "reward %s has changed since the response: its feedback no longer applies", resp.Reward)
		}
		if drifts {
			return nil, invalid("response_id", "reward %s normalizes by running statistics that keep changing (set freeze_after): feedback is not learned from it", resp.Reward)
		}
	}
	out := &Learned{User: resp.User, Tenant: resp.Tenant, Reward: resp.Reward}
	done := false // the feedback is stored
	if f.FeedbackID != nil {
		// The client's ids have a namespace of their own: no id a client
		// picks is one the gateway keeps for itself (ArmKey).
		key := "client:" + *f.FeedbackID
		claim, err := s.Store.ClaimFeedback(ctx, resp.Tenant, key)
		if err != nil {
			return nil, err
		}
		switch claim {
		case ClaimPending:
			// The first of these is still being stored, and may yet fail:
			// neither a duplicate nor a first, so try again shortly.
			return nil, &fault.ParamError{Param: "feedback_id", Msg: "feedback with this feedback_id is being stored now; try again shortly", Err: fault.ErrOverloaded}
		case ClaimFirst:
			// Feedback that is not stored after all has not been given:
			// its id stays free for the retry. Stored, it is a repeat
			// for 30 days.
			defer func() {
				fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				defer cancel()
				if done {
					_ = s.Store.SettleFeedback(fctx, resp.Tenant, key, 30*24*time.Hour)
				} else {
					_ = s.Store.ForgetFeedback(fctx, resp.Tenant, key)
				}
			}()
		default:
			cur, err := s.Store.Get(ctx, resp.Tenant, resp.User, resp.Reward)
			if err != nil {
				return nil, err
			}
			out.Duplicate = true
			if cur != nil {
				out.Weights, out.Updates = cur.Weights, cur.Updates
			}
			return out, nil
		}
	}
	if len(pairs) == 0 {
		// Feedback on an experiment's answer that ranks no candidates
		// (strategy none, or answers of different rewards): it counts for
		// the arms, and teaches the weights nothing.
		out.Arms = arms
		if resp.Reward != "" {
			cur, err := s.Store.Get(ctx, resp.Tenant, resp.User, resp.Reward)
			if err != nil {
				return nil, err
			}
			if cur != nil {
				out.Weights, out.Updates = cur.Weights, cur.Updates
			}
		}
		done = true
		return out, nil
	}
	p, err := s.Store.Update(ctx, resp.Tenant, resp.User, resp.Reward, func(cur *Preferences) (*Preferences, error) {
		next := &Preferences{}
		start := resp.Weights
		if cur != nil {
			*next = *cur
			start = cur.Weights
		}
		next.Weights, next.GradSq = s.Learning.Learn(resp.Objectives, start, resp.Route0, next.GradSq, pairs)
		next.Updates++
		return next, nil
	})
	if err != nil {
		return nil, err
	}
	out.Weights, out.Updates, out.Arms, out.Learned = p.Weights, p.Updates, arms, true
	done = true
	return out, nil
}

// pairs reads the feedback into preference pairs over one user's
// responses.
func (s *Service) pairs(ctx context.Context, tenant string, f *Feedback) ([]Pair, *Response, []ArmFeedback, error) {
	byID := func(param, rid string) (*Response, error) {
		if rid == "" {
			return nil, invalid(param, "%s is required", param)
		}
		r, err := s.Store.Response(ctx, rid)
		if err != nil {
			return nil, err
		}
		// Another tenant's response is as unknown as a missing one.
		if r == nil || r.Tenant != tenant {
			return nil, notFound(param, "no response %q (responses are kept %s, for steered requests with a user)", fault.Clip(rid, 64), s.LogTTL)
		}
		if r.User == "" {
			return nil, invalid(param, "response %q has no user to learn for", fault.Clip(rid, 64))
		}
		return r, nil
	}
	vector := func(r *Response, param string, i int) ([]float64, error) {
		for _, c := range r.Candidates {
			if c.Index == i {
				return c.Vector, nil
			}
		}
		return nil, invalid(param, "response %s has no candidate %d", fault.Clip(r.ID, 64), i)
	}
	switch f.Kind() {
	case "responses":
		if f.ResponseID != "" || f.Rating != nil || f.Chosen != nil || f.Rejected != nil {
			return nil, nil, nil, invalid("chosen_id", "give chosen_id and rejected_id alone")
		}
		if f.ChosenID == "" || f.RejectedID == "" {
			missing := map[bool]string{true: "chosen_id", false: "rejected_id"}[f.ChosenID == ""]
			return nil, nil, nil, invalid(missing, "a choice between two responses needs both chosen_id and rejected_id")
		}
		a, err := byID("chosen_id", f.ChosenID)
		if err != nil {
			return nil, nil, nil, err
		}
		b, err := byID("rejected_id", f.RejectedID)
		if err != nil {
			return nil, nil, nil, err
		}
		switch {
		case a.ID == b.ID:
			return nil, nil, nil, invalid("rejected_id", "chosen_id and rejected_id are the same response")
		case a.Tenant != b.Tenant || a.User != b.User:
			return nil, nil, nil, invalid("rejected_id", "the two responses are not the same user's")
		}
		va, errA := vector(a, "chosen_id", a.Chosen)
		vb, errB := vector(b, "rejected_id", b.Chosen)
		comparable := a.Reward == b.Reward && slices.Equal(a.Objectives, b.Objectives) && errA == nil && errB == nil
		var pairs []Pair
		if comparable {
			pairs = []Pair{{A: va, B: vb, Weight: 1}}
		} else if a.Arm == "" && b.Arm == "" {
			// Outside experiments a choice is only worth its lesson.
			return nil, nil, nil, invalid("rejected_id", "the two responses were not scored by the same reward: there is nothing to learn from the choice")
		}
		var arms []ArmFeedback
		if a.Arm != "" && a.Experiment == b.Experiment && a.Arm == b.Arm {
			// Both in one arm (as a user's answers are under unit user): a
			// win and a loss for the same arm would say nothing of it.
			return pairs, a, nil, nil
		}
		for _, x := range []struct {
			r   *Response
			win int
		}{{a, 1}, {b, -1}} {
			if x.r.Arm != "" {
				arms = append(arms, ArmFeedback{ResponseID: x.r.ID, Experiment: x.r.Experiment, Arm: x.r.Arm, Win: x.win, Tokens: x.r.Tokens})
			}
		}
		return pairs, a, arms, nil
	case "candidates":
		if f.Rating != nil || f.Chosen == nil || f.Rejected == nil {
			return nil, nil, nil, invalid("chosen", "give response_id with chosen and rejected candidate indexes, and no rating")
		}
		r, err := byID("response_id", f.ResponseID)
		if err != nil {
			return nil, nil, nil, err
		}
		if *f.Chosen == *f.Rejected {
			return nil, nil, nil, invalid("rejected", "chosen and rejected are the same candidate")
		}
		va, err := vector(r, "chosen", *f.Chosen)
		if err != nil {
			return nil, nil, nil, err
		}
		vb, err := vector(r, "rejected", *f.Rejected)
		if err != nil {
			return nil, nil, nil, err
		}
		return []Pair{{A: va, B: vb, Weight: 1}}, r, nil, nil
	}
	rating, err := readRating(f.Rating)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := byID("response_id", f.ResponseID)
	if err != nil {
		return nil, nil, nil, err
	}
	chosen, _ := vector(r, "response_id", r.Chosen)
	var pairs []Pair
	for _, c := range r.Candidates {
		if c.Index == r.Chosen {
			continue
		}
		// A good rating says the chosen answer beat the others; a bad
		// one, that they would have been better.
		p := Pair{A: chosen, B: c.Vector, Weight: math.Abs(rating) / float64(len(r.Candidates)-1)}
		if rating < 0 {
			p.A, p.B = p.B, p.A
		}
		pairs = append(pairs, p)
	}
	if rating == 0 || len(pairs) == 0 && r.Arm == "" {
		return nil, nil, nil, invalid("rating", "a rating of 0, or of a response with one candidate outside experiments, says nothing to learn from")
	}
	var arms []ArmFeedback
	if r.Arm != "" {
		win := 1
		if rating < 0 {
			win = -1
		}
		arms = append(arms, ArmFeedback{ResponseID: r.ID, Experiment: r.Experiment, Arm: r.Arm, Win: win, Rating: &rating, Tokens: r.Tokens})
	}
	return pairs, r, arms, nil
}

// readRating reads −1…1, "up" (1) or "down" (−1).
func readRating(raw json.RawMessage) (float64, error) {
	if raw == nil {
		return 0, invalid("rating", "give rating (−1 to 1, \"up\" or \"down\") with response_id, or chosen and rejected")
	}
	var word string
	if json.Unmarshal(raw, &word) == nil {
		switch word {
		case "up":
			return 1, nil
		case "down":
			return -1, nil
		}
		return 0, invalid("rating", "rating must be a number from −1 to 1, \"up\" or \"down\"")
	}
	var v float64
	if err := json.Unmarshal(raw, &v); err != nil || math.IsNaN(v) || v < -1 || v > 1 {
		return 0, invalid("rating", "rating must be a number from −1 to 1, \"up\" or \"down\"")
	}
	return v, nil
}
