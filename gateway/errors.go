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
	var err error
	ctx.QueryArgs().VisitAll(func(k, v []byte) {
		name := string(k)
		switch {
		case err != nil:
		case !slices.Contains(takes, name):
			err = fault.Invalid(name, "unknown query parameter %q; this endpoint takes %s", name, strings.Join(takes, ", "))
		default:
			if _, dup := out[name]; dup {
				err = fault.Invalid(name, "query parameter %q is given twice", name)
			}
			out[name] = string(v)
		}
	})
	return out, err
}
