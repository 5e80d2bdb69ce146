// Package wire owns the OpenAI wire format: the request and response types
// of chat completions, completions, models and errors; decoding that keeps
// the fields Steergate does not interpret; validation of client requests;
// and pure conversions between the wire and the backend types. The gateway
// decodes and encodes with it, the OpenAI-compatible adapter talks to its
// upstream with it, and the reference server speaks it.
package wire
