package prefs

import (
	"container/list"
	"context"
	"maps"
	"sync"
	"time"
)

// Preferences are one user's weights over a reward's objectives.
type Preferences struct {
	Weights map[string]float64 `json:"weights"`
	// Normalize scales the weights to unit length when they apply: the
	// user is a direction in objective space, whatever its length.
	Normalize bool `json:"normalize"`
	// Updates counts the feedback events learned from.
	Updates int `json:"updates"`
	// GradSq is the learner's per-objective sum of squared gradients,
	// which sets its step sizes; an explicit write of the weights resets
	// it.
	GradSq map[string]float64 `json:"grad_sq,omitempty"`
}

// Response is a steered response as feedback refers to it.
type Response struct {
	ID         string             `json:"id"`
	Tenant     string             `json:"tenant"`
	User       string             `json:"user"`
	Route      string             `json:"route"`
	Reward     string             `json:"reward"`
	Strategy   string             `json:"strategy"`
	Arm        string             `json:"arm,omitempty"`
	Experiment string             `json:"experiment,omitempty"`
	Weights    map[string]float64 `json:"weights"`    // the weights it was chosen with
	Route0     map[string]float64 `json:"route_w"`    // the route's weights, the learner's anchor
	Objectives []string           `json:"objectives"` // the order of the vectors
	Chosen     int                `json:"chosen"`     // index into Candidates
	Candidates []Candidate        `json:"candidates"`
	Created    int64              `json:"created"`
	// Tokens are the backend tokens the response spent (0 for a cache
	// hit), kept beside a feedback outcome on it in an experiment.
	Tokens int `json:"tokens,omitempty"`
}

// Candidate is one candidate's objective vector.
type Candidate struct {
	Index  int       `json:"index"`
	Vector []float64 `json:"v"`
}

// Store keeps preferences (durably: never evicted for space in Redis),
// the response log (for a bounded time) and which feedback ids were seen.
type Store interface {
	Get(ctx context.Context, tenant, user, reward string) (*Preferences, error) // nil when none
	Put(ctx context.Context, tenant, user, reward string, p *Preferences) error
	Delete(ctx context.Context, tenant, user, reward string) (bool, error)
	// Update applies fn to the stored preferences (nil when none) and
	// stores the result, atomically across replicas.
	Update(ctx context.Context, tenant, user, reward string, fn func(*Preferences) (*Preferences, error)) (*Preferences, error)
	LogResponse(ctx context.Context, r *Response, ttl time.Duration) error
	Response(ctx context.Context, id string) (*Response, error) // nil when unknown or expired
	// FirstFeedback records a feedback id; false when it was seen before.
	FirstFeedback(ctx context.Context, tenant, id string, ttl time.Duration) (bool, error)
	// ClaimFeedback records a feedback id as being stored, for at most
	// ClaimTTL: what it finds tells a first from a repeat, and a repeat
	// of feedback that is still being stored from one that was.
	ClaimFeedback(ctx context.Context, tenant, id string) (Claim, error)
	// SettleFeedback marks a claimed id's feedback stored, for ttl.
	SettleFeedback(ctx context.Context, tenant, id string, ttl time.Duration) error
	// ForgetFeedback removes a feedback id whose feedback could not be
	// stored after all, so that it may be sent again.
	ForgetFeedback(ctx context.Context, tenant, id string) error
}

// Claim is what claiming a feedback id found.
type Claim int

const (
	ClaimFirst   Claim = iota // the id is new: this feedback is the one
	ClaimStored               // its feedback was stored before: a repeat
	ClaimPending              // its feedback is being stored now (a retry racing the first)
)

// ClaimTTL bounds how long a claim holds its id unsettled: a replica that
// dies while storing feedback frees the id after it.
const ClaimTTL = time.Minute

// Memory is a Store in process memory: bounded (the least recently used
// users and responses go first) and lost on restart.
type Memory struct {
	mu        sync.Mutex
	prefs     *lru[*Preferences]
	responses *lru[loggedResponse]
	feedback  *lru[feedbackMark]
	now       func() time.Time
}

// loggedResponse is a response in the log, until it expires.
type loggedResponse struct {
	r       *Response
	expires time.Time
}

// NewMemory keeps at most maxUsers users' preferences and maxResponses
// responses (and as many feedback ids).
func NewMemory(maxUsers, maxResponses int) *Memory {
	return &Memory{prefs: newLRU[*Preferences](maxUsers), responses: newLRU[loggedResponse](maxResponses),
		feedback: newLRU[feedbackMark](maxResponses), now: time.Now}
}

func prefKey(tenant, user, reward string) string { return tenant + "\x00" + user + "\x00" + reward }

func (m *Memory) Get(_ context.Context, tenant, user, reward string) (*Preferences, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, ok := m.prefs.get(prefKey(tenant, user, reward))
	if !ok {
		return nil, nil
	}
	return clonePrefs(p), nil
}

func (m *Memory) Put(_ context.Context, tenant, user, reward string, p *Preferences) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.prefs.put(prefKey(tenant, user, reward), clonePrefs(p))
	return nil
}

func (m *Memory) Delete(_ context.Context, tenant, user, reward string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.prefs.del(prefKey(tenant, user, reward)), nil
}

func (m *Memory) Update(_ context.Context, tenant, user, reward string, fn func(*Preferences) (*Preferences, error)) (*Preferences, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := prefKey(tenant, user, reward)
	cur, _ := m.prefs.get(k)
	next, err := fn(clonePrefs(cur))
	if err != nil {
		return nil, err
	}
	m.prefs.put(k, clonePrefs(next))
	return next, nil
}

func (m *Memory) LogResponse(_ context.Context, r *Response, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := *r
	l := loggedResponse{r: &c}
	if ttl > 0 { // as Redis's SET: 0 keeps it
		l.expires = m.now().Add(ttl)
	}
	m.responses.put(r.ID, l)
	return nil
}

func (m *Memory) Response(_ context.Context, id string) (*Response, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l, ok := m.responses.get(id)
	if !ok {
		return nil, nil
	}
	if !l.expires.IsZero() && !m.now().Before(l.expires) {
		m.responses.del(id)
		return nil, nil
	}
	c := *l.r
	return &c, nil
}

// feedbackMark is a feedback id seen: until when it holds, and whether
// its feedback is still being stored.
type feedbackMark struct {
	until   time.Time
	pending bool
}

// mark is k's live mark, if it has one.
func (m *Memory) mark(k string) (feedbackMark, bool) {
	f, ok := m.feedback.get(k)
	return f, ok && m.now().Before(f.until)
}

func (m *Memory) FirstFeedback(_ context.Context, tenant, id string, ttl time.Duration) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := tenant + "\x00" + id
	if _, ok := m.mark(k); ok {
		return false, nil
	}
	m.feedback.put(k, feedbackMark{until: m.now().Add(ttl)})
	return true, nil
}

func (m *Memory) ClaimFeedback(_ context.Context, tenant, id string) (Claim, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := tenant + "\x00" + id
	if f, ok := m.mark(k); ok {
		if f.pending {
			return ClaimPending, nil
		}
		return ClaimStored, nil
	}
	m.feedback.put(k, feedbackMark{until: m.now().Add(ClaimTTL), pending: true})
	return ClaimFirst, nil
}

func (m *Memory) SettleFeedback(_ context.Context, tenant, id string, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.feedback.put(tenant+"\x00"+id, feedbackMark{until: m.now().Add(ttl)})
	return nil
}

func (m *Memory) ForgetFeedback(_ context.Context, tenant, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.feedback.del(tenant + "\x00" + id)
	return nil
}

func clonePrefs(p *Preferences) *Preferences {
	if p == nil {
		return nil
	}
	c := *p
	c.Weights = make(map[string]float64, len(p.Weights))
	maps.Copy(c.Weights, p.Weights)
	if p.GradSq != nil {
		c.GradSq = maps.Clone(p.GradSq)
	}
	return &c
}

// lru is a bounded map that drops its least recently used entry.
type lru[V any] struct {
	max   int
	order *list.List
	items map[string]*list.Element
}

type lruEntry[V any] struct {
	key string
	val V
}

func newLRU[V any](max int) *lru[V] {
	return &lru[V]{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (l *lru[V]) get(k string) (V, bool) {
	if e, ok := l.items[k]; ok {
		l.order.MoveToFront(e)
		return e.Value.(*lruEntry[V]).val, true
	}
	var zero V
	return zero, false
}

func (l *lru[V]) put(k string, v V) {
	if e, ok := l.items[k]; ok {
		e.Value.(*lruEntry[V]).val = v
		l.order.MoveToFront(e)
		return
	}
	l.items[k] = l.order.PushFront(&lruEntry[V]{key: k, val: v})
	for l.order.Len() > l.max {
		last := l.order.Back()
		l.order.Remove(last)
		delete(l.items, last.Value.(*lruEntry[V]).key)
	}
}

func (l *lru[V]) del(k string) bool {
	e, ok := l.items[k]
	if ok {
		l.order.Remove(e)
		delete(l.items, k)
	}
	return ok
}
