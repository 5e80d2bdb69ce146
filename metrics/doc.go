// Package metrics owns Steergate's Prometheus collectors and their names:
// requests, latencies, time to first token, backend and reward-model calls,
// samples, tokens and steps per request, reward batch sizes, cache results,
// in-flight and queued requests, recovered panics, feedback, preferences,
// authentication failures and experiment enrolment. A Metrics is made over
// a registry its owner passes in, so tests use their own; its recording
// methods are no-ops on a nil *Metrics.
package metrics
