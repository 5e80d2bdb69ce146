package gateway

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/experiment"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/prefs"
	"github.com/steergate/steergate/steering"
	"github.com/steergate/steergate/wire"
	"github.com/valyala/fasthttp"
)

// Engine resolves a call's steering into a plan once, then runs it. emit
// is nil for non-streaming requests.
type Engine interface {
	Plan(c *steering.Call) (*steering.Plan, error)
	Run(ctx context.Context, c *steering.Call, p *steering.Plan, emit func(backend.Delta) error) (*steering.Outcome, error)
}

// Options configure the server.
type Options struct {
	Listen          string
	RequestTimeout  time.Duration // per-request deadline
	MaxBodyBytes    int
	MaxHeaderBytes  int // larger request headers get 431
	MaxInflight     int
	MaxQueue        int
	QueueTimeout    time.Duration
	ReadTimeout     time.Duration
	IdleTimeout     time.Duration
	DrainDelay      time.Duration // /readyz answers 503 this long before the listener closes
	ShutdownTimeout time.Duration // then in-flight requests get this long to finish
	Limits          wire.Limits
	AccessSample    float64 // share of requests written to the access log
	Metrics         *metrics.Metrics
	// Keys identify callers (nil or empty: open, one local tenant); Prefs
	// serves preferences and feedback (nil: those endpoints are off).
	Keys  *prefs.Keys
	Prefs *prefs.Service
	// Experiments enroll requests in A/B tests and keep their results
	// (nil: none).
	Experiments *experiment.Set
	// Rewards are the sequence rewards the dashboard offers preferences
	// for.
	Rewards []RewardView
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
	metrics  *metrics.Metrics
	// base is the parent of every request's context; it is cancelled when
	// shutdown_timeout runs out, so that what is still running ends with
	// an error the client can read.
	base   context.Context
	cutoff context.CancelCauseFunc
	// background is work that outlives its request (experiment
	// evaluations), at most cap(evalSlots) at once; shutdown waits for it.
	background  sync.WaitGroup
	evalSlots   chan struct{}
	recordSlots chan struct{} // experiment records in flight beside their answers
	live        *live         // the dashboard's view of finished requests
	// clock rings every request's deadline and disconnect watch;
	// errDeadline is the cause a request's context is cancelled with at
	// its deadline.
	clock       *clock
	errDeadline error
}

// New returns a server; ready reports whether the backends can serve (nil:
// always ready).
func New(opts Options, router *backend.Router, engine Engine, log *slog.Logger, ready func(context.Context) error) *Server {
	if engine == nil {
		engine = steering.NewEngine(steering.Options{Limits: steering.Limits{MaxSamples: 16}})
	}
	base, cutoff := context.WithCancelCause(context.Background())
	s := &Server{opts: opts, router: router, engine: engine, log: log, ready: ready, metrics: opts.Metrics,
		adm: newAdmission(opts.MaxInflight, opts.MaxQueue, opts.QueueTimeout, opts.Metrics), base: base, cutoff: cutoff,
		evalSlots: make(chan struct{}, 4), recordSlots: make(chan struct{}, 64), live: newLive(), clock: newClock(),
		errDeadline: fault.New(fault.ErrTimeout, "", "request deadline of %s exceeded", opts.RequestTimeout)}
	s.srv = &fasthttp.Server{
		Handler:            s.handle,
		ErrorHandler:       s.parseError,
		Name:               "steergate",
		Logger:             fasthttpLogger{log},
		MaxRequestBodySize: opts.MaxBodyBytes,
		ReadBufferSize:     max(opts.MaxHeaderBytes, 4096),
		ReadTimeout:        opts.ReadTimeout,
		// A response may take as long as its request may; the deadline is
		// ours. Streams, written to the connection itself (sendStream), keep this bound.
		WriteTimeout:                 opts.RequestTimeout + 10*time.Second,
		IdleTimeout:                  opts.IdleTimeout,
		NoDefaultServerHeader:        true,
		NoDefaultContentType:         true,
		DisablePreParseMultipartForm: true,
		CloseOnShutdown:              true,
		// A connection's read buffer (as large as the largest request
		// headers) goes back to the pool once its request is read, instead
		// of staying with every open stream.
		ReduceMemoryUsage: true,
	}
	return s
}

// errShutdown ends what is still running when shutdown_timeout is over.
var errShutdown = fault.New(fault.ErrOverloaded, "", "the server is shutting down")

// Serve accepts connections on ln until ctx is cancelled. Then it drains:
// /readyz answers 503 for DrainDelay while requests are still accepted (so
// a load balancer stops sending), the listener closes, and in-flight
// requests get ShutdownTimeout to finish; those still running after it end
// with an error (streams with an error event and [DONE]).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	stopClock := make(chan struct{})
	clockDone := make(chan struct{})
	go func() { defer close(clockDone); s.clock.run(stopClock) }()
	defer func() { close(stopClock); <-clockDone }()
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(lingerListener{ln}) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.draining.Store(true)
	close(s.live.closed)
	s.log.Info("draining", "inflight", s.adm.inflight(), "drain_delay", s.opts.DrainDelay)
	if s.opts.DrainDelay > 0 {
		t := time.NewTimer(s.opts.DrainDelay)
		select {
		case <-t.C:
		case err := <-errc:
			t.Stop()
			return err
		}
	}
	shut := make(chan error, 1)
	go func() {
		err := s.srv.Shutdown()
		// fasthttp closes only the listeners Serve had registered; one it
		// had not reached yet is closed here.
		_ = ln.Close()
		shut <- err
	}()
	t := time.NewTimer(s.opts.ShutdownTimeout)
	defer t.Stop()
	select {
	case err := <-shut:
		<-errc
		if !s.waitBackground(t.C) {
			s.cutoff(errShutdown)
			s.background.Wait()
		}
		return err
	case <-t.C:
	}
	s.log.Warn("shutdown timeout passed; ending the requests still running", "inflight", s.adm.inflight())
	s.cutoff(errShutdown)
	select {
	case err := <-shut:
		<-errc
		return err
	case <-time.After(5 * time.Second):
		return fmt.Errorf("shutdown: connections still open %s after the shutdown timeout", 5*time.Second)
	}
}

// waitBackground waits for background work until deadline fires; it
// reports whether the work finished.
func (s *Server) waitBackground(deadline <-chan time.Time) bool {
	done := make(chan struct{})
	go func() { s.background.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-deadline:
		return false
	}
}

func (s *Server) parseError(ctx *fasthttp.RequestCtx, err error) {
	s.setRequestID(ctx)
	var small *fasthttp.ErrSmallBuffer
	var timeout net.Error
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		lingerOnClose(ctx.Conn())
		writeError(ctx, fault.New(fault.ErrTooLarge, "", "request body exceeds %d bytes", s.opts.MaxBodyBytes))
	case errors.As(err, &small):
		lingerOnClose(ctx.Conn()) // the client may still be sending its headers
		writeError(ctx, fault.New(wire.ErrHeaderTooLarge, "", "request headers exceed %d bytes", s.srv.ReadBufferSize))
	case errors.As(err, &timeout) && timeout.Timeout():
		// A body shorter than its Content-Length ends here too: the
		// read waits for the rest until the deadline.
		writeError(ctx, fault.New(wire.ErrSlowRequest, "", "the request was not read whole within %s: its headers or its body (as long as its Content-Length says) stopped short", s.opts.ReadTimeout))
	default:
		// fasthttp's message quotes the raw request, headers included; a
		// secret a front proxy added must not be read back.
		writeError(ctx, fault.Invalid("", "malformed HTTP request"))
	}
}

func (s *Server) handle(ctx *fasthttp.RequestCtx) {
	reqID := s.setRequestID(ctx)
	defer s.recoverPanic(ctx, reqID)
	// The completion routes are served from a frame of their own size: a
	// stream's goroutine keeps within 8 KiB, and the other routes' frame
	// is larger.
	if f, ok := completionRoute(ctx); ok {
		if id, ok := s.identify(ctx); ok {
			s.completion(ctx, reqID, id, f) // logs its own access line (observe)
		} else {
			s.access(ctx, reqID)
		}
	} else {
		s.route(ctx, reqID)
		s.access(ctx, reqID)
	}
	s.sendStream(ctx, reqID)
}

// access writes a sampled access-log line for a request that is no
// completion, or one refused before it began (a key missing or wrong).
//
//go:noinline
func (s *Server) access(ctx *fasthttp.RequestCtx, reqID string) {
	if s.opts.AccessSample > 0 && rand.Float64() < s.opts.AccessSample {
		s.log.Info("access", "request_id", reqID, "method", string(ctx.Method()), "path", fault.Clip(string(ctx.Path()), 256),
			"status", ctx.Response.StatusCode(), "duration_ms", float64(time.Since(ctx.Time()).Microseconds())/1000)
	}
}

// completionRoute reports whether ctx is a completion request, and in
// which format.
func completionRoute(ctx *fasthttp.RequestCtx) (*format, bool) {
	if !ctx.IsPost() {
		return nil, false
	}
	switch string(ctx.Path()) {
	case "/v1/chat/completions":
		return &chatFormat, true
	case "/v1/completions":
		return &completionFormat, true
	}
	return nil, false
}

// route serves every request but a completion.
//
//go:noinline
func (s *Server) route(ctx *fasthttp.RequestCtx, reqID string) {
	path, method := string(ctx.Path()), string(ctx.Method())
	var id prefs.Identity
	// Every path but the probes, the metrics and the dashboard (which
	// signs in by itself) wants a key: decided on the decoded path, and
	// denied by default, so that a path whose dot segments resolve out of
	// /v1/ (/v1/users/..%2F..%2Fx/preferences is /x/preferences) is not
	// served without one.
	if !publicPath(path) {
		var ok bool
		if id, ok = s.identify(ctx); !ok {
			return
		}
	}
	// The user id comes from the path as sent: the decoded path has its
	// escapes undone and its dot segments resolved, so that
	// x%2F..%2Fvictim would name the user victim.
	user, isUser := userPath(string(ctx.URI().PathOriginal()))
	if (method == "POST" || method == "PUT") && encoded(ctx) {
		writeError(ctx, encodingErr(ctx.Request.Header.ContentEncoding()))
		return
	}
	expName, isExp := experimentPath(path)
	model, isModel := strings.CutPrefix(path, "/v1/models/")
	isModel = isModel && model != ""
	// HEAD is GET without the body (fasthttp leaves it out), for probes.
	get := method == "GET" || method == "HEAD"
	switch {
	case path == "/ui" || strings.HasPrefix(path, "/ui/"):
		s.dashboard(ctx, path, method)
	case isUser && (method == "GET" || method == "PUT" || method == "DELETE"):
		s.preferences(ctx, id, user)
	case path == "/v1/feedback" && method == "POST":
		s.feedback(ctx, id)
	case isExp && method == "GET":
		s.experiments(ctx, id, expName)
	case path == "/metrics" && method == "GET":
		s.metricsHandler(ctx)
	case path == "/v1/models" && get:
		s.models(ctx)
	case isModel && get:
		s.model(ctx, model)
	case path == "/healthz" && get:
		writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ok"})
	case path == "/readyz" && get:
		s.readyz(ctx)
	case path == "/v1/chat/completions" || path == "/v1/completions" || path == "/v1/models" || path == "/metrics" ||
		path == "/healthz" || path == "/readyz" || path == "/v1/feedback" || isUser || isExp || isModel:
		ctx.Response.Header.Set("Allow", allowed(path))
		writeError(ctx, fault.New(wire.ErrMethod, "", "method %s is not allowed on %s", fault.Clip(method, 16), path))
	default:
		// The path as sent: the decoded one may read as another that exists.
		writeError(ctx, fault.New(fault.ErrNotFound, "", "unknown path %s", fault.Clip(string(ctx.URI().PathOriginal()), 128)))
	}
}

// publicPath reports whether path is served without a key.
func publicPath(path string) bool {
	switch path {
	case "/healthz", "/readyz", "/metrics", "/ui":
		return true
	}
	return strings.HasPrefix(path, "/ui/")
}

func allowed(path string) string {
	switch path {
	case "/v1/chat/completions", "/v1/completions", "/v1/feedback":
		return "POST"
	}
	if _, ok := userPath(path); ok {
		return "GET, PUT, DELETE"
	}
	if path == "/v1/models" || path == "/healthz" || path == "/readyz" || strings.HasPrefix(path, "/v1/models/") {
		return "GET, HEAD"
	}
	return "GET"
}

// recoverPanic turns a panic in a handler into a 500 with the OpenAI
// envelope, a log line with the stack and a metric; the server goes on.
func (s *Server) recoverPanic(ctx *fasthttp.RequestCtx, reqID string) {
	p := recover()
	if p == nil {
		return
	}
	s.metrics.Panic()
	s.log.Error("panic serving a request", "request_id", reqID, "panic", fmt.Sprint(p), "stack", string(debug.Stack()))
	if _, ok := ctx.UserValue(streamKey{}).(streamBody); ok {
		// The handler had handed its stream off (handOff) before the panic:
		// the stream goes out, and with its end frees what the request holds.
		s.sendStream(ctx, reqID)
		return
	}
	ctx.Response.Reset()
	ctx.Response.Header.Set("X-Request-Id", reqID)
	writeError(ctx, fault.New(fault.ErrInternal, "", "internal error (request %s)", reqID))
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
	var out [48]byte // one allocation, the string's, for a short prefix
	return string(hex.AppendEncode(append(out[:0], prefix...), b[:]))
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
	var b []byte
	var err error
	if m, ok := v.(json.Marshaler); ok {
		// The wire types marshal themselves into compact JSON; json.Marshal
		// would only compact it all again (a sixth of a cache hit's CPU).
		b, err = m.MarshalJSON()
	} else {
		b, err = json.Marshal(v)
	}
	if err != nil {
		status = fasthttp.StatusInternalServerError
		b = []byte(`{"error":{"message":"encoding the response failed","type":"server_error","param":null,"code":"internal_error"}}`)
	}
	ctx.SetStatusCode(status)
	ctx.SetContentType("application/json")
	ctx.SetBody(b)
}

func (s *Server) metricsHandler(ctx *fasthttp.RequestCtx) {
	serveHTTP(ctx, s.metrics.Handler())
}

func (s *Server) models(ctx *fasthttp.RequestCtx) {
	list := wire.ModelList{Object: "list", Data: []wire.Model{}}
	for _, r := range s.router.List() {
		list.Data = append(list.Data, modelOf(r.Name, r))
	}
	writeJSON(ctx, fasthttp.StatusOK, list)
}

// model answers GET /v1/models/{model}: the model as the list shows it,
// or a 404 naming model.
func (s *Server) model(ctx *fasthttp.RequestCtx, name string) {
	r, err := s.router.Resolve(name)
	if err != nil {
		writeError(ctx, err)
		return
	}
	writeJSON(ctx, fasthttp.StatusOK, modelOf(name, r))
}

// modelOf is a routable name as the model endpoints show it.
func modelOf(name string, r backend.Route) wire.Model {
	return wire.Model{ID: name, Object: "model", Created: 0, OwnedBy: r.Backend.Name()}
}

func (s *Server) readyz(ctx *fasthttp.RequestCtx) {
	if s.draining.Load() {
		writeError(ctx, fault.New(fault.ErrOverloaded, "", "draining: the server is shutting down"))
		return
	}
	if s.ready != nil {
		c, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if err := s.ready(c); err != nil {
			writeError(ctx, fault.New(fault.ErrOverloaded, "", "not ready: %v", err))
			return
		}
	}
	writeJSON(ctx, fasthttp.StatusOK, map[string]string{"status": "ready"})
}

// fasthttpLogger sends fasthttp's own messages (connection errors) to slog
// at debug level: the client already got its answer, if any.
type fasthttpLogger struct{ log *slog.Logger }

func (l fasthttpLogger) Printf(format string, args ...any) {
	l.log.Debug(fmt.Sprintf(format, args...), "component", "fasthttp")
}
