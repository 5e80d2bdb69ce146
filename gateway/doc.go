// Package gateway owns the HTTP face of Steergate: a fasthttp server with thin
// handlers (decode, call the engine once, encode), the SSE writer, admission
// control, request ids, per-request deadlines, cancellation when a client
// disconnects, graceful draining, and the one table that maps errors to
// HTTP statuses and OpenAI error envelopes.
package gateway
