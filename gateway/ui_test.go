package gateway_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/steergate/steergate/prefs"
)

// The dashboard is behind the API keys: without one a page gets the
// login form (401) and its data endpoints a 401 envelope; a key given to
// the form becomes an HttpOnly, SameSite=Strict cookie that the page's
// own calls then carry, within the key's tenant and role.
func TestDashboardWantsAKey(t *testing.T) {
	e := prefsGateway(t, prefs.NewMemory(100, 100), `{}`, 0.5)
	for _, path := range []string{"/ui/", "/ui/app.js"} {
		status, _, body := call(t, "GET", e.url+path, "", "")
		if status != 401 || !strings.Contains(body, `<form method="post" action="/ui/login">`) {
			t.Errorf("%s without a key: %d %.80s", path, status, body)
		}
	}
	// The sign-in form's stylesheet comes without a key.
	if status, h, body := call(t, "GET", e.url+"/ui/style.css", "", ""); status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/css") || strings.Contains(body, "<form") {
		t.Errorf("/ui/style.css without a key: %d %s", status, h.Get("Content-Type"))
	}
	if status, _, body := call(t, "GET", e.url+"/ui/api/config", "", ""); status != 401 || !strings.Contains(body, `"invalid_api_key"`) {
		t.Errorf("/ui/api/config without a key: %d %s", status, body)
	}
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	resp, err := c.PostForm(e.url+"/ui/login", url.Values{"key": {"sk-wrong"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("a wrong key signs in: %d", resp.StatusCode)
	}
	resp, err = c.PostForm(e.url+"/ui/login", url.Values{"key": {"sk-a"}})
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(page), `<script src="app.js">`) {
		t.Fatalf("after signing in: %d %.80s", resp.StatusCode, page)
	}
	u, _ := url.Parse(e.url)
	if cs := jar.Cookies(u); len(cs) != 1 || strings.Contains(cs[0].Value, "sk-a") {
		t.Errorf("cookies %v: want one, not the key in clear", cs)
	}
	get := func(path string) (int, string) {
		resp, err := c.Get(e.url + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := get("/ui/api/config"); status != 200 || !strings.Contains(body, `"tenant":"acme"`) || !strings.Contains(body, `"role":"user"`) {
		t.Errorf("config: %d %s", status, body)
	}
	if status, body := get("/ui/api/preferences?user=nobody"); status != 200 || !strings.Contains(body, `"stored":false`) {
		t.Errorf("preferences of a user without any: %d %s", status, body)
	}
	// The cookie speaks for its key on the API too, with the key's role.
	if status, _ := get("/v1/models"); status != 200 {
		t.Errorf("/v1/models with the cookie: %d", status)
	}
	if status, _ := get("/v1/experiments"); status != 403 {
		t.Errorf("a user key reads experiment results: %d", status)
	}
	if status, _ := get("/ui/api/preferences?user=x&tenant=beta"); status != 403 {
		t.Errorf("a user key reads another tenant's preferences: %d", status)
	}
	if status, body := get("/ui/api/preferences?user=x&User=y"); status != 400 || !strings.Contains(body, `"param":"User"`) {
		t.Errorf("an unknown query parameter: %d %s", status, body)
	}
	// For anything but a read, the cookie counts only on JSON from this
	// origin: another site's form or script gets nothing from it.
	post := func(ct, origin string) int {
		req, _ := http.NewRequest("POST", e.url+"/v1/chat/completions", strings.NewReader(`{"model":"reference","max_tokens":4,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Content-Type", ct)
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		ct, origin string
		want       int
	}{{"application/json", "", 200}, {"application/json", e.url, 200}, {"Application/JSON; charset=utf-8", "", 200},
		{"text/plain", "", 401}, {"application/jsonp", "", 401}, {"application/json", "http://evil.example", 401}} {
		if got := post(tc.ct, tc.origin); got != tc.want {
			t.Errorf("a POST with the cookie, %s from %q: %d, want %d", tc.ct, tc.origin, got, tc.want)
		}
	}
	req, _ := http.NewRequest("POST", e.url+"/ui/login", strings.NewReader("key=sk-b"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 || resp.Header.Get("Set-Cookie") != "" {
		t.Errorf("another site's sign-in form: %v %v", resp.StatusCode, err)
	}
	if status, h, _ := call(t, "GET", e.url+"/ui/login", "", ""); status != 405 || h.Get("Allow") != "POST" {
		t.Errorf("GET /ui/login: %d, Allow %q", status, h.Get("Allow"))
	}
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ = http.NewRequest("GET", e.url+"/ui", nil)
	req.Host = "evil.example"
	if resp, err := noFollow.Do(req); err != nil || resp.Header.Get("Location") != "/ui/" {
		t.Errorf("the redirect is not by path: %v %v", resp.Header.Get("Location"), err)
	}
	// A header wins over the cookie.
	req, _ = http.NewRequest("GET", e.url+"/v1/experiments", nil)
	req.Header.Set("Authorization", "Bearer sk-admin")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("an admin header with a user cookie: %d", resp.StatusCode)
	}
}

// liveEvents reads the live view for a while and returns its events.
func liveEvents(t *testing.T, e *env, key string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/ui/api/live", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		t.Fatalf("live view: %d %s", resp.StatusCode, ct)
	}
	b, _ := io.ReadAll(resp.Body) // until the deadline
	var out []map[string]any
	for _, line := range strings.Split(string(b), "\n") {
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var ev map[string]any
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				t.Fatalf("%v: %s", err, data)
			}
			out = append(out, ev)
		}
	}
	return out
}

// The live view shows a user key its own tenant's requests, an admin
// every tenant's, each with the chosen and the runner-up candidate.
func TestLiveViewKeepsTenantsApart(t *testing.T) {
	e := prefsGateway(t, prefs.NewMemory(100, 100), `{}`, 0.5)
	// A view with nothing to show yet still opens at once.
	if evs := liveEvents(t, e, "sk-a"); len(evs) != 0 {
		t.Errorf("events before any request: %v", evs)
	}
	ask(t, e, "sk-a", "alice", 1)
	ask(t, e, "sk-b", "bob", 2)
	ask(t, e, "sk-b", "bob", 3)
	count := func(evs []map[string]any) (n int) {
		for _, ev := range evs {
			if cs, _ := ev["candidates"].([]any); ev["strategy"] == "best_of_n" && len(cs) == 2 {
				n++
			}
		}
		return n
	}
	if a, b, admin := liveEvents(t, e, "sk-a"), liveEvents(t, e, "sk-b"), liveEvents(t, e, "sk-admin"); len(a) != 1 || len(b) != 2 || len(admin) != 3 || count(admin) != 3 {
		t.Errorf("events seen: tenant a %d, tenant b %d, admin %d (%d with two candidates)", len(a), len(b), len(admin), count(admin))
	}
	// A request refused before its model is known is its tenant's too, and
	// a model name as long as a body is kept short.
	call(t, "POST", e.url+"/v1/chat/completions", "sk-b", `{"model":"reference",`)
	call(t, "POST", e.url+"/v1/chat/completions", "sk-b", `{"model":"`+strings.Repeat("M", 100000)+`","messages":[{"role":"user","content":"hi"}]}`)
	b := liveEvents(t, e, "sk-b")
	if len(b) != 4 || b[2]["status"] != float64(400) || len(b[3]["model"].(string)) > 300 {
		t.Errorf("tenant b's refused requests: %d events, %v", len(b), b[len(b)-1]["status"])
	}
	// One tenant cannot hold every view open.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	retryAfter := ""
	open := func(key string) int {
		req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/ui/api/live", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			resp.Body.Close()
		}
		retryAfter = resp.Header.Get("Retry-After")
		return resp.StatusCode
	}
	for i := range 4 {
		// The views read above free their slots as the server sees them go.
		deadline := time.Now().Add(5 * time.Second)
		for status := open("sk-b"); status != 200; status = open("sk-b") {
			if time.Now().After(deadline) {
				t.Fatalf("view %d of tenant b: %d", i+1, status)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	if status := open("sk-b"); status != 503 || retryAfter != "5" {
		t.Errorf("a fifth view of one tenant: %d, Retry-After %q, want 503 and 5", status, retryAfter)
	}
	if status := open("sk-a"); status != 200 {
		t.Errorf("another tenant's view while b holds four: %d", status)
	}
}
