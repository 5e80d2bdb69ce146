package gateway

import (
	"context"
	"encoding/base64"
	"html"
	"mime"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/prefs"
	"github.com/steergate/steergate/steering"
	"github.com/steergate/steergate/ui"
	"github.com/steergate/steergate/wire"
	"github.com/valyala/fasthttp"
)

// keyCookie carries a browser's API key, set by /ui/login: a page cannot
// put an Authorization header on its navigation or on an EventSource.
// SameSite=Strict keeps other sites' pages from sending it.
const keyCookie = "steergate_key"

// RewardView is what the dashboard shows of a reward.
type RewardView struct {
	Name       string             `json:"name"`
	Objectives []string           `json:"objectives"`
	Weights    map[string]float64 `json:"weights"` // its defaults
}

// authorization is the request's Authorization header, or the key of the
// dashboard's cookie when there is no header. A cookie is sent by the
// browser whoever wrote the request, so for anything but a read it counts
// only on a request the dashboard could have sent: JSON (another site
// cannot send that without a CORS preflight, which this server never
// answers) from the same origin when the browser names one.
func authorization(ctx *fasthttp.RequestCtx) string {
	if h := ctx.Request.Header.Peek("Authorization"); len(h) > 0 {
		return string(h)
	}
	c := ctx.Request.Header.Cookie(keyCookie)
	if len(c) == 0 {
		return ""
	}
	if !ctx.IsGet() && !ctx.IsHead() && (!sameOrigin(ctx) || !isJSON(ctx.Request.Header.ContentType())) {
		return ""
	}
	key, err := base64.RawURLEncoding.DecodeString(string(c))
	if err != nil {
		return ""
	}
	return "Bearer " + string(key)
}

// isJSON reports whether a Content-Type is JSON's media type, in any case
// and with well-formed parameters (RFC 9110: the type and subtype are
// case-insensitive; every such type needs a CORS preflight).
func isJSON(ct []byte) bool {
	t, _, err := mime.ParseMediaType(string(ct))
	return err == nil && t == "application/json"
}

// sameOrigin reports whether the request's Origin, when it has one, is
// this server as the browser reached it.
func sameOrigin(ctx *fasthttp.RequestCtx) bool {
	o := ctx.Request.Header.Peek("Origin")
	if len(o) == 0 {
		return true
	}
	u, err := url.Parse(string(o))
	return err == nil && u.Host == string(ctx.Host())
}

// toUI answers with a redirect to the dashboard's page, by path: an
// absolute URL would be built from the Host header.
func toUI(ctx *fasthttp.RequestCtx, status int) {
	ctx.Response.Header.Set("Location", "/ui/")
	ctx.SetStatusCode(status)
}

// cookie sets the key cookie (an empty value with a max age of 0 forgets
// it); Secure when the browser reached the server over TLS, directly or
// through a proxy that says so.
func cookie(ctx *fasthttp.RequestCtx, value string, maxAge int) {
	v := keyCookie + "=" + value + "; Path=/; Max-Age=" + strconv.Itoa(maxAge) + "; HttpOnly; SameSite=Strict"
	if ctx.IsTLS() || string(ctx.Request.Header.Peek("X-Forwarded-Proto")) == "https" {
		v += "; Secure"
	}
	ctx.Response.Header.Set("Set-Cookie", v)
}

// dashboard serves /ui/: the login form and, for a known key, the page,
// its assets and its two data endpoints.
func (s *Server) dashboard(ctx *fasthttp.RequestCtx, path, method string) {
	switch {
	case path == "/ui":
		toUI(ctx, fasthttp.StatusFound)
		return
	case (path == "/ui/login" || path == "/ui/logout") && method == "POST" && !sameOrigin(ctx):
		// Another site's form must not sign a browser in or out.
		writeError(ctx, fault.New(fault.ErrForbidden, "", "sign-in and sign-out come from this server's own pages"))
		return
	case path == "/ui/login" && method == "POST":
		s.login(ctx)
		return
	case path == "/ui/logout" && method == "POST":
		cookie(ctx, "", 0)
		toUI(ctx, fasthttp.StatusSeeOther)
		return
	case path == "/ui/login" || path == "/ui/logout":
		ctx.Response.Header.Set("Allow", "POST")
		writeError(ctx, fault.New(wire.ErrMethod, "", "method %s is not allowed on %s", fault.Clip(method, 16), path))
		return
	}
	if method != "GET" && method != "HEAD" {
		ctx.Response.Header.Set("Allow", "GET, HEAD")
		writeError(ctx, fault.New(wire.ErrMethod, "", "method %s is not allowed on %s", fault.Clip(method, 16), fault.Clip(path, 128)))
		return
	}
	if path == "/ui/style.css" {
		// The sign-in form's own look: nothing of the gateway's in it.
		s.uiAsset(ctx, "style.css", path)
		return
	}
	id, err := s.opts.Keys.Identify(ctx, authorization(ctx))
	if err != nil {
		if strings.HasPrefix(path, "/ui/api/") {
			s.identify(ctx) // answers the 401 and counts it
			return
		}
		loginPage(ctx, "")
		return
	}
	switch name := strings.TrimPrefix(path, "/ui/"); name {
	case "api/config":
		s.uiConfig(ctx, id)
	case "api/live":
		s.liveView(ctx, id)
	case "api/preferences":
		s.uiPreferences(ctx, id)
	default:
		s.uiAsset(ctx, name, path)
	}
}

// uiAsset serves one of the dashboard's embedded files.
func (s *Server) uiAsset(ctx *fasthttp.RequestCtx, name, path string) {
	body, ct, ok := ui.Asset(name)
	if !ok {
		writeError(ctx, fault.New(fault.ErrNotFound, "", "unknown path %s", fault.Clip(path, 128)))
		return
	}
	ctx.SetContentType(ct)
	ctx.Response.Header.Set("Cache-Control", "no-cache")
	ctx.Response.Header.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'")
	ctx.SetBody(body)
}

// login checks a key from the form and keeps it in the cookie.
func (s *Server) login(ctx *fasthttp.RequestCtx) {
	key := strings.TrimSpace(string(ctx.PostArgs().Peek("key")))
	if _, err := s.opts.Keys.Identify(ctx, "Bearer "+key); err != nil || key == "" {
		s.metrics.AuthFailure("invalid")
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
		loginPage(ctx, "That key is not known here.")
		return
	}
	cookie(ctx, base64.RawURLEncoding.EncodeToString([]byte(key)), int(12*time.Hour/time.Second))
	toUI(ctx, fasthttp.StatusSeeOther)
}

func loginPage(ctx *fasthttp.RequestCtx, msg string) {
	if ctx.Response.StatusCode() == fasthttp.StatusOK {
		ctx.SetStatusCode(fasthttp.StatusUnauthorized)
	}
	ctx.Response.Header.Set("WWW-Authenticate", `Bearer realm="steergate"`)
	ctx.SetContentType("text/html; charset=utf-8")
	ctx.SetBodyString(`<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Steergate</title><link rel="icon" href="data:,">` +
		`<link rel="stylesheet" href="/ui/style.css"></head><body><main><h1>Steergate</h1><p>The dashboard needs an API key of this gateway.</p>` +
		`<form method="post" action="/ui/login"><label>API key <input name="key" type="password" autocomplete="current-password" autofocus></label> ` +
		`<button>Sign in</button></form><p class="error"` + map[bool]string{true: " hidden", false: ""}[msg == ""] + `>` + html.EscapeString(msg) + `</p></main></body></html>`)
}

// uiConfig is what the dashboard needs to draw its controls.
func (s *Server) uiConfig(ctx *fasthttp.RequestCtx, id prefs.Identity) {
	var models []string
	for _, r := range s.router.List() {
		models = append(models, r.Name)
	}
	out := map[string]any{
		"auth":       !s.opts.Keys.Open(),
		"identity":   map[string]string{"tenant": id.Tenant, "role": id.Role},
		"models":     models,
		"strategies": steering.Names(),
		"rewards":    s.opts.Rewards,
	}
	if p := s.opts.Prefs; p != nil {
		out["default_reward"], out["max_weight"] = p.DefaultReward, p.Learning.Bound
	}
	var exps []string
	for _, e := range s.opts.Experiments.Experiments() {
		exps = append(exps, e.Name)
	}
	out["experiments"] = exps
	writeJSON(ctx, fasthttp.StatusOK, out)
}

// uiPreferences answers what GET /v1/users/{id}/preferences does, with a
// user who has none as {"stored": false} rather than a 404: to the page,
// that is the usual case, not an error.
func (s *Server) uiPreferences(ctx *fasthttp.RequestCtx, id prefs.Identity) {
	svc := s.opts.Prefs
	if svc == nil {
		writeError(ctx, fault.New(fault.ErrNotFound, "", "preferences are not enabled on this gateway"))
		return
	}
	q, err := queryOf(ctx, "user", "tenant", "reward")
	if err != nil {
		writeError(ctx, err)
		return
	}
	user := q["user"]
	if user == "" {
		writeError(ctx, fault.Invalid("user", "user is required"))
		return
	}
	tenant, err := prefs.Scope(id, q["tenant"])
	if err != nil {
		writeError(ctx, err)
		return
	}
	rctx, cancel := context.WithTimeout(s.base, 5*time.Second)
	defer cancel()
	p, name, err := svc.Get(rctx, tenant, user, q["reward"])
	if err != nil {
		writeError(ctx, err)
		return
	}
	out := map[string]any{"user": user, "tenant": tenant, "reward": name, "stored": p != nil}
	if p != nil {
		out["weights"], out["normalize"], out["updates"] = p.Weights, p.Normalize, p.Updates
	}
	writeJSON(ctx, fasthttp.StatusOK, out)
}
