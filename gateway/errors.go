package gateway

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/wire"
	"github.com/valyala/fasthttp"
)

// retryAfterSeconds is what an overloaded gateway asks clients to wait.
const retryAfterSeconds = 1

func writeError(ctx *fasthttp.RequestCtx, err error) {
	status, body := wire.ErrorOf(err)
	if status == fasthttp.StatusServiceUnavailable && len(ctx.Response.Header.Peek("Retry-After")) == 0 { // a caller's own wait stands
		ctx.Response.Header.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	if status == fasthttp.StatusUnauthorized {
		ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="steergate"`)
	}
	writeJSON(ctx, status, body)
}

// queryOf reads the query parameters an endpoint takes: any other name
// (a `Tenant` for `tenant` included), any name given twice and an empty or
// non-UTF-8 value are refused by name, rather than ignored, read as the
// first or read as absent.
func queryOf(ctx *fasthttp.RequestCtx, takes ...string) (map[string]string, error) {
	out := make(map[string]string, len(takes))
	for k, v := range ctx.QueryArgs().All() {
		name := string(k)
		switch _, dup := out[name]; {
		case !slices.Contains(takes, name):
			name = fault.Clip(name, 64)
			return nil, fault.Invalid(name, "unknown query parameter %q; this endpoint takes %s", name, strings.Join(takes, ", "))
		case dup:
			return nil, fault.Invalid(name, "query parameter %q is given twice", name)
		case len(v) == 0 || !utf8.Valid(v):
			return nil, fault.Invalid(name, "query parameter %q must be UTF-8 text, not empty", name)
		}
		out[name] = string(v)
	}
	return out, nil
}
