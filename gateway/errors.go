package gateway

import (
	"context"
	"errors"
	"strconv"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/gateway/openai"
	"github.com/steergate/steergate/rm"
	"github.com/valyala/fasthttp"
)

// statusClientClosed is nginx's status for a client that went away; it is
// only ever logged, since nobody is left to read it.
const statusClientClosed = 499

// errorTable maps the error taxonomy to HTTP. It is the only place that does.
var errorTable = []struct {
	err    error
	status int
	typ    string
	code   string
}{
	{backend.ErrInvalid, fasthttp.StatusBadRequest, "invalid_request_error", ""},
	{backend.ErrUnsupported, fasthttp.StatusBadRequest, "invalid_request_error", "unsupported"},
	{backend.ErrNotFound, fasthttp.StatusNotFound, "invalid_request_error", "model_not_found"},
	{backend.ErrTooLarge, fasthttp.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large"},
	{backend.ErrOverloaded, fasthttp.StatusServiceUnavailable, "server_error", "overloaded"},
	{rm.ErrReward, fasthttp.StatusBadGateway, "server_error", "reward_error"},
	{backend.ErrUpstream, fasthttp.StatusBadGateway, "server_error", "backend_error"},
	{backend.ErrTimeout, fasthttp.StatusGatewayTimeout, "server_error", "backend_timeout"},
	{context.DeadlineExceeded, fasthttp.StatusGatewayTimeout, "server_error", "timeout"},
	{backend.ErrCanceled, statusClientClosed, "server_error", "canceled"},
	{context.Canceled, statusClientClosed, "server_error", "canceled"},
}

// errorOf returns the status and envelope for err.
func errorOf(err error) (int, *openai.ErrorBody) {
	status, typ, code := fasthttp.StatusInternalServerError, "server_error", "internal_error"
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			status, typ, code = e.status, e.typ, e.code
			break
		}
	}
	body := &openai.ErrorBody{Error: openai.ErrorDetail{Message: err.Error(), Type: typ}}
	if p := backend.Param(err); p != "" {
		body.Error.Param = &p
	}
	if code != "" {
		body.Error.Code = &code
	}
	return status, body
}

// retryAfterSeconds is what an overloaded gateway asks clients to wait.
const retryAfterSeconds = 1

func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, body := errorOf(err)
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	writeJSON(ctx, status, body)
}
