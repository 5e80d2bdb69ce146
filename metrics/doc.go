// Package metrics owns Steergate's Prometheus metrics: one registry, the
// collectors every layer records into (requests, latencies, time to first
// token, backend and reward-model calls, samples and tokens per request,
// reward batch sizes, cache results, in-flight and queued requests), and
// the /metrics handler.
package metrics
