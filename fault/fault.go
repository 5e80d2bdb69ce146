package fault

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"unicode/utf8"
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
	// Code, when set, is the envelope's code in place of the class's: a
	// backend's own (context_length_exceeded, …), which a client may
	// branch on.
	Code string
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

// WrongType returns the 400 for a JSON value of the wrong type at param
// (the path from the body's top, such as tools[0].function.name), saying
// what was expected in JSON's words, not in the Go types that decoded it.
func WrongType(param string, te *json.UnmarshalTypeError) error {
	want := jsonKind(te.Type)
	if n, ok := strings.CutPrefix(te.Value, "number "); ok && (want == "a number" || want == "an integer" && isInteger(n)) {
		// The right kind, but more than the field can hold.
		return Invalid(param, "invalid value for '%s': %s is out of range", param, jsonValue(te.Value))
	}
	return Invalid(param, "invalid type for '%s': expected %s, got %s", param, want, jsonValue(te.Value))
}

// isInteger reports whether a JSON number is written as an integer.
func isInteger(n string) bool {
	n = strings.TrimPrefix(n, "-")
	return n != "" && strings.Trim(n, "0123456789") == ""
}

// jsonKind names what a JSON value decoding into t must be.
func jsonKind(t reflect.Type) string {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == nil {
		return "another type"
	}
	if k, ok := reflect.New(t).Interface().(interface{ JSONKind() string }); ok {
		return k.JSONKind() // a type that decodes from more than one kind says which
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another type"
}

// jsonValue names the value encoding/json met (its UnmarshalTypeError's
// Value: "string", "number", "number 1.5", …).
func jsonValue(v string) string {
	if strings.HasPrefix(v, "array") {
		return "an " + v
	}
	if n, ok := strings.CutPrefix(v, "number "); ok {
		if len(n) > 32 {
			n = n[:32] + "…"
		}
		return "the number " + n
	}
	switch v {
	case "bool":
		return "a boolean"
	case "object":
		return "an object"
	case "":
		return "another type"
	}
	return "a " + v
}

// Clip shortens client-supplied text quoted back in a message to at most
// n bytes and an ellipsis, cut where a character starts.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
