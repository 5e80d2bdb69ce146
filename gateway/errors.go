package gateway

import (
	"strconv"

	"github.com/steergate/steergate/wire"
	"github.com/valyala/fasthttp"
)

// retryAfterSeconds is what an overloaded gateway asks clients to wait.
const retryAfterSeconds = 1

func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, body := wire.ErrorOf(err)
	if status == fasthttp.StatusServiceUnavailable {
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	if status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="steergate"`)
	}
	writeJSON(ctx, status, body)
}
