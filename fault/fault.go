package fault

import (
	"errors"
	"fmt"
)

// The classes. Every error that reaches a client wraps exactly one of them.
var (
	ErrInvalid      = errors.New("invalid request") // the client asked for something malformed or out of range
	ErrUnsupported  = errors.New("unsupported")     // valid, but the route's backend cannot do it
	ErrUnauthorized = errors.New("unauthorized")    // no API key, or a wrong one
	ErrForbidden    = errors.New("forbidden")       // the key's role or tenant may not do this
	ErrNotFound     = errors.New("not found")       // an unknown model, path or record
	ErrTooLarge     = errors.New("request too large")
	ErrOverloaded   = errors.New("overloaded")      // no capacity now; try again shortly
	ErrUpstream     = errors.New("backend failure") // a backend failed or answered garbage
	ErrTimeout      = errors.New("timeout")         // a backend or the request deadline ran out
	ErrReward       = errors.New("reward model failure")
	// ErrInsufficient: steering ended with fewer usable answers than the
	// request needs although no backend call failed (every score was
	// unusable, or every answer was pruned).
	ErrInsufficient = errors.New("too few usable answers")
	ErrCanceled     = errors.New("request canceled") // the client went away
	ErrInternal     = errors.New("internal error")   // a bug: a recovered panic
)

// ParamError names the request parameter an error is about, so that the
// OpenAI envelope can carry it in "param".
type ParamError struct {
	Param string
	Msg   string
	Err   error // one of the classes above
}

func (e *ParamError) Error() string { return e.Msg }
func (e *ParamError) Unwrap() error { return e.Err }

// New returns an error of class err about param (which may be empty).
func New(err error, param, format string, args ...any) error {
	return &ParamError{Param: param, Msg: fmt.Sprintf(format, args...), Err: err}
}

// Invalid returns an ErrInvalid error about param.
func Invalid(param, format string, args ...any) error { return New(ErrInvalid, param, format, args...) }

// Unsupported returns an ErrUnsupported error about param.
func Unsupported(param, format string, args ...any) error {
	return New(ErrUnsupported, param, format, args...)
}

// Param returns the parameter named by err, if any.
func Param(err error) string {
	var pe *ParamError
	if errors.As(err, &pe) {
		return pe.Param
	}
	return ""
}
