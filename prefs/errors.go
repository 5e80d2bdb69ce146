package prefs

import (
	"fmt"

	"github.com/steergate/steergate/fault"
)

// Authentication failures.
var (
	ErrNoKey  = &fault.ParamError{Msg: "missing API key: send it as Authorization: Bearer KEY", Err: fault.ErrUnauthorized}
	ErrBadKey = &fault.ParamError{Msg: "invalid API key", Err: fault.ErrUnauthorized}
)

func invalid(param, format string, args ...any) error { return fault.Invalid(param, format, args...) }

func notFound(param, format string, args ...any) error {
	return &fault.ParamError{Param: param, Msg: fmt.Sprintf(format, args...), Err: fault.ErrNotFound}
}
