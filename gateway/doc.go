// Package gateway owns the HTTP face of Steergate: a fasthttp server with
// thin handlers (admit, decode, resolve the steering plan once, run it,
// encode), the SSE writer, admission control, request ids, per-request
// deadlines, cancellation when a client disconnects, a recover at the
// request boundary, graceful draining, and metrics labelled only with
// values from closed sets. Errors map to HTTP by wire's one table.
package gateway
