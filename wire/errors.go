package wire

import (
	"context"
	"errors"
	"net/http"

	"github.com/steergate/steergate/fault"
)

// StatusClientClosed is nginx's status for a client that went away; it is
// only ever logged, since nobody is left to read it.
const StatusClientClosed = 499

// Classes that only exist at the HTTP layer.
var (
	ErrMethod         = errors.New("method not allowed")
	ErrHeaderTooLarge = errors.New("request headers too large")
	// ErrSlowRequest: the request was not read within server.read_timeout
	// (a body shorter than its Content-Length, a client that stalled).
	ErrSlowRequest = errors.New("request not read in time")
)

// errorTable maps the error taxonomy to HTTP. It is the only place that does.
var errorTable = []struct {
	err    error
	status int
	typ    string
	code   string
}{
	{fault.ErrInvalid, http.StatusBadRequest, "invalid_request_error", ""},
	{fault.ErrUnsupported, http.StatusBadRequest, "invalid_request_error", "unsupported"},
	{fault.ErrUnauthorized, http.StatusUnauthorized, "invalid_request_error", "invalid_api_key"},
	{fault.ErrForbidden, http.StatusForbidden, "invalid_request_error", "forbidden"},
	{fault.ErrNotFound, http.StatusNotFound, "invalid_request_error", "not_found"},
	{ErrMethod, http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed"},
	{fault.ErrTooLarge, http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large"},
	{ErrHeaderTooLarge, http.StatusRequestHeaderFieldsTooLarge, "invalid_request_error", "headers_too_large"},
	{ErrSlowRequest, http.StatusRequestTimeout, "invalid_request_error", "request_timeout"},
	{fault.ErrOverloaded, http.StatusServiceUnavailable, "server_error", "overloaded"},
	{fault.ErrReward, http.StatusBadGateway, "server_error", "reward_error"},
	{fault.ErrInsufficient, http.StatusBadGateway, "server_error", "insufficient_answers"},
	{fault.ErrUpstream, http.StatusBadGateway, "server_error", "backend_error"},
	{fault.ErrTimeout, http.StatusGatewayTimeout, "server_error", "timeout"},
	{context.DeadlineExceeded, http.StatusGatewayTimeout, "server_error", "timeout"},
	{fault.ErrCanceled, StatusClientClosed, "server_error", "canceled"},
	{context.Canceled, StatusClientClosed, "server_error", "canceled"},
	{fault.ErrInternal, http.StatusInternalServerError, "server_error", "internal_error"},
}

// Bounds on an error's message and param, in bytes.
const (
	maxMessage = 2048
	maxParam   = 256
)

// ErrorOf returns the status and envelope for err.
func ErrorOf(err error) (int, *ErrorBody) {
	status, typ, code := http.StatusInternalServerError, "server_error", "internal_error"
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			status, typ, code = e.status, e.typ, e.code
			break
		}
	}
	p := fault.Param(err)
	var pe *fault.ParamError
	switch {
	case errors.As(err, &pe) && pe.Code != "":
		code = pe.Code
	case status == http.StatusNotFound && p == "model":
		code = "model_not_found"
	}
	// What a client sent comes back in messages and params (an unknown
	// key, a model name): bounded, so that a hostile request is not
	// echoed whole.
	p = fault.Clip(p, maxParam)
	body := &ErrorBody{Error: ErrorDetail{Message: fault.Clip(err.Error(), maxMessage), Type: typ}}
	if p != "" {
		body.Error.Param = &p
	}
	if code != "" {
		body.Error.Code = &code
	}
	return status, body
}
