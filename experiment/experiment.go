package experiment

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/wire"
)

// ErrStore is a failure of the shared store, not of the request.
var ErrStore = errors.New("experiment store unavailable")

// Arm is one arm of an experiment.
type Arm struct {
	Name     string
	Weight   float64
	Steering json.RawMessage // laid over the route's steering, under the request's
}

// Experiment is one configured A/B test.
type Experiment struct {
	Name    string
	Models  map[string]bool // public names, and route names covering their aliases
	Unit    string          // "user" or "request"
	Arms    []Arm
	Control string
	Outcome string // "feedback" or "reward"
	Reward  string // the evaluation reward, for outcome "reward"
	Share   float64
	Running bool
	// Thompson allocates new units by the posterior chance that each arm
	// is best, at least MinShare each.
	Thompson bool
	MinShare float64
	Alpha    float64
	MixingSD float64
}

// Units are what an experiment assigns.
const (
	UnitUser    = "user"
	UnitRequest = "request"
)

// UnitPoint maps an experiment, a tenant and a unit to [0, 1): the first 8
// bytes of SHA-256 over the three, as a fraction of 2⁶⁴. The same unit
// always lands on the same point.
func UnitPoint(experiment, tenant, unit string) float64 {
	h := sha256.New()
	for _, s := range []string{experiment, tenant, unit} {
		h.Write([]byte(s))
		h.Write([]byte{0})
	}
	return float64(binary.BigEndian.Uint64(h.Sum(nil))>>11) / (1 << 53)
}

// pick returns the arm whose share of the cumulative weights holds u.
func pick(u float64, weights []float64) int {
	var total float64
	for _, w := range weights {
		total += w
	}
	acc := 0.0
	for i, w := range weights {
		acc += w / total
		if u < acc {
			return i
		}
	}
	return len(weights) - 1
}

// Set is the configured experiments with their store.
type Set struct {
	exps  []*Experiment
	store Store

	mu      sync.Mutex
	shares  map[string][]float64 // Thompson allocations, by experiment
	updated map[string]time.Time
	rng     *rand.Rand
}

// NewSet returns the experiments recording into store.
func NewSet(exps []*Experiment, store Store) *Set {
	return &Set{exps: exps, store: store, shares: map[string][]float64{}, updated: map[string]time.Time{},
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

// Experiments lists them in config order.
func (s *Set) Experiments() []*Experiment {
	if s == nil {
		return nil
	}
	return s.exps
}

// Get finds one by name.
func (s *Set) Get(name string) *Experiment {
	for _, e := range s.Experiments() {
		if e.Name == name {
			return e
		}
	}
	return nil
}

// Enrollment is a request's place in an experiment.
type Enrollment struct {
	Experiment *Experiment
	Arm        string
	Forced     bool
	// Unit is the user assigned, under unit user, as its outcomes are
	// recorded (Observation.Unit); "" under unit request, where each
	// request gives one outcome at most.
	Unit string
}

// UnitOf names a user of a tenant as the unit of its outcomes.
func UnitOf(tenant, user string) string { return tenant + "\x00" + user }

// Request is what enrollment looks at.
type Request struct {
	Model, Route string // the name the client used, and its route
	Tenant       string
	User         string
	RequestID    string
	Admin        bool            // the key may force an arm
	Steering     json.RawMessage // the request's steering object
}

// Enroll finds the running experiment covering the request and the arm
// of its unit, and returns the steering to resolve: the arm's with the
// request's weights and cache laid over it. A request that sets any other
// steering key (a strategy, or a parameter), or a user experiment's
// request without a user, is not enrolled (nil). A forced arm
// (steering.arm) needs an admin key and a model in an experiment. A nil
// Set has no experiments.
func (s *Set) Enroll(ctx context.Context, r Request) (*Enrollment, json.RawMessage, error) {
	if s.covering(r.Model, r.Route) == nil && !namesArm(r.Steering) {
		return nil, r.Steering, nil // what the rest would conclude, without decoding
	}
	var req map[string]json.RawMessage
	if len(r.Steering) > 0 && string(r.Steering) != "null" {
		if err := json.Unmarshal(r.Steering, &req); err != nil || repeats(r.Steering, true) || repeats(req["weights"], false) || repeats(req["cache"], true) {
			return nil, r.Steering, nil // the resolver names what is wrong
		}
		wire.DropNulls(req) // not given, as the resolver reads them
	}
	var forced string
	if raw, ok := req["arm"]; ok {
		if err := json.Unmarshal(raw, &forced); err != nil || forced == "" {
			return nil, nil, fault.Invalid("steering.arm", "arm must name an arm of the model's experiment")
		}
		if !r.Admin {
			return nil, nil, fault.New(fault.ErrForbidden, "steering.arm", "only an admin key may force an experiment arm")
		}
	}
	e := s.covering(r.Model, r.Route)
	if forced != "" {
		if e == nil {
			return nil, nil, fault.Invalid("steering.arm", "model %q is in no running experiment", fault.Clip(r.Model, 64))
		}
		arm := e.Arm(forced)
		if arm == nil {
			return nil, nil, fault.Invalid("steering.arm", "experiment %s has no arm %q (it has %v)", e.Name, fault.Clip(forced, 64), e.armNames())
		}
		if _, ok := req["strategy"]; ok {
			return nil, nil, fault.Invalid("steering.strategy", "a forced arm brings its own strategy; leave strategy out, or leave arm out to steer outside the experiment")
		}
		delete(req, "arm")
		if key := ownKey(req); key != "" {
			return nil, nil, fault.Invalid("steering."+key, "a forced arm brings its own steering, and only weights and cache are laid over it; leave %s out", fault.Clip(key, 64))
		}
		return &Enrollment{Experiment: e, Arm: arm.Name, Forced: true}, merge(arm.Steering, req), nil
	}
	if e == nil {
		return nil, r.Steering, nil
	}
	if ownKey(req) != "" {
		return nil, r.Steering, nil // the request steers itself
	}
	unit := r.RequestID
	if e.Unit == UnitUser {
		if r.User == "" {
			return nil, r.Steering, nil
		}
		unit = r.User
	}
	arm, err := s.assign(ctx, e, r.Tenant, unit)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrStore, err)
	}
	en := &Enrollment{Experiment: e, Arm: arm.Name}
	if e.Unit == UnitUser {
		en.Unit = UnitOf(r.Tenant, r.User)
	}
	return en, merge(arm.Steering, req), nil
}

// assign places a unit: by its point against the arms' weights, or, under
// Thompson allocation, by the current shares for a unit seen first now
// and by its stored arm after that.
func (s *Set) assign(ctx context.Context, e *Experiment, tenant, unit string) (*Arm, error) {
	u := UnitPoint(e.Name, tenant, unit)
	if !e.Thompson {
		return &e.Arms[pick(u, e.weights())], nil
	}
	shares, err := s.thompsonShares(ctx, e)
	if err != nil {
		return nil, err
	}
	name, err := s.store.Sticky(ctx, e.Name, tenant, unit, e.Arms[pick(u, shares)].Name, 90*24*time.Hour)
	if err != nil {
		return nil, err
	}
	if a := e.Arm(name); a != nil {
		return a, nil
	}
	return &e.Arms[pick(u, e.weights())], nil // an arm since removed from the config
}

// thompsonShares are refreshed from the totals at most every few seconds.
func (s *Set) thompsonShares(ctx context.Context, e *Experiment) ([]float64, error) {
	s.mu.Lock()
	if sh, ok := s.shares[e.Name]; ok && time.Since(s.updated[e.Name]) < 5*time.Second {
		s.mu.Unlock()
		return sh, nil
	}
	s.mu.Unlock()
	totals, err := s.store.Totals(ctx, e.Name, e.armNames(), false)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sh := thompson(e, totals, s.rng, 2000)
	s.shares[e.Name], s.updated[e.Name] = sh, time.Now()
	return sh, nil
}

func (e *Experiment) covering(model, route string) bool {
	return e.Running && (e.Models[model] || e.Models[route])
}

func (s *Set) covering(model, route string) *Experiment {
	for _, e := range s.Experiments() {
		if e.covering(model, route) {
			return e
		}
	}
	return nil
}

// namesArm reports whether steering may force an arm: an object with an
// arm member, or anything EachMember cannot read, which Enroll decodes.
func namesArm(steering json.RawMessage) bool {
	if len(steering) == 0 || string(steering) == "null" {
		return false
	}
	found := false
	err := wire.EachMember(steering, func(m wire.Member) error {
		name, err := m.Name()
		if err != nil || string(name) == "arm" {
			found = true
			return wire.ErrStop
		}
		return nil
	})
	return found || err != nil
}

// Arm finds an arm by name.
func (e *Experiment) Arm(name string) *Arm {
	for i := range e.Arms {
		if e.Arms[i].Name == name {
			return &e.Arms[i]
		}
	}
	return nil
}

func (e *Experiment) armNames() []string {
	out := make([]string, len(e.Arms))
	for i, a := range e.Arms {
		out[i] = a.Name
	}
	return out
}

func (e *Experiment) weights() []float64 {
	out := make([]float64, len(e.Arms))
	for i, a := range e.Arms {
		out[i] = a.Weight
	}
	return out
}

// ownKey is the first key of a request's steering object other than
// weights and cache: a strategy, or a parameter (a reward, n) that would
// change what the arm does. "" when there is none.
func ownKey(req map[string]json.RawMessage) string {
	for _, k := range slices.Sorted(maps.Keys(req)) {
		if k != "weights" && k != "cache" {
			return k
		}
	}
	return ""
}

// merge lays the request's steering keys over the arm's: weights and cache
// key by key, as a request's lay over its route's.
func merge(arm json.RawMessage, req map[string]json.RawMessage) json.RawMessage {
	m := map[string]json.RawMessage{}
	if len(arm) > 0 {
		_ = json.Unmarshal(arm, &m)
	}
	for k, v := range req {
		if old, ok := m[k]; ok && (k == "weights" || k == "cache") {
			v = wire.MergeObjects(old, v)
		}
		m[k] = v
	}
	if len(m) == 0 {
		return nil
	}
	b, _ := json.Marshal(m)
	return b
}

// repeats reports whether the JSON object raw gives a key twice, in any
// letter case (decoded into a map, the last would win unseen), or, with
// lower, a key not in lower case (laid over the arm's, it would sit beside
// the arm's own and be named as a repeat of a key the client did not
// write).
func repeats(raw json.RawMessage, lower bool) bool {
	m, err := wire.Object(raw, "steering")
	if err != nil {
		return true
	}
	for k := range m {
		if lower && k != strings.ToLower(k) {
			return true
		}
	}
	return false
}

// String names an enrollment for logs.
func (en *Enrollment) String() string {
	if en == nil {
		return ""
	}
	return fmt.Sprintf("%s/%s", en.Experiment.Name, en.Arm)
}

// Results reads an experiment's totals and summarizes them.
func (s *Set) Results(ctx context.Context, e *Experiment) (*Report, error) {
	totals, err := s.store.Totals(ctx, e.Name, e.armNames(), true)
	if err != nil {
		return nil, err
	}
	shares := e.weights()
	if e.Thompson {
		if shares, err = s.thompsonShares(ctx, e); err != nil {
			return nil, err
		}
	}
	return Summarize(e, totals, shares), nil
}

// Record adds an observation to an enrolled request's arm.
func (s *Set) Record(ctx context.Context, en *Enrollment, o Observation) error {
	if s == nil || en == nil {
		return nil
	}
	return s.store.Record(ctx, en.Experiment.Name, en.Arm, o)
}

// Evaluated reports whether a response's final answer is scored for an
// outcome-reward experiment: a share of responses, by their id's point.
func (en *Enrollment) Evaluated(responseID string) bool {
	e := en.Experiment
	return e.Outcome == "reward" && UnitPoint(e.Name, "evaluate", responseID) < e.Share
}
