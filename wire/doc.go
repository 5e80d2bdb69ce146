// Package wire owns the OpenAI wire format: the request and response types
// of chat completions, completions, models and errors; decoding that keeps
// the fields Steergate does not interpret; validation of client requests;
// pure conversions between the wire and the backend types; and the JSON
// object helpers the other packages read members with (Object,
// MergeObjects, ExtraMembers, EachMember). The gateway
// decodes and encodes with it, the OpenAI-compatible adapter talks to its
// upstream with it, and the reference server speaks it.
package wire
