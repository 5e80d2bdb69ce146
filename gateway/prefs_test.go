package gateway_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/backend/reference"
	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/cache/cachetest"
	"github.com/steergate/steergate/gateway"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/prefs"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rules"
	"github.com/steergate/steergate/steering"
)

// Keys of the tests: two tenants' application keys and an admin of the
// first tenant.
var testKeys = prefs.NewKeys(map[string]prefs.Identity{
	prefs.Hash("sk-a"):     {Name: "a", Tenant: "acme", Role: prefs.RoleUser},
	prefs.Hash("sk-b"):     {Name: "b", Tenant: "beta", Role: prefs.RoleUser},
	prefs.Hash("sk-admin"): {Name: "ops", Tenant: "acme", Role: prefs.RoleAdmin},
}, nil)

// prefsGateway serves the reference model steered by the rules reward with
// the given route weights, keys and preference store, and an in-memory
// response cache.
func prefsGateway(t *testing.T, store prefs.Store, routeWeights string, rate float64, more ...func(*gateway.Options)) *env {
	t.Helper()
	rt := backend.NewRouter()
	if err := rt.Add(backend.Route{Name: "reference", Backend: reference.New("reference", reference.Options{}), Target: "reference"}, "reference-ab"); err != nil {
		t.Fatal(err)
	}
	raw, err := rules.New(rules.Config{Keywords: map[string][]string{"helpfulness": {`\bbecause\b`, `\bfirst\b`, `\bhelps?\b`, `\bso\b`, `\bwhich\b`}}})
	if err != nil {
		t.Fatal(err)
	}
	// Fixed normalization puts the objectives that vary on one scale, as
	// an operator would before weighing them against each other.
	r, err := rm.NewShaped(raw, map[string]rm.Normalization{
		"verbosity": {Mean: 32, Std: 15}, "helpfulness": {Mean: 0.1, Std: 0.1}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	infos := map[string]steering.RewardInfo{"default": {Objectives: r.Objectives(), Weights: steering.DefaultWeights(r.Objectives(), nil)}}
	eng := steering.NewEngine(steering.Options{Rewards: map[string]rm.Rewarder{"default": r}, Infos: infos,
		Routes:    map[string]json.RawMessage{"reference": json.RawMessage(`{"weights":` + routeWeights + `}`)},
		Responses: steering.NewResponseCache(cache.NewMemory(1<<20), true, time.Hour, 1<<20, nil), Limits: steering.Limits{MaxSamples: 16}})
	opts := defaultOptions()
	opts.Metrics = metrics.New(prometheus.NewRegistry())
	opts.Keys = testKeys
	opts.Prefs = &prefs.Service{Store: store, LogTTL: time.Hour, DefaultReward: "default",
		Learning: prefs.Learning{Rate: rate, L2: 0.001, Bound: 10},
		Rewards: func(name string) ([]string, bool, bool) {
			if name != "default" {
				return nil, false, false
			}
			return r.Objectives(), false, true
		}}
	for _, f := range more {
		f(&opts)
	}
	return serveWith(t, opts, rt, eng)
}

// call sends a request with a key and returns its status, headers and
// body.
func call(t *testing.T, method, url, key, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// Every endpoint under /v1 wants a key, and a key reaches only its own
// tenant, unless it is an admin's.
func TestAuthorization(t *testing.T) {
	e := prefsGateway(t, prefs.NewMemory(100, 100), `{}`, 0.5)
	chat := `{"model":"reference","messages":[{"role":"user","content":"hi"}],"max_tokens":4}`
	prefsURL := e.url + "/v1/users/alice/preferences"
	for _, ep := range []struct{ method, url, body string }{
		{"POST", e.url + "/v1/chat/completions", chat},
		{"POST", e.url + "/v1/completions", `{"model":"reference","prompt":"hi","max_tokens":4}`},
		{"GET", e.url + "/v1/models", ""},
		{"GET", prefsURL, ""},
		{"PUT", prefsURL, `{"weights":{"verbosity":1}}`},
		{"DELETE", prefsURL, ""},
		{"POST", e.url + "/v1/feedback", `{"response_id":"x","rating":1}`},
	} {
		for _, key := range []string{"", "sk-wrong"} {
			status, h, body := call(t, ep.method, ep.url, key, ep.body)
			if status != 401 || h.Get("WWW-Authenticate") == "" || !strings.Contains(body, `"code":"invalid_api_key"`) {
				t.Errorf("%s %s with key %q: %d %s", ep.method, ep.url, key, status, body)
			}
		}
	}
	if status, _, _ := call(t, "GET", e.url+"/healthz", "", ""); status != 200 {
		t.Errorf("/healthz wants a key: %d", status)
	}
	// The official SDK sends its key as OpenAI's does.
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{Model: "reference", Messages: userMsg("hi"), MaxTokens: openai.Int(4)}
	sdk := func(key string) *openai.Client {
		c := openai.NewClient(option.WithBaseURL(e.url+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
		return &c
	}
	if _, err := sdk("sk-a").Chat.Completions.New(ctx, params); err != nil {
		t.Errorf("SDK with a key: %v", err)
	}
	var apiErr *openai.Error
	if _, err := sdk("sk-nope").Chat.Completions.New(ctx, params); !errors.As(err, &apiErr) || apiErr.StatusCode != 401 || apiErr.Code != "invalid_api_key" {
		t.Errorf("SDK with a wrong key: %v", err)
	}
	_, _, m := call(t, "GET", e.url+"/metrics", "", "")
	for _, want := range []string{`steergate_auth_failures_total{reason="missing"} 7`, `steergate_auth_failures_total{reason="invalid"} 8`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	// A path whose dot segments resolve out of /v1/ wants a key too
	// (/v1/users/..%2F..%2Fx/preferences is /x/preferences decoded, and
	// user ../../x as sent).
	escaped := e.url + "/v1/users/..%2F..%2Fx/preferences"
	for _, method := range []string{"GET", "PUT", "DELETE"} {
		if status, _, body := call(t, method, escaped, "", `{"weights":{"verbosity":1}}`); status != 401 {
			t.Errorf("%s %s without a key: %d %s", method, escaped, status, body)
		}
	}
	// Each role on its own tenant, another tenant, and any tenant.
	if status, _, body := call(t, "PUT", prefsURL, "sk-a", `{"weights":{"verbosity":1}}`); status != 200 {
		t.Fatalf("user key, own tenant: %d %s", status, body)
	}
	if status, _, body := call(t, "GET", prefsURL+"?tenant=beta", "sk-a", ""); status != 403 || !strings.Contains(body, `"param":"tenant"`) {
		t.Errorf("user key, another tenant: %d %s", status, body)
	}
	if status, _, _ := call(t, "GET", prefsURL, "sk-b", ""); status != 404 {
		t.Errorf("tenant beta sees acme's alice: %d", status)
	}
	if status, _, body := call(t, "GET", prefsURL, "sk-admin", ""); status != 200 || !strings.Contains(body, `"verbosity":1`) {
		t.Errorf("admin, own tenant: %d %s", status, body)
	}
	if status, _, body := call(t, "PUT", prefsURL+"?tenant=beta", "sk-admin", `{"weights":{"verbosity":-1}}`); status != 200 {
		t.Errorf("admin, another tenant: %d %s", status, body)
	}
	if status, _, body := call(t, "GET", prefsURL, "sk-b", ""); status != 200 || !strings.Contains(body, `"verbosity":-1`) {
		t.Errorf("beta's alice after the admin wrote it: %d %s", status, body)
	}
	// Bad preferences are refused by name, and nothing changes.
	for body, param := range map[string]string{
		`{"weights":{"kindness":1}}`:                "weights.kindness",
		`{"weights":{"verbosity":99}}`:              "weights.verbosity",
		`{"weights":{"verbosity":1},"x":1}`:         "x",
		`{"weights":[]}`:                            "weights",
		`{"weights":{"verbosity":"NaN"}}`:           "weights.verbosity",
		`{"weights":{"verbosity":null}}`:            "weights.verbosity",
		`{"weights":{"verbosity":1,"verbosity":2}}`: "weights.verbosity",
		`{"Weights":{"verbosity":1}}`:               "weights",
		`{"weights":{"verbosity":1},"weights":{}}`:  "weights",
	} {
		status, _, got := call(t, "PUT", prefsURL, "sk-a", body)
		if status != 400 || !strings.Contains(got, `"param":`+paramJSON(param)) {
			t.Errorf("%s: %d %s, want 400 naming %q", body, status, got, param)
		}
	}
	// Query parameters are read as the endpoint names them, once each.
	for query, param := range map[string]string{
		"?Tenant=beta":             "Tenant",
		"?tenant=acme&tenant=beta": "tenant",
		"?reward=default&x=1":      "x",
		"?tenant=":                 "tenant",
		"?tenant=%ff":              "tenant",
	} {
		status, _, got := call(t, "PUT", prefsURL+query, "sk-admin", `{"weights":{"verbosity":-2}}`)
		if status != 400 || !strings.Contains(got, `"param":`+paramJSON(param)) {
			t.Errorf("%s: %d %s, want 400 naming %q", query, status, got, param)
		}
	}
	if _, _, body := call(t, "GET", prefsURL, "sk-a", ""); !strings.Contains(body, `"verbosity":1`) {
		t.Errorf("refused writes changed the weights: %s", body)
	}
	if status, _, _ := call(t, "DELETE", prefsURL, "sk-a", ""); status != 204 {
		t.Errorf("delete: %d", status)
	}
	if status, _, _ := call(t, "DELETE", prefsURL, "sk-a", ""); status != 404 {
		t.Errorf("delete twice: %d", status)
	}
}

func paramJSON(p string) string {
	if p == "" {
		return "null"
	}
	b, _ := json.Marshal(p)
	return string(b)
}

type steered struct {
	ID       string `json:"id"`
	Steering struct {
		Weights    map[string]float64 `json:"weights"`
		Candidates []struct {
			Index      int                `json:"index"`
			Chosen     bool               `json:"chosen"`
			Objectives map[string]float64 `json:"objectives"`
		} `json:"candidates"`
	} `json:"steering"`
}

func (s steered) chosen() int {
	for _, c := range s.Steering.Candidates {
		if c.Chosen {
			return c.Index
		}
	}
	return -1
}

func ask(t *testing.T, e *env, key, user string, seed int) (steered, string) {
	t.Helper()
	status, h, body := call(t, "POST", e.url+"/v1/chat/completions", key, fmt.Sprintf(
		`{"model":"reference","user":%q,"seed":%d,"max_tokens":48,"messages":[{"role":"user","content":"Why is the sky blue?"}],"steering":{"strategy":"best_of_n","n":8}}`, user, seed))
	if status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	var s steered
	if err := json.Unmarshal([]byte(body), &s); err != nil {
		t.Fatal(err)
	}
	return s, h.Get("X-Cache")
}

// A user id is its path segment as sent, escapes undone but nothing
// resolved: x%2F..%2Falice is a user of its own, never alice, and an id
// with a slash (org%2Fhank) is reachable.
func TestUserIDIsTheSegmentAsSent(t *testing.T) {
	e := prefsGateway(t, prefs.NewMemory(100, 100), `{"helpfulness":1,"repetition":-1,"verbosity":0}`, 0.5)
	for _, c := range []struct{ method, path, body string }{
		{"PUT", "/v1/users/alice/preferences", `{"weights":{"verbosity":1}}`},
		{"PUT", "/v1/users/x%2F..%2Falice/preferences", `{"weights":{"verbosity":-1}}`},
		{"DELETE", "/v1/users/y%2F..%2Falice/preferences", ``},
		{"PUT", "/v1/users/org%2Fhank/preferences", `{"weights":{"verbosity":0.5}}`},
	} {
		call(t, c.method, e.url+c.path, "sk-a", c.body)
	}
	if status, _, body := call(t, "GET", e.url+"/v1/users/alice/preferences", "sk-a", ""); status != 200 || !strings.Contains(body, `"verbosity":1`) {
		t.Errorf("alice after requests about other ids: %d %s", status, body)
	}
	if status, _, body := call(t, "GET", e.url+"/v1/users/org%2Fhank/preferences", "sk-a", ""); status != 200 || !strings.Contains(body, `"user":"org/hank"`) {
		t.Errorf("org/hank: %d %s", status, body)
	}
	// An id that is no UTF-8 text names no user a request could name.
	if status, _, body := call(t, "PUT", e.url+"/v1/users/%ff%fe/preferences", "sk-a", `{"weights":{"verbosity":1}}`); status != 400 || !strings.Contains(body, `"param":"user"`) {
		t.Errorf("a user id that is not UTF-8: %d %s", status, body)
	}
}

// A user's verbosity weight decides which candidate best-of-N picks for
// that user, and only for that user; the response cache never answers one
// user with another's choice.
func TestUserWeightsChangeTheChoice(t *testing.T) {
	e := prefsGateway(t, prefs.NewMemory(100, 100), `{"helpfulness":1,"repetition":-1,"verbosity":0}`, 0.5)
	put := func(v float64) {
		if status, _, body := call(t, "PUT", e.url+"/v1/users/alice/preferences", "sk-a", fmt.Sprintf(`{"weights":{"verbosity":%g}}`, v)); status != 200 {
			t.Fatalf("%d %s", status, body)
		}
	}
	put(1)
	long, cache := ask(t, e, "sk-a", "alice", 3)
	if long.Steering.Weights["verbosity"] != 1 || cache != "miss" {
		t.Fatalf("weights %v, cache %s", long.Steering.Weights, cache)
	}
	bob, _ := ask(t, e, "sk-a", "bob", 3)
	if bob.Steering.Weights["verbosity"] != 0 {
		t.Errorf("bob has alice's weights: %v", bob.Steering.Weights)
	}
	put(-1)
	short, cache := ask(t, e, "sk-a", "alice", 3)
	if short.Steering.Weights["verbosity"] != -1 || cache != "miss" {
		t.Fatalf("after the change: weights %v, cache %s (a hit would be the old choice)", short.Steering.Weights, cache)
	}
	if long.chosen() == short.chosen() {
		t.Errorf("verbosity +1 and −1 chose the same candidate %d", long.chosen())
	}
	// The same user and weights hit the cache; the same request from
	// another tenant's alice does not.
	if again, cache := ask(t, e, "sk-a", "alice", 3); cache != "hit" || again.chosen() != short.chosen() {
		t.Errorf("repeat: %s, chose %d", cache, again.chosen())
	}
	if other, cache := ask(t, e, "sk-b", "alice", 3); cache != "miss" || other.Steering.Weights["verbosity"] != 0 {
		t.Errorf("beta's alice: %s, weights %v", cache, other.Steering.Weights)
	}
}

// Feedback that does not check is refused with a clear 4xx and changes
// nothing; a repeated feedback id counts once.
func TestFeedbackOverHTTP(t *testing.T) {
	e := prefsGateway(t, prefs.NewMemory(100, 100), `{}`, 0.5)
	r, _ := ask(t, e, "sk-a", "alice", 1)
	theirs, _ := ask(t, e, "sk-b", "carol", 1)
	fb := func(key, body string) (int, string) {
		status, _, got := call(t, "POST", e.url+"/v1/feedback", key, body)
		return status, got
	}
	for body, want := range map[string]string{
		`{"response_id":"chatcmpl-nope","rating":1}`:                 `404`,
		`{"response_id":"` + theirs.ID + `","rating":1}`:             `404`,
		`{"response_id":"` + r.ID + `","rating":2}`:                  `400 rating`,
		`{"response_id":"` + r.ID + `","chosen":0,"rejected":99}`:    `400 rejected`,
		`{"response_id":"` + r.ID + `","rating":1,"chosen":0}`:       `400 chosen`,
		`{"response_id":"` + r.ID + `","rating":1,"stars":5}`:        `400 stars`,
		`{"response_id":"` + r.ID + `","rating":1,"feedback_id":""}`: `400 feedback_id`,
	} {
		status, got := fb("sk-a", body)
		code, param, _ := strings.Cut(want, " ")
		if fmt.Sprint(status) != code || param != "" && !strings.Contains(got, `"param":"`+param+`"`) {
			t.Errorf("%s: %d %s, want %s", body, status, got, want)
		}
	}
	status, _, got := call(t, "POST", e.url+"/v1/feedback?tenant=acme&tenant=beta", "sk-a", `{"response_id":"`+r.ID+`","rating":1}`)
	if status != 400 || !strings.Contains(got, `"param":"tenant"`) {
		t.Errorf("tenant given twice: %d %s", status, got)
	}
	if status, _, _ := call(t, "GET", e.url+"/v1/users/alice/preferences", "sk-a", ""); status != 404 {
		t.Fatalf("refused feedback created preferences: %d", status)
	}
	body := `{"response_id":"` + r.ID + `","chosen":0,"rejected":1,"feedback_id":"f-1"}`
	if status, got := fb("sk-a", body); status != 200 || !strings.Contains(got, `"updates":1`) {
		t.Fatalf("%d %s", status, got)
	}
	if status, got := fb("sk-a", body); status != 200 || !strings.Contains(got, `"duplicate":true`) || !strings.Contains(got, `"updates":1`) {
		t.Errorf("repeated: %d %s", status, got)
	}
	// A PUT replaces the learned weights: they have learned from nothing.
	if status, _, got := call(t, "PUT", e.url+"/v1/users/alice/preferences", "sk-a", `{"weights":{"verbosity":1}}`); status != 200 || !strings.Contains(got, `"updates":0`) {
		t.Errorf("after a PUT: %d %s", status, got)
	}
	_, _, m := call(t, "GET", e.url+"/metrics", "", "")
	for _, want := range []string{
		`steergate_feedback_total{class="config",kind="candidates",outcome="learned"} 1`,
		`steergate_feedback_total{class="config",kind="candidates",outcome="duplicate"} 1`,
		`steergate_feedback_total{class="config",kind="rating",outcome="refused"} 4`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// slowLog takes its time to log a response, as a Redis far away does.
type slowLog struct{ prefs.Store }

func (s slowLog) LogResponse(ctx context.Context, r *prefs.Response, ttl time.Duration) error {
	time.Sleep(100 * time.Millisecond)
	return s.Store.LogResponse(ctx, r, ttl)
}

// A streamed response is in the log by the time its client reads [DONE]:
// feedback sent at once, before the stream's last chunk, finds it.
func TestStreamedResponseIsRateableAtDone(t *testing.T) {
	e := prefsGateway(t, slowLog{prefs.NewMemory(100, 100)}, `{}`, 0.5)
	req, _ := http.NewRequest("POST", e.url+"/v1/chat/completions", strings.NewReader(
		`{"model":"reference","messages":[{"role":"user","content":"Why is the sky blue?"}],"max_tokens":8,"user":"alice","stream":true,"steering":{"strategy":"best_of_n","n":2}}`))
	req.Header.Set("Authorization", "Bearer sk-a")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var id string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() && sc.Text() != "data: [DONE]" {
		if m := regexp.MustCompile(`"id":"([^"]+)"`).FindStringSubmatch(sc.Text()); m != nil {
			id = m[1]
		}
	}
	if resp.StatusCode != 200 || id == "" {
		t.Fatalf("status %d, id %q", resp.StatusCode, id)
	}
	if status, _, got := call(t, "POST", e.url+"/v1/feedback", "sk-a", `{"response_id":"`+id+`","chosen":0,"rejected":1}`); status != 200 {
		t.Errorf("feedback on a stream just ended: %d %s", status, got)
	}
}

func cosine(a, b map[string]float64) float64 {
	var dot, na, nb float64
	for k := range a {
		dot += a[k] * b[k]
		na += a[k] * a[k]
	}
	for _, v := range b {
		nb += v * v
	}
	return dot / math.Sqrt(na*nb)
}

// Simulated users with hidden weights choose between two candidates of
// each best-of-N answer by a Bradley–Terry draw on their own utilities;
// within 200 events the weights learned from their choices point where
// theirs do (cosine at least 0.9). The hidden weights lie on the
// objectives the reference model's answers vary in: no feedback can
// reveal a weight on an objective every candidate scores alike.
func TestFeedbackLearnsHiddenWeights(t *testing.T) {
	e := prefsGateway(t, prefs.NewMemory(100, 1000), `{"helpfulness":0,"repetition":0,"verbosity":0,"format":0,"tool_calls":0}`, 0.5)
	for ui, hidden := range []map[string]float64{
		{"helpfulness": 2, "repetition": 0, "verbosity": -1, "format": 0, "tool_calls": 0},
		{"helpfulness": -1, "repetition": 0, "verbosity": 1.5, "format": 0, "tool_calls": 0},
		{"helpfulness": 1, "repetition": 0, "verbosity": 1, "format": 0, "tool_calls": 0},
	} {
		user := fmt.Sprintf("sim-%d", ui)
		rng := rand.New(rand.NewPCG(uint64(ui), 7))
		var learned map[string]float64
		for ev := range 200 {
			r, _ := ask(t, e, "sk-a", user, 1000*ui+ev)
			cs := r.Steering.Candidates
			i, j := rng.IntN(len(cs)), rng.IntN(len(cs)-1)
			if j >= i {
				j++
			}
			var d float64
			for k, w := range hidden {
				d += w * (cs[i].Objectives[k] - cs[j].Objectives[k])
			}
			chosen, rejected := cs[i].Index, cs[j].Index
			if rng.Float64() >= 1/(1+math.Exp(-d)) {
				chosen, rejected = rejected, chosen
			}
			status, _, body := call(t, "POST", e.url+"/v1/feedback", "sk-a",
				fmt.Sprintf(`{"response_id":%q,"chosen":%d,"rejected":%d}`, r.ID, chosen, rejected))
			if status != 200 {
				t.Fatalf("event %d: %d %s", ev, status, body)
			}
			var out struct {
				Weights map[string]float64 `json:"weights"`
			}
			json.Unmarshal([]byte(body), &out)
			learned = out.Weights
		}
		if c := cosine(hidden, learned); c < 0.9 {
			t.Errorf("user %d: learned %v, hidden %v: cosine %.3f", ui, learned, hidden, c)
		} else {
			t.Logf("user %d: cosine %.3f after 200 events: %v", ui, c, learned)
		}
	}
}

// Two replicas sharing Redis see the same preferences and learn from
// feedback given to either.
func TestReplicasSharePreferences(t *testing.T) {
	srv := cachetest.StartRedis(t)
	var es []*env
	for range 2 {
		es = append(es, prefsGateway(t, prefs.NewRedis(srv.Client(), "sg:"), `{}`, 0.5))
	}
	if status, _, body := call(t, "PUT", es[0].url+"/v1/users/alice/preferences", "sk-a", `{"weights":{"helpfulness":2}}`); status != 200 {
		t.Fatalf("%d %s", status, body)
	}
	if _, _, body := call(t, "GET", es[1].url+"/v1/users/alice/preferences", "sk-a", ""); !strings.Contains(body, `"helpfulness":2`) {
		t.Errorf("the other replica: %s", body)
	}
	r, _ := ask(t, es[1], "sk-a", "alice", 9)
	if r.Steering.Weights["helpfulness"] != 2 {
		t.Errorf("replica 2 steered with %v", r.Steering.Weights)
	}
	if status, _, body := call(t, "POST", es[0].url+"/v1/feedback", "sk-a", `{"response_id":"`+r.ID+`","rating":"up"}`); status != 200 {
		t.Fatalf("feedback to replica 1 on replica 2's answer: %d %s", status, body)
	}
	if _, _, body := call(t, "GET", es[1].url+"/v1/users/alice/preferences", "sk-a", ""); !strings.Contains(body, `"updates":1`) {
		t.Errorf("replica 2 after feedback to replica 1: %s", body)
	}
	_ = context.Background
}
