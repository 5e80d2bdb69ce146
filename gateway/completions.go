package gateway

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/experiment"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/prefs"
	"github.com/steergate/steergate/steering"
	"github.com/steergate/steergate/wire"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// request is a decoded and validated completion request.
type request struct {
	model        string
	backend      *backend.Request
	steering     json.RawMessage
	stream       bool
	includeUsage bool
	streamOther  string // a stream option besides include_usage: passthrough only
}

// format is what differs between chat and completions on the wire.
type format struct {
	idPrefix string
	object   string
	decode   func(body []byte, l wire.Limits) (*request, error)
	full     func(id, model string, created int64, g *backend.Generation, steer json.RawMessage) any
	// headless is full less its head, for the response cache to keep.
	headless func(g *backend.Generation, steer json.RawMessage) []byte
	chunk    func(id, model string, created int64, d backend.Delta, first bool, offset int) any
	usage    func(id, model string, created int64, g *backend.Generation, steer json.RawMessage) any
}

var chatFormat = format{
	idPrefix: "chatcmpl-",
	object:   wire.ObjectChat,
	decode: func(body []byte, l wire.Limits) (*request, error) {
		req, err := wire.DecodeChat(body)
		if err != nil {
			return nil, err
		}
		br, err := wire.ChatToBackend(req, l)
		if err != nil {
			return nil, err
		}
		return &request{model: req.Model, backend: br, steering: req.Steering, stream: req.Stream,
			includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage, streamOther: streamOther(req.StreamOptions)}, nil
	},
	full: chatFull,
	headless: func(g *backend.Generation, steer json.RawMessage) []byte {
		return headless(chatFull("", "", 0, g, steer))
	},
	chunk: func(id, model string, created int64, d backend.Delta, first bool, _ int) any {
		return wire.ChatChunkOf(id, model, created, d, first)
	},
	usage: func(id, model string, created int64, g *backend.Generation, steer json.RawMessage) any {
		c := wire.ChatUsageChunk(id, model, created, g)
		c.Steering = steer
		return c
	},
}

var completionFormat = format{
	idPrefix: "cmpl-",
	object:   wire.ObjectCompletion,
	decode: func(body []byte, l wire.Limits) (*request, error) {
		req, err := wire.DecodeCompletion(body)
		if err != nil {
			return nil, err
		}
		br, err := wire.CompletionToBackend(req, l)
		if err != nil {
			return nil, err
		}
		return &request{model: req.Model, backend: br, steering: req.Steering, stream: req.Stream,
			includeUsage: req.StreamOptions != nil && req.StreamOptions.IncludeUsage, streamOther: streamOther(req.StreamOptions)}, nil
	},
	full: completionFull,
	headless: func(g *backend.Generation, steer json.RawMessage) []byte {
		return headless(completionFull("", "", 0, g, steer))
	},
	chunk: func(id, model string, created int64, d backend.Delta, _ bool, offset int) any {
		return wire.CompletionChunkOf(id, model, created, d, offset)
	},
	usage: func(id, model string, created int64, g *backend.Generation, steer json.RawMessage) any {
		c := wire.CompletionUsageChunk(id, model, created, g)
		c.Steering = steer
		return c
	},
}

func chatFull(id, model string, created int64, g *backend.Generation, steer json.RawMessage) any {
	c := wire.Chat(id, model, created, g)
	c.Steering = steer
	return c
}

func completionFull(id, model string, created int64, g *backend.Generation, steer json.RawMessage) any {
	c := wire.CompletionOf(id, model, created, g)
	c.Steering = steer
	return c
}

// Label values for requests that never got as far as a route or a plan;
// every label comes from a closed set (configured routes, registered
// strategies), never from what a client sent.
const (
	labelNone    = "-"
	labelInvalid = "invalid"
)

// labels are what a completion request's metrics and access log carry;
// they are filled in as the request is understood.
type labels struct {
	route, strategy, arm, cache string
	streamed                    bool
	// For the live view: the name the client used, its tenant, and the
	// outcome when there is one.
	model, tenant string
	out           *steering.Outcome
}

// completion serves POST /v1/chat/completions and /v1/completions: admit,
// decode, route, plan, run, encode. Admission and the disconnect watch come
// before any work that grows with the body.
func (s *Server) completion(ctx *fasthttp.RequestCtx, reqID string, id prefs.Identity, f *format) {
	start := time.Now()
	l := &labels{route: labelNone, strategy: labelNone, tenant: id.Tenant} // a request that fails early is still its tenant's
	rctx, cancel := context.WithCancelCause(s.base)
	stopDeadline := s.clock.after(s.opts.RequestTimeout, func() { cancel(s.errDeadline) })
	rctx = deadlineCtx{rctx, start.Add(s.opts.RequestTimeout)}
	stopWatch := watchDisconnect(s.clock, ctx.Conn(), cancel)
	finish := sync.OnceFunc(func() { stopWatch(); stopDeadline(); cancel(nil) })
	handedOver := false // to the stream writer, which finishes the request
	defer func() {
		if !handedOver {
			finish()
		}
		s.observe(ctx, reqID, start, l)
	}()
	if err := s.adm.acquire(rctx); err != nil {
		s.fail(ctx, reqID, rctx, err)
		return
	}
	release := sync.OnceFunc(s.adm.release)
	defer func() {
		if !handedOver {
			release()
		}
	}()
	// The decode runs on this function's frame, not on the larger one of
	// the steps after it: a request's connection goroutine then keeps
	// within 8 KiB of stack (sendStream).
	if encoded(ctx) {
		s.fail(ctx, reqID, rctx, encodingErr(ctx.Request.Header.ContentEncoding()))
		return
	}
	req, err := f.decode(ctx.PostBody(), s.opts.Limits)
	if err != nil {
		s.fail(ctx, reqID, rctx, err)
		return
	}
	handedOver = s.answer(&exchange{ctx: ctx, reqID: reqID, id: id, f: f, start: start, l: l, rctx: rctx, cancel: cancel,
		stopWatch: stopWatch, finish: finish, release: release}, req)
}

// encoded reports whether the request's body comes compressed: read as
// it is, it would be refused as not JSON, which says nothing of why.
func encoded(ctx *fasthttp.RequestCtx) bool {
	enc := ctx.Request.Header.ContentEncoding()
	return len(enc) > 0 && !bytes.EqualFold(enc, []byte("identity"))
}

// encodingErr refuses a compressed body.
//
//go:noinline
func encodingErr(enc []byte) error {
	return fault.Unsupported("", "Content-Encoding %q is not supported: send the body uncompressed", fault.Clip(string(enc), 32))
}

// exchange is what the steps of a completion request after its decode
// share.
type exchange struct {
	ctx                        *fasthttp.RequestCtx
	reqID                      string
	id                         prefs.Identity
	f                          *format
	start                      time.Time
	l                          *labels
	rctx                       context.Context
	cancel                     context.CancelCauseFunc
	stopWatch, finish, release func()
}

// answer routes, plans and runs a decoded request, and answers it. It
// reports whether a stream took the request over (and with it finish and
// release).
func (s *Server) answer(x *exchange, req *request) bool {
	ctx, reqID, id, f, l, rctx := x.ctx, x.reqID, x.id, x.f, x.l, x.rctx
	l.model = fault.Clip(req.model, 256) // as sent, for the live view and the log: bounded
	rt, err := s.router.Resolve(req.model)
	if err != nil {
		s.fail(ctx, reqID, rctx, err)
		return false
	}
	l.route = rt.Name
	br := req.backend
	br.Model = rt.Target
	if err := rt.Backend.Caps().Check(br); err != nil {
		s.fail(ctx, reqID, rctx, err)
		return false
	}
	en, steer, err := s.enroll(rctx, id, req, rt, reqID)
	if err != nil {
		l.strategy = labelInvalid
		s.fail(ctx, reqID, rctx, err)
		return false
	}
	call := &steering.Call{Route: rt, Request: br, Steering: steer, Tenant: id.Tenant, Body: ctx.PostBody(), Encode: f.headless}
	if en != nil {
		call.Experiment, call.Arm, l.arm = en.Experiment.Name, en.Arm, en.Arm
		ctx.Response.Header.Set("X-Steering-Arm", en.Arm)
	}
	plan, err := s.engine.Plan(call)
	if err != nil {
		l.strategy = labelInvalid
		s.fail(ctx, reqID, rctx, err)
		return false
	}
	if err := s.userWeights(rctx, id.Tenant, br.User, plan); err != nil {
		s.fail(ctx, reqID, rctx, err)
		return false
	}
	l.strategy = plan.Name
	// An enrolled request goes through the engine even as passthrough, so
	// that its arm is told what it spent.
	if pe, ok := s.engine.(passthrougher); ok && en == nil && pe.Passthrough(call, plan) {
		if rp, ok := rt.Backend.(backend.RawProxy); ok && rp.RawOK(br) {
			return s.relay(x, rp, req)
		}
	}
	return s.generate(x, req, br, en, call, plan)
}

// streamOther is the first stream option besides include_usage.
func streamOther(o *wire.StreamOptions) string {
	if o == nil {
		return ""
	}
	return o.Other
}

// generate runs a request that the engine answers (steered, cached or
// enrolled), on a frame of its own: the relay, beside it, keeps to the
// smaller frame of answer (completion).
func (s *Server) generate(x *exchange, req *request, br *backend.Request, en *experiment.Enrollment, call *steering.Call, plan *steering.Plan) bool {
	ctx, reqID, id, f, start, l, rctx, cancel := x.ctx, x.reqID, x.id, x.f, x.start, x.l, x.rctx, x.cancel
	finish, release := x.finish, x.release
	if req.streamOther != "" {
		err := fault.Unsupported("stream_options."+fault.Clip(req.streamOther, 64),
			"this stream is written by the gateway (steered, cached, or from a backend that is not OpenAI-compatible), which serves stream_options.include_usage only; the others reach an OpenAI-compatible backend on the passthrough")
		s.fail(ctx, reqID, rctx, err)
		return false
	}
	respID, created := newID(f.idPrefix), time.Now().Unix()
	var cacheStatus atomic.Value
	call.CacheStatus = func(s string) { cacheStatus.Store(s) }
	if !req.stream {
		out, err := s.engine.Run(rctx, call, plan, nil)
		l.out = out
		s.recordRequest(en, respID, br, out, err != nil, time.Since(start))
		if err != nil {
			s.fail(ctx, reqID, rctx, err)
			return false
		}
		steer := s.steeringHeaders(ctx, reqID, out, l)
		if steer == nil {
			steer = enrolledReport(en)
		}
		if out.Cache != "" {
			ctx.Response.Header.Set("X-Cache", out.Cache)
			l.cache = out.Cache
		}
		if out.Encoded != nil {
			writeHeaded(ctx, respID, f.object, created, req.model, out.Encoded)
		} else {
			writeJSON(ctx, fasthttp.StatusOK, f.full(respID, req.model, created, out.Generation, steer))
		}
		s.logResponse(respID, id.Tenant, br.User, call.Route.Name, plan, out, en)
		return false
	}
	st := s.startStream(rctx, reqID, func(emit func(backend.Delta) error) (*steering.Outcome, error) {
		return s.engine.Run(rctx, call, plan, emit)
	})
	// Wait for the first delta so that an error before any output still
	// gets its own HTTP status.
	first, ok := <-st.events
	if !ok && st.err != nil {
		s.recordRequest(en, respID, br, nil, true, time.Since(start))
		s.fail(ctx, reqID, rctx, st.err)
		return false
	}
	ctx.Response.Header.Set("X-Steering-Strategy", plan.Name)
	if cs, ok := cacheStatus.Load().(string); ok {
		ctx.Response.Header.Set("X-Cache", cs) // told before the first delta was sent
		l.cache = cs
	}
	l.streamed = true
	streamStart, route, strategy, tenant, user := time.Now(), l.route, l.strategy, id.Tenant, br.User
	body := func(w *bufio.Writer) {
		defer release()
		defer finish()
		endStatus := fasthttp.StatusInternalServerError // till it is known
		defer func() { s.metrics.StreamEnd(route, strategy, endStatus, time.Since(streamStart)) }()
		sw := sseWriter{w: w, f: *f, id: respID, model: req.model, created: created, seen: map[int]int{}}
		var werr error
		if ok {
			werr = sw.delta(first)
		}
		for d := range st.events {
			if werr == nil {
				werr = sw.delta(d)
			}
			if werr != nil {
				cancel(errClientGone) // stop the backend; keep draining until it returns
			}
		}
		s.recordRequest(en, respID, br, st.out, werr != nil || st.err != nil, time.Since(start))
		status := s.streamStatus(rctx, werr, st.err)
		endStatus = status
		s.live.publish(s.event(reqID, l.model, l.tenant, status, l, st.out, time.Since(start)))
		if werr != nil {
			return
		}
		if st.err != nil {
			err := s.requestErr(rctx, st.err)
			s.log.Warn("stream failed after first byte", "request_id", reqID, "err", err)
			_, body := wire.ErrorOf(err)
			_ = sw.event(body)
			_ = sw.done()
			return
		}
		// Logged before the stream ends: a client may give feedback on the
		// response as soon as it has read [DONE].
		s.logResponse(respID, tenant, user, route, plan, st.out, en)
		if req.includeUsage {
			steer := s.report(st.out, reqID)
			if steer == nil {
				steer = enrolledReport(en)
			}
			_ = sw.event(f.usage(respID, req.model, created, st.out.Generation, steer))
		}
		_ = sw.done()
	}
	s.writeStream(ctx, body)
	return true
}

// streamStatus is the status a stream ended with, for the live view: the
// client gone (a failed write), the error that ended it, or 200.
func (s *Server) streamStatus(rctx context.Context, writeErr, err error) int {
	switch {
	case writeErr != nil:
		return wire.StatusClientClosed
	case err != nil:
		status, _ := wire.ErrorOf(s.requestErr(rctx, err))
		return status
	}
	return fasthttp.StatusOK
}

// headless encodes a response without the members each response has its
// own of (id, object, created, model), leading in that order: what the
// response cache keeps, for writeHeaded to send after a head of its own.
// It is nil where the encoding does not start so.
func headless(v any) []byte {
	m, ok := v.(json.Marshaler)
	if !ok {
		return nil
	}
	b, err := m.MarshalJSON()
	if err != nil {
		return nil
	}
	i, rest := 0, -1 // where the members after the head start
	err = wire.EachMember(b, func(m wire.Member) error {
		if i == len(head) {
			rest = m.Start
			return wire.ErrStop
		}
		if string(m.Key) != head[i] {
			return wire.ErrStop
		}
		i++
		return nil
	})
	switch {
	case err != nil || i < len(head):
		return nil
	case rest < 0:
		return []byte("{}")
	}
	return append([]byte{'{'}, b[rest:]...)
}

var head = [...]string{"id", "object", "created", "model"}

// writeHeaded writes a stored answer (headless's bytes) after its head.
func writeHeaded(ctx *fasthttp.RequestCtx, id, object string, created int64, model string, body []byte) {
	name, err := json.Marshal(model)
	if err != nil {
		writeError(ctx, fault.New(fault.ErrInternal, "", "encoding the response failed"))
		return
	}
	r := &ctx.Response
	r.SetStatusCode(fasthttp.StatusOK)
	r.Header.SetContentType("application/json")
	r.ResetBody()
	var num [20]byte
	r.AppendBodyString(`{"id":"`)
	r.AppendBodyString(id) // newID's: a prefix and hex digits, nothing to escape
	r.AppendBodyString(`","object":"`)
	r.AppendBodyString(object)
	r.AppendBodyString(`","created":`)
	r.AppendBody(strconv.AppendInt(num[:0], created, 10))
	r.AppendBodyString(`,"model":`)
	r.AppendBody(name)
	if len(body) > 2 {
		r.AppendBodyString(",")
	}
	r.AppendBody(body[1:])
}

// writeStream sends an event stream that body writes, each flush one
// write to the connection (handOff).
func (s *Server) writeStream(ctx *fasthttp.RequestCtx, body func(w *bufio.Writer)) {
	s.handOff(ctx, func(w io.Writer) error {
		bw := bufio.NewWriterSize(w, 4096)
		body(bw)
		return bw.Flush() // a write that failed fails it again
	})
}

// observe records a finished handler: its status and latency (for a
// stream, the time to its first byte; the stream records its own end), and
// a sampled access-log line.
func (s *Server) observe(ctx *fasthttp.RequestCtx, reqID string, start time.Time, l *labels) {
	status := ctx.Response.StatusCode()
	took := time.Since(start)
	s.metrics.Request(l.route, strconv.Itoa(status), l.strategy, l.arm, took, l.streamed)
	if !l.streamed { // a stream tells the live view when it ends
		s.live.publish(s.event(reqID, l.model, l.tenant, status, l, l.out, took))
	}
	if s.opts.AccessSample > 0 && rand.Float64() < s.opts.AccessSample {
		s.log.Info("access", "request_id", reqID, "path", string(ctx.Path()), "status", status, "route", l.route,
			"strategy", l.strategy, "arm", l.arm, "cache", l.cache, "stream", l.streamed, "duration_ms", float64(took.Microseconds())/1000)
	}
}

// steeringHeaders sets the steering headers and returns the response's
// "steering" object.
func (s *Server) steeringHeaders(ctx *fasthttp.RequestCtx, reqID string, out *steering.Outcome, l *labels) json.RawMessage {
	strategy := steering.None
	if out.Info != nil {
		strategy = out.Info.Strategy
		if out.Info.Arm != "" {
			ctx.Response.Header.Set("X-Steering-Arm", out.Info.Arm)
			l.arm = out.Info.Arm
		}
	}
	ctx.Response.Header.Set("X-Steering-Strategy", strategy)
	return s.report(out, reqID)
}

// enrolledReport is the steering object of an experiment's answer that
// has no report of its own: it still names the experiment and the arm.
// (The engine reports an unsteered arm's answers, with what they spent.)
func enrolledReport(en *experiment.Enrollment) json.RawMessage {
	if en == nil {
		return nil
	}
	b, _ := json.Marshal(steering.Info{Strategy: steering.None, Experiment: en.Experiment.Name, Arm: en.Arm, Candidates: []steering.Candidate{}})
	return b
}

// report is the response's "steering" object. One that does not encode
// (a non-finite number) is left out and logged, not served broken.
func (s *Server) report(out *steering.Outcome, reqID string) json.RawMessage {
	if out == nil {
		return nil
	}
	if out.Report != nil {
		return out.Report
	}
	if out.Info == nil {
		return nil
	}
	b, err := json.Marshal(out.Info)
	if err != nil {
		s.log.Error("steering report not encoded; answer sent without it", "request_id", reqID, "err", err)
		return nil
	}
	return b
}

// fail writes the error of a request that produced no output yet.
func (s *Server) fail(ctx *fasthttp.RequestCtx, reqID string, rctx context.Context, err error) {
	err = s.requestErr(rctx, err)
	status, _ := wire.ErrorOf(err)
	if status >= 500 {
		s.log.Warn("request failed", "request_id", reqID, "status", status, "err", err)
	}
	writeError(ctx, err)
}

// requestErr names why a request's work ended: a cancellation by its cause
// (the client leaving, the server shutting down), the request deadline as a
// timeout.
func (s *Server) requestErr(rctx context.Context, err error) error {
	if cause := context.Cause(rctx); cause != nil && errors.Is(err, context.Canceled) {
		err = cause
	}
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, fault.ErrTimeout) {
		err = s.errDeadline
	}
	return err
}

// stream runs a producer in its own goroutine and hands its deltas over a
// channel; out and err are set before events is closed.
type stream struct {
	events chan backend.Delta
	out    *steering.Outcome
	err    error
}

func (s *Server) startStream(ctx context.Context, reqID string, produce func(emit func(backend.Delta) error) (*steering.Outcome, error)) *stream {
	st := &stream{events: make(chan backend.Delta, 32)}
	go func() {
		defer close(st.events)
		defer func() {
			if p := recover(); p != nil {
				s.metrics.Panic()
				s.log.Error("panic serving a request", "request_id", reqID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				st.out, st.err = nil, fault.New(fault.ErrInternal, "", "internal error (request %s)", reqID)
			}
		}()
		st.out, st.err = produce(func(d backend.Delta) error {
			select {
			case st.events <- d:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		})
	}()
	return st
}

// sseWriter writes server-sent events.
type sseWriter struct {
	w       *bufio.Writer
	f       format
	id      string
	model   string
	created int64
	seen    map[int]int // choice index -> text written so far
}

func (s *sseWriter) delta(d backend.Delta) error {
	off, seen := s.seen[d.Index]
	s.seen[d.Index] = off + len(d.Text)
	return s.event(s.f.chunk(s.id, s.model, s.created, d, !seen, off))
}

func (s *sseWriter) event(v any) error { return wire.WriteEvent(s.w, v) }

func (s *sseWriter) done() error { return wire.WriteDone(s.w) }

// serveHTTP runs a net/http handler (the Prometheus one) on fasthttp.
func serveHTTP(ctx *fasthttp.RequestCtx, h http.Handler) {
	fasthttpadaptor.NewFastHTTPHandler(h)(ctx)
}
