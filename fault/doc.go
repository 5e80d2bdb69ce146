// Package fault owns the error taxonomy shared by every layer: the sentinel
// classes an error may belong to and ParamError, which names the request
// parameter an error is about. It imports nothing of Steergate's, so the
// lowest packages can use it; the gateway maps the classes to HTTP in one
// table.
package fault
