package backend

import (
	"errors"
	"fmt"
)

// The error taxonomy shared by the whole gateway. Every error that reaches a
// client wraps exactly one of these; the gateway maps them to HTTP statuses in
// one table.
var (
	ErrInvalid     = errors.New("invalid request")   // 400
	ErrNotFound    = errors.New("not found")         // 404
	ErrTooLarge    = errors.New("request too large") // 413
	ErrUnsupported = errors.New("unsupported")       // 400: the backend cannot do what was asked
	ErrOverloaded  = errors.New("overloaded")        // 503 with Retry-After
	ErrUpstream    = errors.New("backend failure")   // 502
	ErrTimeout     = errors.New("backend timeout")   // 504
	ErrCanceled    = errors.New("request canceled")  // 499, client went away
)

// ParamError names the request parameter an error is about, so that the
// OpenAI envelope can carry it in "param".
type ParamError struct {
	Param string
	Msg   string
	Err   error // one of the sentinels above
}

func (e *ParamError) Error() string { return e.Msg }
func (e *ParamError) Unwrap() error { return e.Err }

// Invalid returns a 400 error about param.
func Invalid(param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...), Err: ErrInvalid}
}

// Unsupported returns a 400 error for a capability the backend lacks.
func Unsupported(param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...), Err: ErrUnsupported}
}

// Param returns the parameter name carried by err, if any.
func Param(err error) string {
	var pe *ParamError
	if errors.As(err, &pe) {
		return pe.Param
	}
	return ""
}
