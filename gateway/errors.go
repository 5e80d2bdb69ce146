package gateway

import (
	"slices"
	"strconv"
	"strings"

	"github.com/steergate/steergate/fault"
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

// queryOf reads the query parameters an endpoint takes: any other name
// (a `Tenant` for `tenant` included) and any name given twice are refused
// by name, rather than ignored or read as the first.
func queryOf(ctx *fasthttp.RequestCtx, takes ...string) (map[string]string, error) {
	out := make(map[string]string, len(takes))
	for k, v := range ctx.QueryArgs().All() {
		name := string(k)
		if !slices.Contains(takes, name) {
			return nil, fault.Invalid(name, "unknown query parameter %q; this endpoint takes %s", name, strings.Join(takes, ", "))
		}
		if _, dup := out[name]; dup {
			return nil, fault.Invalid(name, "query parameter %q is given twice", name)
		}
		out[name] = string(v)
	}
	return out, nil
}
