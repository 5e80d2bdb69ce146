package prefs

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/steergate/steergate/fault"
)

// Two Bradley–Terry steps by hand, from w = (0, 0) with anchor (1, 0),
// L2 0.1 and η 0.5, on a pair with d = (1, −1).
// Step 1: σ(0) = ½; gradients (½ + 0.1·1, −½) = (0.6, −0.5), so
// g² = (0.36, 0.25) and w = η·g/√(1+g²) = (0.2572479, −0.2236068).
// Step 2: w·d = 0.4808547, 1 − σ = 0.3820503; gradients
// (0.3820503 + 0.1·(1 − 0.2572479), −0.3820503 + 0.1·0.2236068) =
// (0.4563255, −0.3596896); g² = (0.5682330, 0.3793766); w =
// (0.4394441, −0.3767355).
func TestLearnByHand(t *testing.T) {
	l := Learning{Rate: 0.5, L2: 0.1, Bound: 10}
	objs, pair := []string{"a", "b"}, []Pair{{A: []float64{1, 0}, B: []float64{0, 1}, Weight: 1}}
	anchor := map[string]float64{"a": 1}
	near := func(got, want float64) bool { return math.Abs(got-want) < 1e-6 }
	w, g2 := l.Learn(objs, map[string]float64{"a": 0, "b": 0}, anchor, nil, pair)
	if !near(w["a"], 0.2572479) || !near(w["b"], -0.2236068) || !near(g2["a"], 0.36) || !near(g2["b"], 0.25) {
		t.Errorf("step 1: weights %v, g² %v", w, g2)
	}
	w, g2 = l.Learn(objs, w, anchor, g2, pair)
	if !near(w["a"], 0.4394441) || !near(w["b"], -0.3767355) || !near(g2["a"], 0.5682330) || !near(g2["b"], 0.3793766) {
		t.Errorf("step 2: weights %v, g² %v", w, g2)
	}
	// Bounds hold, and an objective the user never set starts from the
	// anchor (3, clipped to 0.1 as soon as it moves).
	l.Bound = 0.1
	w, _ = l.Learn(objs, map[string]float64{"b": 0}, map[string]float64{"a": 3}, nil, []Pair{{A: []float64{0, 10}, B: []float64{10, 0}, Weight: 1}})
	if w["a"] != 0.1 || w["b"] != 0.1 {
		t.Errorf("bounded weights %v", w)
	}
}

func TestApply(t *testing.T) {
	p := &Preferences{Weights: map[string]float64{"a": 3, "b": -4, "gone": 1}, Normalize: true}
	w := Apply(p, []string{"a", "b"})
	if math.Abs(w["a"]-0.6) > 1e-12 || math.Abs(w["b"]+0.8) > 1e-12 || len(w) != 2 {
		t.Errorf("normalized %v", w)
	}
	p.Normalize = false
	if w := Apply(p, []string{"a"}); w["a"] != 3 || len(w) != 1 {
		t.Errorf("as stored %v", w)
	}
	if Apply(nil, []string{"a"}) != nil || Apply(p, []string{"z"}) != nil {
		t.Error("no preferences applied something")
	}
}

func service(store Store) *Service {
	return &Service{Store: store, LogTTL: time.Hour, DefaultReward: "r", Learning: Learning{Rate: 0.5, L2: 0.01, Bound: 10},
		Rewards: func(name string) ([]string, bool, bool) {
			switch name {
			case "r":
				return []string{"a", "b"}, false, true
			case "drifting":
				return []string{"a", "b"}, true, true
			}
			return nil, false, false
		}}
}

func logged(store Store, id, tenant, reward string) {
	_ = store.LogResponse(context.Background(), &Response{ID: id, Tenant: tenant, User: "u", Reward: reward, Objectives: []string{"a", "b"},
		Weights: map[string]float64{"a": 1, "b": 1}, Route0: map[string]float64{"a": 1, "b": 1}, Chosen: 0,
		Candidates: []Candidate{{Index: 0, Vector: []float64{1, 0}}, {Index: 1, Vector: []float64{0, 1}}}}, time.Hour)
}

// Feedback that does not check changes nothing, with a clear 4xx naming
// what is wrong; a repeated feedback id is learned once.
func TestFeedbackChecks(t *testing.T) {
	store := NewMemory(10, 10)
	s := service(store)
	ctx := context.Background()
	logged(store, "mine", "t1", "r")
	logged(store, "theirs", "t2", "r")
	logged(store, "drift", "t1", "drifting")
	// An answer without candidates (strategy none), outside experiments.
	_ = store.LogResponse(ctx, &Response{ID: "bare", Tenant: "t1", User: "u", Chosen: -1}, time.Hour)
	me := Identity{Tenant: "t1", Role: RoleUser}
	one, two := 1, 2
	for _, c := range []struct {
		f     Feedback
		param string
		class error
	}{
		{Feedback{ResponseID: "nope", Rating: json.RawMessage(`1`)}, "response_id", fault.ErrNotFound},
		{Feedback{ResponseID: "theirs", Rating: json.RawMessage(`1`)}, "response_id", fault.ErrNotFound},
		{Feedback{ResponseID: "mine", Rating: json.RawMessage(`1.5`)}, "rating", fault.ErrInvalid},
		{Feedback{ResponseID: "mine", Rating: json.RawMessage(`"meh"`)}, "rating", fault.ErrInvalid},
		{Feedback{ResponseID: "mine"}, "rating", fault.ErrInvalid},
		{Feedback{ResponseID: "mine", Chosen: &one, Rejected: &two}, "rejected", fault.ErrInvalid},
		{Feedback{ResponseID: "mine", Chosen: &one, Rejected: &one}, "rejected", fault.ErrInvalid},
		{Feedback{ChosenID: "mine", RejectedID: "mine"}, "rejected_id", fault.ErrInvalid},
		{Feedback{ChosenID: "mine", RejectedID: "theirs"}, "rejected_id", fault.ErrNotFound},
		{Feedback{ResponseID: "drift", Rating: json.RawMessage(`"up"`)}, "response_id", fault.ErrInvalid},
		{Feedback{ResponseID: "bare", Rating: json.RawMessage(`"up"`)}, "rating", fault.ErrInvalid},
		{Feedback{ChosenID: "mine", RejectedID: "bare"}, "rejected_id", fault.ErrInvalid},
		{Feedback{ChosenID: "nope"}, "rejected_id", fault.ErrInvalid},
		{Feedback{ChosenID: "mine", RejectedID: "drift"}, "rejected_id", fault.ErrInvalid},
	} {
		_, err := s.Learn(ctx, me.Tenant, &c.f)
		if fault.Param(err) != c.param || !errors.Is(err, c.class) {
			t.Errorf("%+v: %v, want %v naming %s", c.f, err, c.class, c.param)
		}
	}
	if p, _ := store.Get(ctx, "t1", "u", "r"); p != nil {
		t.Fatalf("refused feedback changed the weights: %+v", p)
	}
	first, err := s.Learn(ctx, me.Tenant, &Feedback{ResponseID: "mine", Rating: json.RawMessage(`"up"`), FeedbackID: new("f1")})
	if err != nil || first.Updates != 1 || first.Weights["a"] <= 1 || first.Weights["b"] >= 1 {
		t.Fatalf("learned %+v (%v): up on a chosen (1, 0) over (0, 1) raises a and lowers b", first, err)
	}
	again, err := s.Learn(ctx, me.Tenant, &Feedback{ResponseID: "mine", Rating: json.RawMessage(`"up"`), FeedbackID: new("f1")})
	if err != nil || !again.Duplicate || again.Updates != 1 {
		t.Errorf("repeated feedback id: %+v (%v)", again, err)
	}
	// In an experiment, an answer without candidates counts for its arm
	// and teaches nothing; so does a choice between it and another arm's.
	_ = store.LogResponse(ctx, &Response{ID: "arm-none", Tenant: "t1", User: "u", Chosen: -1, Experiment: "x", Arm: "none"}, time.Hour)
	logged(store, "arm-other", "t1", "r")
	other, _ := store.Response(ctx, "arm-other")
	other.Experiment, other.Arm = "x", "best"
	_ = store.LogResponse(ctx, other, time.Hour)
	if got, err := s.Learn(ctx, me.Tenant, &Feedback{ResponseID: "arm-none", Rating: json.RawMessage(`-1`)}); err != nil || got.Learned || got.Reward != "" ||
		len(got.Arms) != 1 || got.Arms[0].Win != -1 || *got.Arms[0].Rating != -1 {
		t.Errorf("a rating of an unsteered arm's answer: %+v (%v)", got, err)
	}
	if got, err := s.Learn(ctx, me.Tenant, &Feedback{ChosenID: "arm-none", RejectedID: "arm-other"}); err != nil || got.Learned ||
		len(got.Arms) != 2 || got.Arms[0].Arm != "none" || got.Arms[0].Win != 1 || got.Arms[1].Arm != "best" || got.Arms[1].Win != -1 {
		t.Errorf("a choice between two arms' answers: %+v (%v)", got, err)
	}
	// An admin gives feedback on another tenant's responses by naming the
	// tenant (Scope), and on its own tenant's otherwise.
	admin := Identity{Tenant: "t1", Role: RoleAdmin}
	if _, err := s.Learn(ctx, admin.Tenant, &Feedback{ResponseID: "theirs", Rating: json.RawMessage(`-0.5`)}); !errors.Is(err, fault.ErrNotFound) {
		t.Errorf("admin, its own tenant, another's response: %v", err)
	}
	scope, err := Scope(admin, "t2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Learn(ctx, scope, &Feedback{ResponseID: "theirs", Rating: json.RawMessage(`-0.5`)}); err != nil {
		t.Errorf("admin naming the tenant: %v", err)
	}
}

// contended fails every update, as Redis does when other replicas keep
// winning the race.
type contended struct{ Store }

func (contended) Update(context.Context, string, string, string, func(*Preferences) (*Preferences, error)) (*Preferences, error) {
	return nil, errContended
}

// A feedback id is the client's alone: it cannot stand for the id under
// which a response counts for its arm, and one whose feedback was not
// stored stays free for the retry.
func TestFeedbackIDs(t *testing.T) {
	store := NewMemory(10, 10)
	ctx := context.Background()
	logged(store, "r1", "t1", "r")
	logged(store, "r2", "t1", "r")
	s := service(store)
	if _, err := s.Learn(ctx, "t1", &Feedback{ResponseID: "r1", Rating: json.RawMessage(`1`), FeedbackID: new(ArmKey("r2"))}); err != nil {
		t.Fatal(err)
	}
	if first, _ := store.FirstFeedback(ctx, "t1", ArmKey("r2"), time.Hour); !first {
		t.Error("a client's feedback_id took the id under which r2 counts for its arm")
	}
	_, err := service(contended{store}).Learn(ctx, "t1", &Feedback{ResponseID: "r2", Rating: json.RawMessage(`1`), FeedbackID: new("f2")})
	if !errors.Is(err, fault.ErrOverloaded) {
		t.Fatalf("contended update: %v, want a 503 to retry", err)
	}
	got, err := s.Learn(ctx, "t1", &Feedback{ResponseID: "r2", Rating: json.RawMessage(`1`), FeedbackID: new("f2")})
	if err != nil || got.Duplicate || !got.Learned || got.Updates != 2 {
		t.Errorf("the retry of feedback that was not stored: %+v (%v)", got, err)
	}
	if got, err := s.Learn(ctx, "t1", &Feedback{ResponseID: "r2", Rating: json.RawMessage(`1`), FeedbackID: new("f2")}); err != nil || !got.Duplicate {
		t.Errorf("a repeat of stored feedback: %+v (%v)", got, err)
	}
	// A retry while the first is still being stored is neither: try again.
	now := time.Now()
	store.now = func() time.Time { return now }
	if c, _ := store.ClaimFeedback(ctx, "t1", "client:f3"); c != ClaimFirst {
		t.Fatalf("claim %v", c)
	}
	_, err = s.Learn(ctx, "t1", &Feedback{ResponseID: "r2", Rating: json.RawMessage(`1`), FeedbackID: new("f3")})
	if !errors.Is(err, fault.ErrOverloaded) || fault.Param(err) != "feedback_id" {
		t.Errorf("a retry racing the first: %v", err)
	}
	// A claim whose replica died frees its id after ClaimTTL.
	now = now.Add(ClaimTTL)
	if got, err := s.Learn(ctx, "t1", &Feedback{ResponseID: "r2", Rating: json.RawMessage(`1`), FeedbackID: new("f3")}); err != nil || !got.Learned {
		t.Errorf("after a stale claim: %+v (%v)", got, err)
	}
}

// The memory store keeps a response for the log's TTL, as Redis does.
func TestMemoryResponsesExpire(t *testing.T) {
	store := NewMemory(10, 10)
	now := time.Unix(1000, 0)
	store.now = func() time.Time { return now }
	ctx := context.Background()
	_ = store.LogResponse(ctx, &Response{ID: "x", Tenant: "t", User: "u"}, time.Minute)
	_ = store.LogResponse(ctx, &Response{ID: "kept", Tenant: "t", User: "u"}, 0)
	now = now.Add(59 * time.Second)
	if r, _ := store.Response(ctx, "x"); r == nil {
		t.Fatal("a response is gone before its TTL")
	}
	now = now.Add(time.Second)
	if r, _ := store.Response(ctx, "x"); r != nil {
		t.Error("a response outlived its TTL")
	}
	if r, _ := store.Response(ctx, "kept"); r == nil {
		t.Error("a response logged without a TTL expired")
	}
}

// Two answers in one arm (a user's, under unit user): a choice between
// them says nothing of the arm, and counts for none.
func TestChoiceWithinOneArmCountsForNone(t *testing.T) {
	store := NewMemory(10, 10)
	ctx := context.Background()
	for _, id := range []string{"a", "b"} {
		logged(store, id, "t1", "r")
		r, _ := store.Response(ctx, id)
		r.Experiment, r.Arm = "x", "best"
		_ = store.LogResponse(ctx, r, time.Hour)
	}
	got, err := service(store).Learn(ctx, "t1", &Feedback{ChosenID: "a", RejectedID: "b"})
	if err != nil || len(got.Arms) != 0 || !got.Learned {
		t.Errorf("a choice within one arm: %+v (%v)", got, err)
	}
}

func TestPutChecks(t *testing.T) {
	s := service(NewMemory(10, 10))
	ctx := context.Background()
	for _, c := range []struct {
		w     map[string]float64
		param string
	}{
		{map[string]float64{"zzz": 1}, "weights.zzz"},
		{map[string]float64{"a": 11}, "weights.a"},
		{map[string]float64{"a": math.Inf(1)}, "weights.a"},
		{nil, "weights"},
	} {
		if _, _, err := s.Put(ctx, "t", "u", "", &Preferences{Weights: c.w}); fault.Param(err) != c.param {
			t.Errorf("%v: %v, want a 400 naming %s", c.w, err, c.param)
		}
	}
	if _, _, err := s.Put(ctx, "t", "u", "nope", &Preferences{Weights: map[string]float64{"a": 1}}); fault.Param(err) != "reward" {
		t.Errorf("unknown reward: %v", err)
	}
	p, name, err := s.Put(ctx, "t", "u", "", &Preferences{Weights: map[string]float64{"a": -2}, Normalize: true})
	if err != nil || name != "r" || p.Weights["a"] != -2 {
		t.Errorf("put %+v %s %v", p, name, err)
	}
	if _, err := Scope(Identity{Tenant: "t", Role: RoleUser}, "other"); !errors.Is(err, fault.ErrForbidden) {
		t.Errorf("a user key on another tenant: %v", err)
	}
	if tenant, err := Scope(Identity{Tenant: "t", Role: RoleAdmin}, "other"); err != nil || tenant != "other" {
		t.Errorf("an admin key on another tenant: %s %v", tenant, err)
	}
}

func TestKeys(t *testing.T) {
	k := NewKeys(map[string]Identity{Hash("sk-a"): {Name: "a", Tenant: "ta", Role: RoleUser}}, nil)
	ctx := context.Background()
	for _, h := range []string{"Bearer sk-a", "bearer sk-a", "BEARER  sk-a "} { // the scheme in any case (RFC 9110)
		if id, err := k.Identify(ctx, h); err != nil || id.Tenant != "ta" || id.Class != "config" {
			t.Errorf("%q: %+v %v", h, id, err)
		}
	}
	for _, h := range []string{"", "Bearer ", "Bearer sk-b", "sk-a", "Basic sk-a"} {
		if _, err := k.Identify(ctx, h); !errors.Is(err, fault.ErrUnauthorized) {
			t.Errorf("%q: %v", h, err)
		}
	}
	open := NewKeys(nil, nil)
	if id, err := open.Identify(ctx, ""); err != nil || id.Tenant != LocalTenant || !id.Admin() || id.Class != "local" {
		t.Errorf("open: %+v %v", id, err)
	}
	if h := Hash("abc"); h != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Errorf("Hash(abc) = %s, not its SHA-256", h)
	}
}

func TestMemoryIsBounded(t *testing.T) {
	m := NewMemory(2, 2)
	ctx := context.Background()
	for _, u := range []string{"u1", "u2", "u3"} {
		_ = m.Put(ctx, "t", u, "r", &Preferences{Weights: map[string]float64{"a": 1}})
	}
	if p, _ := m.Get(ctx, "t", "u1", "r"); p != nil {
		t.Error("the least recently used user was kept past the bound")
	}
	if p, _ := m.Get(ctx, "t", "u3", "r"); p == nil {
		t.Error("the newest user was dropped")
	}
}
