package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

var latency = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Metrics holds Steergate's collectors, registered in one registry. Every
// recording method is safe on a nil *Metrics and then records nothing, so a
// component built without metrics (in a test, in an offline command) needs
// no special case.
type Metrics struct {
	reg              *prometheus.Registry
	requests         *prometheus.CounterVec
	requestDuration  *prometheus.HistogramVec
	timeToFirstToken *prometheus.HistogramVec
	streamEnds       *prometheus.CounterVec
	backendDuration  *prometheus.HistogramVec
	rewardDuration   *prometheus.HistogramVec
	rewardBatch      *prometheus.HistogramVec
	samples          *prometheus.HistogramVec
	tokens           *prometheus.HistogramVec
	steps            *prometheus.HistogramVec
	resamples        *prometheus.HistogramVec
	cache            *prometheus.CounterVec
	inflight         prometheus.Gauge
	queued           prometheus.Gauge
	backendUp        *prometheus.GaugeVec
	panics           prometheus.Counter
	feedback         *prometheus.CounterVec
	preferences      *prometheus.CounterVec
	authFailures     *prometheus.CounterVec
	experiment       *prometheus.CounterVec
	evalSkipped      *prometheus.CounterVec
}

// New registers Steergate's collectors in reg.
func New(reg *prometheus.Registry) *Metrics {
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steergate_requests_total", Help: "Requests by route, status, strategy and experiment arm.",
		}, []string{"route", "status", "strategy", "arm"}),
		requestDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steergate_request_duration_seconds", Help: "End-to-end request latency.", Buckets: latency,
		}, []string{"route", "strategy", "stream"}),
		timeToFirstToken: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steergate_time_to_first_token_seconds", Help: "Time from request to the first streamed byte.", Buckets: latency,
		}, []string{"route", "strategy"}),
		streamEnds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steergate_stream_ends_total", Help: "Streams by route, strategy and the status they ended with (a stream is counted 200 in steergate_requests_total once its first byte is sent).",
		}, []string{"route", "strategy", "status"}),
		backendDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steergate_backend_duration_seconds", Help: "Backend call latency by outcome.", Buckets: latency,
		}, []string{"backend", "outcome"}),
		rewardDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steergate_reward_duration_seconds", Help: "Reward-model scoring latency per call.", Buckets: latency,
		}, []string{"reward", "outcome"}),
		rewardBatch: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steergate_reward_batch_size", Help: "Samples per reward-model run.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
		}, []string{"reward"}),
		samples: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steergate_samples_per_request", Help: "Samples a steered request drew.", Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}, []string{"strategy"}),
		tokens: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steergate_backend_tokens_per_request", Help: "Backend tokens (prompt + completion) a request spent.",
			Buckets: prometheus.ExponentialBuckets(16, 2, 12),
		}, []string{"strategy"}),
		steps: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steergate_steps_per_request", Help: "Steps a step-wise strategy (particles, guided) took.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}, []string{"strategy"}),
		resamples: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "steergate_resamples_per_request", Help: "Resampling events of a particles request.",
			Buckets: []float64{0, 1, 2, 4, 8, 16, 32, 64},
		}, []string{"strategy"}),
		cache: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steergate_cache_requests_total", Help: "Cache lookups and writes by cache, operation and result (hit, miss, ok, error, dropped).",
		}, []string{"cache", "op", "result"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "steergate_inflight_requests", Help: "Requests being served.",
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "steergate_queued_requests", Help: "Requests waiting for a slot.",
		}),
		backendUp: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "steergate_backend_up", Help: "1 when the backend's circuit is closed (serving), 0 when open.",
		}, []string{"backend"}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "steergate_panics_total", Help: "Panics recovered at the request boundary (each one a bug).",
		}),
		feedback: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steergate_feedback_total", Help: "Feedback events by the class of the tenant's key (config, redis, local), kind (rating, candidates, responses) and outcome.",
		}, []string{"class", "kind", "outcome"}),
		preferences: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steergate_preferences_total", Help: "Preference reads and writes by operation and outcome.",
		}, []string{"op", "outcome"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steergate_auth_failures_total", Help: "Requests refused for a key missing, wrong, or that could not be looked up (401).",
		}, []string{"reason"}),
		evalSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steergate_experiment_evaluations_skipped_total", Help: "Experiment evaluations skipped because every evaluation slot was busy.",
		}, []string{"experiment"}),
		experiment: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "steergate_experiment_requests_total", Help: "Requests enrolled in an experiment, by experiment and arm.",
		}, []string{"experiment", "arm"}),
	}
	reg.MustRegister(m.requests, m.requestDuration, m.timeToFirstToken, m.streamEnds, m.backendDuration, m.rewardDuration, m.rewardBatch,
		m.samples, m.tokens, m.steps, m.resamples, m.cache, m.inflight, m.queued, m.backendUp, m.panics, m.feedback,
		m.preferences, m.authFailures, m.experiment, m.evalSkipped)
	return m
}

// NewProcess returns metrics in a fresh registry that also carries the Go
// runtime and process collectors: what a serving process exposes.
func NewProcess() *Metrics {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return New(reg)
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	if m == nil {
		return promhttp.HandlerFor(prometheus.NewRegistry(), promhttp.HandlerOpts{})
	}
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// Gatherer returns the registry, for tests that read values back.
func (m *Metrics) Gatherer() prometheus.Gatherer { return m.reg }

// Request records a finished request. A stream that started counts its time
// to first byte here and its whole duration in StreamEnd.
func (m *Metrics) Request(route, status, strategy, arm string, took time.Duration, streamStarted bool) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(route, status, strategy, arm).Inc()
	if streamStarted {
		m.timeToFirstToken.WithLabelValues(route, strategy).Observe(took.Seconds())
	} else {
		m.requestDuration.WithLabelValues(route, strategy, "false").Observe(took.Seconds())
	}
}

// StreamEnd records how a stream ended (the status an error event carried,
// 499 for a client gone, else 200) and its whole duration.
func (m *Metrics) StreamEnd(route, strategy string, status int, took time.Duration) {
	if m == nil {
		return
	}
	m.streamEnds.WithLabelValues(route, strategy, strconv.Itoa(status)).Inc()
	m.requestDuration.WithLabelValues(route, strategy, "true").Observe(took.Seconds())
}

// BackendCall records one backend call's latency and outcome (ok, error,
// timeout, canceled).
func (m *Metrics) BackendCall(backend, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.backendDuration.WithLabelValues(backend, outcome).Observe(took.Seconds())
}

// RewardCall records one scoring call of a reward.
func (m *Metrics) RewardCall(reward, outcome string, took time.Duration) {
	if m == nil {
		return
	}
	m.rewardDuration.WithLabelValues(reward, outcome).Observe(took.Seconds())
}

// RewardBatch records the samples one reward-model run carried.
func (m *Metrics) RewardBatch(reward string, rows int) {
	if m == nil {
		return
	}
	m.rewardBatch.WithLabelValues(reward).Observe(float64(rows))
}

// Spend records what a steered request drew and spent.
func (m *Metrics) Spend(strategy string, samples, tokens int) {
	if m == nil {
		return
	}
	m.samples.WithLabelValues(strategy).Observe(float64(samples))
	m.tokens.WithLabelValues(strategy).Observe(float64(tokens))
}

// Steps records the steps and resampling events of a step-wise strategy.
func (m *Metrics) Steps(strategy string, steps, resamples int) {
	if m == nil {
		return
	}
	m.steps.WithLabelValues(strategy).Observe(float64(steps))
	if resamples >= 0 {
		m.resamples.WithLabelValues(strategy).Observe(float64(resamples))
	}
}

// Cache counts a cache operation: cache is response, score, redis, …; op
// get or set; result hit, miss, ok, error or dropped.
func (m *Metrics) Cache(cache, op, result string) {
	if m == nil {
		return
	}
	m.cache.WithLabelValues(cache, op, result).Inc()
}

// Inflight moves the in-flight gauge by d.
func (m *Metrics) Inflight(d float64) {
	if m == nil {
		return
	}
	m.inflight.Add(d)
}

// Queued moves the queued gauge by d.
func (m *Metrics) Queued(d float64) {
	if m == nil {
		return
	}
	m.queued.Add(d)
}

// BackendUp records whether a backend's circuit is closed.
func (m *Metrics) BackendUp(backend string, up bool) {
	if m == nil {
		return
	}
	v := 0.0
	if up {
		v = 1
	}
	m.backendUp.WithLabelValues(backend).Set(v)
}

// Panic counts a recovered panic.
func (m *Metrics) Panic() {
	if m == nil {
		return
	}
	m.panics.Inc()
}

// Feedback counts a feedback event.
func (m *Metrics) Feedback(class, kind, outcome string) {
	if m == nil {
		return
	}
	m.feedback.WithLabelValues(class, kind, outcome).Inc()
}

// Preferences counts a preference read or write.
func (m *Metrics) Preferences(op, outcome string) {
	if m == nil {
		return
	}
	m.preferences.WithLabelValues(op, outcome).Inc()
}

// AuthFailure counts a refused request.
func (m *Metrics) AuthFailure(reason string) {
	if m == nil {
		return
	}
	m.authFailures.WithLabelValues(reason).Inc()
}

// EvaluationSkipped counts an experiment evaluation dropped for lack of a
// slot.
func (m *Metrics) EvaluationSkipped(experiment string) {
	if m == nil {
		return
	}
	m.evalSkipped.WithLabelValues(experiment).Inc()
}

// Enrolled counts a request assigned to an experiment's arm.
func (m *Metrics) Enrolled(experiment, arm string) {
	if m == nil {
		return
	}
	m.experiment.WithLabelValues(experiment, arm).Inc()
}
