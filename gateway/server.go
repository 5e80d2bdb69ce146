package gateway

import (
	"bufio"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/gateway/openai"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/steering"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
)

// Engine runs one request on its route: passthrough or a steering
// strategy. emit is nil for non-streaming requests.
type Engine interface {
	Run(ctx context.Context, c *steering.Call, emit func(backend.Delta) error) (*steering.Outcome, error)
	// Strategy names the strategy a call will run, for the headers of a
	// stream, which go out before it has run.
	Strategy(c *steering.Call) string
}

// Options configure the server.
type Options struct {
	Listen          string
	RequestTimeout  time.Duration // per-request deadline
	MaxBodyBytes    int
	MaxInflight     int
	MaxQueue        int
	QueueTimeout    time.Duration
	ReadTimeout     time.Duration
	IdleTimeout     time.Duration
	ShutdownTimeout time.Duration
	Limits          openai.Limits
	AccessSample    float64 // share of requests written to the access log
}

// Server is the HTTP gateway.
type Server struct {
	opts     Options
	router   *backend.Router
	engine   Engine
	log      *slog.Logger
	adm      *admission
	srv      *fasthttp.Server
	draining atomic.Bool
	ready    func(context.Context) error
}

// New returns a server; ready reports whether the backends can serve (nil:
// always ready).
func New(opts Options, router *backend.Router, engine Engine, log *slog.Logger, ready func(context.Context) error) *Server {
	if engine == nil {
		engine = steering.NewEngine(nil, nil, "", steering.Limits{MaxSamples: 16})
	}
	s := &Server{opts: opts, router: router, engine: engine, log: log, ready: ready,
		adm: newAdmission(opts.MaxInflight, opts.MaxQueue, opts.QueueTimeout)}
	s.srv = &fasthttp.Server{
		Handler:            s.handle,
		ErrorHandler:       s.parseError,
		Name:               "steergate",
		Logger:             fasthttpLogger{log},
		MaxRequestBodySize: opts.MaxBodyBytes,
		ReadTimeout:        opts.ReadTimeout,
		// Streams last as long as the request may; the deadline is ours.
		WriteTimeout:                 opts.RequestTimeout + 10*time.Second,
		IdleTimeout:                  opts.IdleTimeout,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
	}
	return s
}

// Serve accepts connections on ln until ctx is cancelled, then stops
// accepting, lets in-flight requests finish (up to ShutdownTimeout) and
// returns.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	s.log.Info("draining in-flight requests", "inflight", s.adm.inflight())
	sctx, cancel := context.WithTimeout(context.Background(), s.opts.ShutdownTimeout)
	defer cancel()
	if err := s.srv.ShutdownWithContext(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return <-errc
}

func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	s.setRequestID(ctx)
	if errors.Is(err, fasthttp.ErrBodyTooLarge) {
		writeError(ctx, &backend.ParamError{Msg: fmt.Sprintf("request body exceeds %d bytes", s.opts.MaxBodyBytes), Err: backend.ErrTooLarge})
		return
	}
	writeError(ctx, backend.Invalid("", "malformed HTTP request: %v", err))
}

// labels are what a completion request's metrics and access log carry;
// serve fills them in as it learns them.
type labels struct {
	route, strategy, cache string
	stream                 bool
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	reqID := s.setRequestID(ctx)
	path, method := string(ctx.Path()), string(ctx.Method())
	switch {
	case path == "/v1/chat/completions" && method == "POST":
		start, l := time.Now(), &labels{route: "-", strategy: "-"}
		s.chat(ctx, l)
		s.observe(ctx, reqID, start, l)
	case path == "/v1/completions" && method == "POST":
		start, l := time.Now(), &labels{route: "-", strategy: "-"}
		s.completions(ctx, l)
		s.observe(ctx, reqID, start, l)
	case path == "/metrics" && method == "GET":
		metricsHandler(ctx)
	case path == "/v1/models" && method == "GET":
		s.models(ctx)
	case path == "/healthz":
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	case path == "/readyz":
		s.readyz(ctx)
	case path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/models":
		writeError(ctx, &backend.ParamError{Msg: "method " + method + " not allowed on " + path, Err: backend.ErrInvalid})
		ctx.SetStatusCode(fasthttp.StatusMethodNotAllowed)
	default:
		writeError(ctx, &backend.ParamError{Msg: "unknown path " + path, Err: backend.ErrNotFound})
	}
}

var idCounter atomic.Uint64

func newID(prefix string) string {
	var b [12]byte
	x, y := rand.Uint64(), idCounter.Add(1)
	for i := range 8 {
		b[i] = byte(x >> (8 * i))
	}
	for i := range 4 {
		b[8+i] = byte(y >> (8 * i))
	}
	return prefix + hex.EncodeToString(b[:])
}

func validID(id []byte) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

// setRequestID keeps a sane client-supplied X-Request-Id or makes one.
func (s *Server) setRequestID(ctx *fasthttp.RequestCtx) string {
	id := ctx.Request.Header.Peek("X-Request-Id")
	sid := string(id)
	if !validID(id) {
		sid = newID("req_")
	}
	ctx.Response.Header.Set("X-Request-Id", sid)
	return sid
}

func writeJSON(ctx *fasthttp.RequestCtx, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status = fasthttp.StatusInternalServerError
		b = []byte(`{"error":{"message":"encoding the response failed","type":"server_error","param":null,"code":null}}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func (s *Server) models(ctx *fasthttp.RequestCtx) {
	list := openai.ModelList{Object: "list", Data: []openai.Model{}}
	for _, r := range s.router.List() {
		list.Data = append(list.Data, openai.Model{ID: r.Name, Object: "model", Created: 0, OwnedBy: r.Backend.Name()})
	}
	writeJSON(ctx, fasthttp.StatusOK, list)
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	if s.draining.Load() {
		writeError(ctx, backendOverloaded("shutting down"))
		return
	}
	if s.ready != nil {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.ready(c); err != nil {
			writeError(ctx, &backend.ParamError{Msg: "not ready: " + err.Error(), Err: backend.ErrOverloaded})
			return
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ready"})
}

// format is what differs between chat and completions on the wire.
type format struct {
	idPrefix string
	full     func(id, model string, created int64, g *backend.Generation, steer json.RawMessage) any
	chunk    func(id, model string, created int64, d backend.Delta, first bool, offset int) any
	usage    func(id, model string, created int64, u backend.Usage, steer json.RawMessage) any
}

var chatFormat = format{
	idPrefix: "chatcmpl-",
	full: func(id, model string, created int64, g *backend.Generation, steer json.RawMessage) any {
		c := openai.Chat(id, model, created, g)
		c.Steering = steer
		return c
	},
	chunk: func(id, model string, created int64, d backend.Delta, first bool, _ int) any {
		return openai.ChatChunkOf(id, model, created, d, first)
	},
	usage: func(id, model string, created int64, u backend.Usage, steer json.RawMessage) any {
		c := openai.ChatUsageChunk(id, model, created, u)
		c.Steering = steer
		return c
	},
}

var completionFormat = format{
	idPrefix: "cmpl-",
	full: func(id, model string, created int64, g *backend.Generation, steer json.RawMessage) any {
		c := openai.CompletionOf(id, model, created, g)
		c.Steering = steer
		return c
	},
	chunk: func(id, model string, created int64, d backend.Delta, _ bool, offset int) any {
		return openai.CompletionChunkOf(id, model, created, d, offset)
	},
	usage: func(id, model string, created int64, u backend.Usage, steer json.RawMessage) any {
		c := openai.CompletionUsageChunk(id, model, created, u)
		c.Steering = steer
		return c
	},
}

// observe records a finished handler: its status and latency (for a
// stream, the time to its first byte; the stream records its own end), and
// a sampled access-log line.
func (s *Server) observe(ctx *fasthttp.RequestCtx, reqID string, start time.Time, l *labels) {
	status := ctx.Response.StatusCode()
	took := time.Since(start)
	metrics.Requests.WithLabelValues(l.route, strconv.Itoa(status), l.strategy, "").Inc()
	if l.stream && status == fasthttp.StatusOK {
		metrics.TimeToFirstToken.WithLabelValues(l.route, l.strategy).Observe(took.Seconds())
	} else {
		metrics.RequestDuration.WithLabelValues(l.route, l.strategy, "false").Observe(took.Seconds())
	}
	if s.opts.AccessSample > 0 && rand.Float64() < s.opts.AccessSample {
		s.log.Info("access", "request_id", reqID, "path", string(ctx.Path()), "status", status, "route", l.route,
			"strategy", l.strategy, "cache", l.cache, "stream", l.stream, "duration_ms", float64(took.Microseconds())/1000)
	}
}

var metricsHandler = fasthttpadaptor.NewFastHTTPHandler(metrics.Handler())

func (s *Server) chat(ctx *fasthttp.RequestCtx, l *labels) {
	req, err := openai.DecodeChat(ctx.PostBody())
	if err != nil {
		writeError(ctx, err)
		return
	}
	br, err := openai.ChatToBackend(req, s.opts.Limits)
	if err != nil {
		writeError(ctx, err)
		return
	}
	s.serve(ctx, l, chatFormat, req.Model, br, req.Steering, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
}

func (s *Server) completions(ctx *fasthttp.RequestCtx, l *labels) {
	req, err := openai.DecodeCompletion(ctx.PostBody())
	if err != nil {
		writeError(ctx, err)
		return
	}
	br, err := openai.CompletionToBackend(req, s.opts.Limits)
	if err != nil {
		writeError(ctx, err)
		return
	}
	s.serve(ctx, l, completionFormat, req.Model, br, req.Steering, req.Stream, req.StreamOptions != nil && req.StreamOptions.IncludeUsage)
}

// checkCaps refuses what the backend has declared it cannot do.
func checkCaps(c backend.Caps, r *backend.Request) error {
	if r.Logprobs && !c.Logprobs {
		return backend.Unsupported("logprobs", "this model's backend does not return logprobs")
	}
	if r.TopLogprobs > c.MaxTopLogprobs && c.Logprobs {
		return backend.Invalid("top_logprobs", "top_logprobs must be at most %d for this model", c.MaxTopLogprobs)
	}
	if r.Continue && !c.Continuation {
		return backend.Unsupported("continue_final_message", "this model's backend cannot continue a partial assistant message")
	}
	return nil
}

func (s *Server) serve(ctx *fasthttp.RequestCtx, l *labels, f format, model string, br *backend.Request, steer json.RawMessage, stream, includeUsage bool) {
	rt, err := s.router.Resolve(model)
	if err != nil {
		writeError(ctx, err)
		return
	}
	l.route, l.stream = rt.Name, stream
	br.Model = rt.Target
	if err := checkCaps(rt.Backend.Caps(), br); err != nil {
		writeError(ctx, err)
		return
	}
	rctx, cancel := context.WithCancelCause(context.Background())
	rctx, cancelTimeout := context.WithTimeout(rctx, s.opts.RequestTimeout)
	stopWatch := watchDisconnect(ctx.Conn(), cancel)
	finish := func() { stopWatch(); cancelTimeout(); cancel(nil) }
	if err := s.adm.acquire(rctx); err != nil {
		finish()
		writeError(ctx, err)
		return
	}
	id, created := newID(f.idPrefix), time.Now().Unix()
	call := &steering.Call{Route: rt, Request: br, Steering: steer, Tenant: br.User}
	l.strategy = s.engine.Strategy(call)
	var cacheStatus atomic.Value
	call.CacheStatus = func(s string) { cacheStatus.Store(s) }
	if !stream {
		defer finish()
		defer s.adm.release()
		out, err := s.engine.Run(rctx, call, nil)
		if err != nil {
			s.fail(ctx, rctx, err)
			return
		}
		info := steeringHeaders(ctx, out)
		if out.Cache != "" {
			ctx.Response.Header.Set("X-Cache", out.Cache)
			l.cache = out.Cache
		}
		recordSpend(l.strategy, out)
		writeJSON(ctx, fasthttp.StatusOK, f.full(id, model, created, out.Generation, info))
		return
	}
	st := startStream(rctx, func(emit func(backend.Delta) error) (*steering.Outcome, error) {
		return s.engine.Run(rctx, call, emit)
	})
	// Wait for the first delta so that an error before any output still
	// gets its own HTTP status.
	first, ok := <-st.events
	if !ok && st.err != nil {
		finish()
		s.adm.release()
		s.fail(ctx, rctx, st.err)
		return
	}
	reqID := string(ctx.Response.Header.Peek("X-Request-Id"))
	ctx.Response.Header.Set("X-Steering-Strategy", l.strategy)
	if cs, ok := cacheStatus.Load().(string); ok {
		ctx.Response.Header.Set("X-Cache", cs) // told before the first delta was sent
		l.cache = cs
	}
	streamStart, route, strategy := time.Now(), l.route, l.strategy
	ctx.SetContentType("text/event-stream")
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("X-Accel-Buffering", "no")
	ctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer s.adm.release()
		defer finish()
		defer func() {
			metrics.RequestDuration.WithLabelValues(route, strategy, "true").Observe(time.Since(streamStart).Seconds())
		}()
		sw := sseWriter{w: w, f: f, id: id, model: model, created: created, seen: map[int]int{}}
		werr := error(nil)
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
		if werr != nil {
			return
		}
		if st.err != nil {
			err := s.requestErr(rctx, st.err)
			s.log.Warn("stream failed after first byte", "request_id", reqID, "err", err)
			_, body := errorOf(err)
			_ = sw.event(body)
			_ = sw.done()
			return
		}
		recordSpend(strategy, st.out)
		if includeUsage {
			_ = sw.event(f.usage(id, model, created, st.out.Generation.Usage, marshalInfo(st.out)))
		}
		_ = sw.done()
	})
}

// recordSpend records what a steered request drew and spent.
func recordSpend(strategy string, out *steering.Outcome) {
	if out == nil || out.Info == nil || out.Cache == steering.CacheHit {
		return
	}
	metrics.Samples.WithLabelValues(strategy).Observe(float64(out.Info.SamplesUsed))
	u := out.Info.BackendUsage
	metrics.Tokens.WithLabelValues(strategy).Observe(float64(u.PromptTokens + u.CompletionTokens))
}

// steeringHeaders sets the steering headers and returns the response's
// "steering" object.
func steeringHeaders(ctx *fasthttp.RequestCtx, out *steering.Outcome) json.RawMessage {
	strategy := steering.None
	if out.Info != nil {
		strategy = out.Info.Strategy
		if out.Info.Arm != "" {
			ctx.Response.Header.Set("X-Steering-Arm", out.Info.Arm)
		}
	}
	ctx.Response.Header.Set("X-Steering-Strategy", strategy)
	return marshalInfo(out)
}

func marshalInfo(out *steering.Outcome) json.RawMessage {
	if out == nil || out.Info == nil {
		return nil
	}
	b, err := json.Marshal(out.Info)
	if err != nil {
		return nil
	}
	return b
}

// fail writes the error of a request that produced no output yet.
func (s *Server) fail(ctx *fasthttp.RequestCtx, rctx context.Context, err error) {
	err = s.requestErr(rctx, err)
	status, _ := errorOf(err)
	if status >= 500 {
		s.log.Warn("request failed", "request_id", string(ctx.Response.Header.Peek("X-Request-Id")), "status", status, "err", err)
	}
	writeError(ctx, err)
}

// requestErr names why a request's work ended: a cancellation by its cause
// (the client leaving), the request deadline as a backend timeout.
func (s *Server) requestErr(rctx context.Context, err error) error {
	if cause := context.Cause(rctx); cause != nil && errors.Is(err, context.Canceled) {
		err = cause
	}
	if errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, backend.ErrTimeout) {
		err = fmt.Errorf("%w: request deadline of %s exceeded", backend.ErrTimeout, s.opts.RequestTimeout)
	}
	return err
}

// stream runs a producer in its own goroutine and hands its deltas over a
// channel; err and gen are set before events is closed.
type stream struct {
	events chan backend.Delta
	out    *steering.Outcome
	err    error
}

func startStream(ctx context.Context, produce func(emit func(backend.Delta) error) (*steering.Outcome, error)) *stream {
	st := &stream{events: make(chan backend.Delta, 32)}
	go func() {
		defer close(st.events)
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

func (s *sseWriter) event(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	s.w.WriteString("data: ")
	s.w.Write(b)
	s.w.WriteString("\n\n")
	return s.w.Flush()
}

func (s *sseWriter) done() error {
	s.w.WriteString("data: [DONE]\n\n")
	return s.w.Flush()
}

// fasthttpLogger sends fasthttp's own messages (connection errors) to slog
// at debug level: the client already got its answer, if any.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
