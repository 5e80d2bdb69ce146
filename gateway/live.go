package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/prefs"
	"github.com/steergate/steergate/steering"
	"github.com/valyala/fasthttp"
)

// liveEvent is one finished request as the dashboard's live view shows
// it: no prompt or answer text, only what steering did and what it cost.
type liveEvent struct {
	tenant     string
	info       *steering.Info       // read by resolve, when a view sends the event
	report     json.RawMessage      // a cached answer's report, encoded
	Time       int64                `json:"time"` // Unix milliseconds
	RequestID  string               `json:"request_id"`
	Model      string               `json:"model"`
	Route      string               `json:"route"`
	Status     int                  `json:"status"`
	Strategy   string               `json:"strategy"`
	Experiment string               `json:"experiment,omitempty"`
	Arm        string               `json:"arm,omitempty"`
	LatencyMS  float64              `json:"latency_ms"`
	Tokens     int                  `json:"tokens"`
	Samples    int                  `json:"samples"`
	Cache      string               `json:"cache,omitempty"`
	Stream     bool                 `json:"stream"`
	Candidates []steering.Candidate `json:"candidates,omitempty"` // the chosen one and the runner-up
}

// live keeps the latest events and hands new ones to the open live views,
// each through a small buffer: a view too slow to keep up loses events,
// never slows a request.
type live struct {
	mu     sync.Mutex
	ring   []liveEvent
	next   int
	subs   map[chan liveEvent]string // the view's tenant
	closed chan struct{}             // closed when the server drains: views end
}

const (
	liveKeep      = 200 // events a new view starts with
	liveSubs      = 16  // views open at once
	liveSubsOfOne = 4   // of them, for one tenant: no tenant takes every view
)

func newLive() *live {
	return &live{subs: map[chan liveEvent]string{}, closed: make(chan struct{})}
}

func (l *live) publish(ev liveEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ring) < liveKeep {
		l.ring = append(l.ring, ev)
	} else {
		l.ring[l.next] = ev
		l.next = (l.next + 1) % liveKeep
	}
	for c := range l.subs {
		select {
		case c <- ev:
		default:
		}
	}
}

// subscribe returns the kept events, oldest first, and a channel of new
// ones; ok is false when too many views are open, in all or for tenant.
func (l *live) subscribe(tenant string) ([]liveEvent, chan liveEvent, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	mine := 0
	for _, t := range l.subs {
		if t == tenant {
			mine++
		}
	}
	if len(l.subs) >= liveSubs || mine >= liveSubsOfOne {
		return nil, nil, false
	}
	past := append(append([]liveEvent(nil), l.ring[l.next:]...), l.ring[:l.next]...)
	c := make(chan liveEvent, 64)
	l.subs[c] = tenant
	return past, c, true
}

func (l *live) unsubscribe(c chan liveEvent) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.subs, c)
}

// event describes a finished request for the live view. What steering
// did is read from its report only when a view sends the event: most
// requests are never watched, and a cached report would have to be
// decoded.
func (s *Server) event(reqID, model, tenant string, status int, l *labels, out *steering.Outcome, took time.Duration) liveEvent {
	ev := liveEvent{tenant: tenant, Time: time.Now().UnixMilli(), RequestID: reqID, Model: model, Route: l.route, Status: status,
		Strategy: l.strategy, Arm: l.arm, LatencyMS: float64(took.Microseconds()) / 1000, Cache: l.cache, Stream: l.streamed}
	if out == nil {
		return ev
	}
	if out.Generation != nil {
		ev.Tokens = out.Generation.Usage.PromptTokens + out.Generation.Usage.CompletionTokens
	}
	ev.info, ev.report = out.Info, out.Report
	return ev
}

// resolve fills in what the report says: the experiment, the samples, and
// the chosen and runner-up candidates.
func (ev *liveEvent) resolve() {
	info := ev.info
	if ev.report != nil {
		var full steering.Info
		if json.Unmarshal(ev.report, &full) == nil {
			info = &full
		}
	}
	ev.info, ev.report = nil, nil
	if info == nil {
		return
	}
	ev.Experiment, ev.Samples = info.Experiment, info.SamplesUsed
	var chosen, runner *steering.Candidate
	for i := range info.Candidates {
		c := &info.Candidates[i]
		switch {
		case c.Chosen && chosen == nil:
			chosen = c
		case !c.Chosen && c.Utility.Finite() && (runner == nil || c.Utility > runner.Utility):
			runner = c
		}
	}
	for _, c := range []*steering.Candidate{chosen, runner} {
		if c != nil {
			cc := *c
			cc.Extra, cc.RewardDetail = nil, nil
			ev.Candidates = append(ev.Candidates, cc)
		}
	}
}

// liveWriteWait is how long a view may take to read one event before it
// is dropped.
const liveWriteWait = 30 * time.Second

// liveView serves GET /ui/api/live: server-sent events of finished
// requests, the kept ones first; a user key sees its own tenant's.
func (s *Server) liveView(ctx *fasthttp.RequestCtx, id prefs.Identity) {
	past, c, ok := s.live.subscribe(id.Tenant)
	if !ok {
		ctx.Response.Header.Set("Retry-After", "5")
		writeError(ctx, fault.New(fault.ErrOverloaded, "", "too many live views are open"))
		return
	}
	ctx.SetContentType("text/event-stream")
	// A view lasts as long as it is read: each write has a deadline of its
	// own, not the one a request's stream has for all of it.
	conn := ctx.Conn()
	send := func(w *bufio.Writer, ev liveEvent) error {
		if !id.Admin() && ev.tenant != id.Tenant {
			return nil
		}
		_ = conn.SetWriteDeadline(time.Now().Add(liveWriteWait))
		ev.resolve()
		b, _ := json.Marshal(ev)
		w.WriteString("data: ")
		w.Write(b)
		w.WriteString("\n\n")
		return w.Flush()
	}
	// A view that goes away frees its slot at once, not at the next write.
	vctx, cancel := context.WithCancelCause(s.base)
	stopWatch := watchDisconnect(s.clock, ctx.Conn(), cancel)
	s.writeStream(ctx, func(w *bufio.Writer) {
		defer s.live.unsubscribe(c)
		defer cancel(nil)
		defer stopWatch()
		// A comment first: the response's head goes out with the first
		// write, and a view may have nothing to show yet.
		if _, err := w.WriteString(": live\n\n"); err != nil || w.Flush() != nil {
			return
		}
		for _, ev := range past {
			if send(w, ev) != nil {
				return
			}
		}
		beat := time.NewTicker(15 * time.Second)
		defer beat.Stop()
		for {
			select {
			case ev := <-c:
				if send(w, ev) != nil {
					return
				}
			case <-beat.C: // a comment: finds a client that went away
				_ = conn.SetWriteDeadline(time.Now().Add(liveWriteWait))
				if _, err := w.WriteString(": keep-alive\n\n"); err != nil || w.Flush() != nil {
					return
				}
			case <-s.live.closed:
				return
			case <-vctx.Done():
				return
			}
		}
	})
}
