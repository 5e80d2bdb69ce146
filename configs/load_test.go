package configs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestGoodFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/good/*.yaml")
	shipped, _ := filepath.Glob("*.yaml")
	// production.yaml reads its API key hashes from the environment.
	t.Setenv("APP_KEY_SHA256", strings.Repeat("a", 64))
	t.Setenv("ADMIN_KEY_SHA256", strings.Repeat("b", 64))
	for _, f := range append(files, shipped...) {
		t.Run(f, func(t *testing.T) {
			if _, err := Load(f); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestBadFiles(t *testing.T) {
	files, _ := filepath.Glob("testdata/bad/*.yaml")
	if len(files) == 0 {
		t.Fatal("no bad files")
	}
	for _, f := range files {
		t.Run(f, func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(strings.TrimPrefix(f, "testdata/"), mustRead(t, f))
			if err == nil {
				t.Fatal("loaded a bad file")
			}
			if !strings.Contains(err.Error(), strings.TrimSpace(string(want))) {
				t.Errorf("error:\n%v\nwant it to contain:\n%s", err, want)
			}
		})
	}
}

func mustRead(t *testing.T, f string) []byte {
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDefaultsAndEffective(t *testing.T) {
	cfg, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:9090" || cfg.Server.RequestTimeout != time.Minute || cfg.Server.MaxQueue != 1024 {
		t.Errorf("server %+v", cfg.Server)
	}
	if b := cfg.Backends["v"]; b.Timeout != 5*time.Minute || b.MaxConcurrency != 64 || b.APIKey != "sk-secret" {
		t.Errorf("backend defaults %+v", b)
	}
	out, err := Effective(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "sk-secret") || !strings.Contains(string(out), "REDACTED") {
		t.Errorf("secret not redacted:\n%s", out)
	}
	if !strings.Contains(string(out), "request_timeout: 1m0s") {
		t.Errorf("durations not readable:\n%s", out)
	}
}

func TestEnvironment(t *testing.T) {
	t.Setenv("STEERGATE_SERVER_LISTEN", "127.0.0.1:7000")
	t.Setenv("STEERGATE_SERVER_MAX_N", "4")
	t.Setenv("STEERGATE_BACKENDS_O_URL", "http://10.0.0.1:11434")
	t.Setenv("OLLAMA_HOST", "")
	cfg, err := Load("testdata/good/full.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.Listen != "127.0.0.1:7000" || cfg.Server.MaxN != 4 {
		t.Errorf("env overrides not applied: %+v", cfg.Server)
	}
	if cfg.Backends["o"].URL != "http://10.0.0.1:11434" {
		t.Errorf("map entry override: %q", cfg.Backends["o"].URL)
	}
	t.Setenv("STEERGATE_SERVER_MAX_N", "zero")
	if _, err := Load("testdata/good/full.yaml"); err == nil || !strings.Contains(err.Error(), "server.max_n") {
		t.Errorf("bad env value: %v", err)
	}
}

func TestExpand(t *testing.T) {
	t.Setenv("OLLAMA_HOST", "")
	cfg, err := Load("ollama.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backends["ollama"].URL != "127.0.0.1:11434" {
		t.Errorf("default not used: %q", cfg.Backends["ollama"].URL)
	}
	t.Setenv("OLLAMA_HOST", "gpu-box:11434")
	cfg, err = Load("ollama.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backends["ollama"].URL != "gpu-box:11434" {
		t.Errorf("OLLAMA_HOST not used: %q", cfg.Backends["ollama"].URL)
	}
}

func TestEmbeddedDefault(t *testing.T) {
	dir := t.TempDir()
	wd, _ := os.Getwd()
	t.Chdir(dir)
	defer t.Chdir(wd)
	if _, err := Load(DefaultFile); err != nil {
		t.Fatalf("embedded default: %v", err)
	}
	if _, err := Load("nothere.yaml"); err == nil || !strings.Contains(err.Error(), "nothere.yaml: cannot read config") {
		t.Errorf("missing file: %v", err)
	}
}

func TestSectionEnvironmentVariableIsRefused(t *testing.T) {
	t.Setenv("STEERGATE_CACHE", "/tmp/somewhere")
	_, err := Load("testdata/good/minimal.yaml")
	if err == nil || !strings.Contains(err.Error(), "STEERGATE_CACHE would replace the whole cache section") {
		t.Errorf("err = %v", err)
	}
}

// check-config prints a URL's password redacted, as it does api_key.
func TestEffectiveRedactsURLPasswords(t *testing.T) {
	cfg, err := Parse("pw.yaml", []byte("backends:\n  up: {type: openai, url: \"https://svc:hunter2@llm.internal/v1\"}\nmodels:\n  - {name: m, backend: up}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Effective(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "hunter2") || !strings.Contains(string(out), "https://svc:xxxxx@llm.internal/v1") {
		t.Errorf("effective config:\n%s", out)
	}
}

// Addresses check-config passes can be listened on or called.
func TestAddressesAreUsable(t *testing.T) {
	for _, c := range []struct{ yaml, want string }{
		{"server: {listen: \"127.0.0.1:99999\"}\nbackends: {r: {type: reference}}\n", `a.yaml:server.listen: must be host:port with a port of 0 to 65535; got "127.0.0.1:99999"`},
		{"server: {listen: \"127.0.0.1:http\"}\nbackends: {r: {type: reference}}\n", `a.yaml:server.listen: must be host:port with a port of 0 to 65535`},
		{"server: {listen: \"127.0.0.1:+8080\"}\nbackends: {r: {type: reference}}\n", `a.yaml:server.listen: must be host:port with a port of 0 to 65535`},
		{"server: {listen: \"127.0.0.1:08080\"}\nbackends: {r: {type: reference}}\n", `a.yaml:server.listen: must be host:port with a port of 0 to 65535`},
		{"server: {listen: \" 127.0.0.1:8080\"}\nbackends: {r: {type: reference}}\n", `a.yaml:server.listen: has a space in its host`},
		{"backends: {up: {type: openai, url: \"http:/h/v1\"}}\n", `a.yaml:backends.up.url: is not a valid URL: "http:/h/v1"`},
		{"backends: {up: {type: ollama, url: \"h:99999\"}}\n", `a.yaml:backends.up.url: has a port outside 1 to 65535, written as digits with no leading zero: "h:99999"`},
		{"backends: {r: {type: reference, url: \"http://h:1\"}}\n", `a.yaml:backends.r.url: does not apply to a reference backend`},
		{"backends: {r: {type: reference}}\nmodels: [{name: foo, backend: r}]\n", `a.yaml:models[0].model: the reference backend serves the model "reference" only; write model: reference (got "foo")`},
		{"backends: {r: {type: reference}}\nmodels: [{name: reference, backend: r, aliases: [\"\"]}]\n", `a.yaml:models[0].aliases[0]: is empty`},
		{"backends: {up: {type: openai, url: \"gopher://h:70/v1\"}}\n", `a.yaml:backends.up.url: must be an http:// or https:// URL; got "gopher://h:70/v1"`},
		{"backends: {up: {type: openai, url: \"http://h:99999/v1\"}}\n", `a.yaml:backends.up.url: has a port outside 1 to 65535, written as digits with no leading zero: "http://h:99999/v1"`},
		{"backends: {up: {type: ollama, url: \"h:0\"}}\n", `a.yaml:backends.up.url: has a port outside 1 to 65535`},
		{"backends: {up: {type: openai, url: \"http://h:8000/v1?x=1\"}}\n", `a.yaml:backends.up.url: must have no query or fragment (the gateway appends its paths to it): "http://h:8000/v1?x=1"`},
		{"backends: {up: {type: openai, url: \"http://h:8000/v1#f\"}}\n", `a.yaml:backends.up.url: must have no query or fragment`},
		{"backends: {up: {type: openai, url: \"h:8000\"}}\n", `a.yaml:backends.up.url: must be an http:// or https:// URL; got "h:8000"`},
		// A password stays out of the messages, as out of the effective config.
		{"backends: {up: {type: openai, url: \"http://u:secretpw1@h:99999/v1\"}}\n", `a.yaml:backends.up.url: has a port outside 1 to 65535, written as digits with no leading zero: "http://u:xxxxx@h:99999/v1"`},
		{"backends: {up: {type: openai, url: \"http://u:secretpw1@h:8000/v1?x\"}}\n", `"http://u:xxxxx@h:8000/v1?x"`},
		{"backends: {up: {type: openai, url: \"http://u:secretpw1@/v1\"}}\n", `has no host: "http://u:xxxxx@/v1"`},
		{"backends: {up: {type: openai, url: \"http://u:secretpw1@h:x/v1\"}}\n", `is not a valid URL: invalid port ":x" after host: "http://u:xxxxx@h:x/v1"`},
		{"backends: {r: {type: reference}}\ncache: {redis: {addrs: [\"r:0\"]}}\n", `a.yaml:cache.redis.addrs[0]: must be host:port with a port of 1 to 65535; got "r:0"`},
		{"backends: {r: {type: reference}}\nmodels: [{name: reference, backend: r}]\nexperiments: [{name: \"..\", models: [reference], arms: [{name: a, steering: {strategy: none}}, {name: b, steering: {strategy: none}}]}]\n",
			`a.yaml:experiments[0].name: must not contain '/', '?', '#', '%' or spaces, nor be . or .. (it is a segment of a URL)`},
		// A section another reward type reads is refused, not ignored.
		{"backends: {r: {type: reference}}\nrewards: {x: {type: rules, judge: {mode: yes_no}}}\n", `a.yaml:rewards.x.judge: applies to judge rewards, not rules`},
		{"backends: {r: {type: reference}}\nrewards: {x: {type: rules, onnx: {path: /m.onnx}}}\n", `a.yaml:rewards.x.onnx: applies to onnx, onnx_arm, onnx_prm rewards, not rules`},
		{"backends: {r: {type: reference}}\nrewards: {t: {type: remote, objectives: [x], remote: {url: \"triton:8000\", model: m}}}\n", `a.yaml:rewards.t.remote.url: must be an http:// or https:// URL; got "triton:8000"`},
	} {
		if _, err := Parse("a.yaml", []byte(c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "secretpw1") {
			t.Errorf("%s\nerr = %v\nwant %s", c.yaml, err, c.want)
		}
	}
	for _, ok := range []string{
		"server: {listen: \"127.0.0.1:0\"}\nbackends: {r: {type: reference}}\n",
		"server: {listen: \":8080\"}\nbackends: {up: {type: ollama, url: \"localhost:11434\"}}\n",
		"backends: {up: {type: openai, url: \"https://api.example.com/v1\"}}\n",
	} {
		if _, err := Parse("a.yaml", []byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// A message names the key it is about, and one section's problems are
// all reported, in one order.
func TestMessagesNameTheKey(t *testing.T) {
	yaml := `backends: {up: {type: openai, url: "http://h:1/v1", token_delay: 1ms}}
cache: {redis: {addrs: ["r:6379"], read_timeout: 0s, write_timeout: 0s}}
preferences: {learning_rate: 0, memory_users: 0}
`
	_, err := Parse("k.yaml", []byte(yaml))
	want := []string{
		"k.yaml:cache.redis.read_timeout: must be a positive duration",
		"k.yaml:cache.redis.write_timeout: must be a positive duration",
		"k.yaml:preferences.learning_rate: must be in (0, 10]",
		"k.yaml:preferences.memory_users: must be at least 1",
		"k.yaml:backends.up.token_delay: only applies to reference backends",
	}
	if err == nil || err.Error() != strings.Join(want, "\n") {
		t.Errorf("err:\n%v\nwant:\n%s", err, strings.Join(want, "\n"))
	}
}

// Values that would fail at start-up, or be replaced without a word, are
// refused by check-config.
func TestStartUpValuesAreChecked(t *testing.T) {
	const ref = "backends: {r: {type: reference}}\n"
	for _, c := range []struct{ yaml, want string }{
		{ref + "cache: {redis: {addrs: [\"r:6379\"], write_queue: 9223372036854775807}}\n", "c.yaml:cache.redis.write_queue: must be between 1 and 1048576"},
		{ref + "cache: {redis: {addrs: [\"r:6379\"], pool_size: 0}}\n", "c.yaml:cache.redis.pool_size: must be between 1 and 10000"},
		{ref + "cache: {redis: {addrs: [\"r:6379\"], read_slack: 0s}}\n", "c.yaml:cache.redis.read_slack: must be a positive duration"},
		{ref + "cache: {redis: {addrs: [\"r:6379\"], read_slack: 2562047h}}\n", "c.yaml:cache.redis.read_slack: must be at most read_timeout (100ms)"},
		{"backends: {up: {type: openai, url: \"http://h:080/v1\"}}\n", "c.yaml:backends.up.url: has a port outside 1 to 65535"},
		{ref + "cache: {redis: {addrs: [\"r:6379\"], cluster: true, db: 2}}\n", "c.yaml:cache.redis.db: a Redis Cluster has database 0 only"},
		{ref + "cache: {responses: {ttl: 0s}}\n", "c.yaml:cache.responses.ttl: must be a positive duration"},
		{ref + "cache: {responses: {max_ttl: 500ms}}\n", "c.yaml:cache.responses.max_ttl: must be at least 1s"},
		{ref + "rewards: {default: {type: rules, weights: {verbosity: 1e7}}}\n", "c.yaml:rewards.default.weights.verbosity: must be at most 1e+06 in magnitude"},
		{ref + "rewards: {a: {type: rules}, e: {type: ensemble, ensemble: {members: [a, a]}}}\n", `c.yaml:rewards.e.ensemble.members[1]: names "a" twice`},
		{"backends: {r: {type: reference}, up: {}}\n", "c.yaml:backends.up: is empty"},
		{ref + "rewards: {x: }\n", "c.yaml:rewards.x: is empty"},
	} {
		if _, err := Parse("c.yaml", []byte(c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\nerr = %v\nwant %s", c.yaml, err, c.want)
		}
	}
	// A name may hold a dot: it is one name, not a path.
	cfg, err := Parse("c.yaml", []byte("backends: {gpt-4.1: {type: reference}}\nmodels: [{name: m, backend: gpt-4.1, model: reference}]\n"))
	if err != nil || cfg.Backends["gpt-4.1"].Type != TypeReference {
		t.Errorf("a dotted name: %v", err)
	}
}

// The effective config check-config prints loads again, as the same
// config.
func TestEffectiveLoadsAgain(t *testing.T) {
	for _, f := range []string{"default.yaml", "ollama.yaml", "openai.yaml", "testdata/good/full.yaml"} {
		cfg, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		out, err := Effective(cfg)
		if err != nil {
			t.Fatal(err)
		}
		again, err := Parse("effective.yaml", out)
		if err != nil {
			t.Errorf("%s: its effective config does not load:\n%v\n%s", f, err, out)
			continue
		}
		if back, _ := Effective(again); string(back) != string(out) {
			t.Errorf("%s: loads as another config:\n%s\nthen\n%s", f, out, back)
		}
	}
}

// A key without a role is a user's, and the effective config says so.
func TestKeyRoleDefault(t *testing.T) {
	h := strings.Repeat("ab", 32)
	cfg, err := Parse("k.yaml", []byte("backends: {r: {type: reference}}\nauth: {keys: [{hash: "+h+", tenant: acme}]}\n"))
	if err != nil {
		t.Fatal(err)
	}
	out, err := Effective(cfg)
	if err != nil || cfg.Auth.Keys[0].Role != "user" || !strings.Contains(string(out), "role: user") {
		t.Errorf("role %q, effective:\n%s", cfg.Auth.Keys[0].Role, out)
	}
}

// A model in two running experiments is said once, whether it is named by
// itself or by its route.
func TestModelInTwoExperimentsSaidOnce(t *testing.T) {
	const arms = `arms: [{name: a, steering: {strategy: none}}, {name: b, steering: {strategy: none}}]`
	y := "backends: {r: {type: reference}}\nmodels: [{name: reference, backend: r, aliases: [ab]}]\nexperiments:\n" +
		"  - {name: one, models: [reference], " + arms + "}\n  - {name: two, models: [reference], " + arms + "}\n" +
		"  - {name: three, models: [ab], " + arms + "}\n"
	_, err := Parse("x.yaml", []byte(y))
	if err == nil {
		t.Fatal("two running experiments on one model passed")
	}
	for _, key := range []string{"experiments[1].models[0]", "experiments[2].models[0]"} {
		if n := strings.Count(err.Error(), "x.yaml:"+key+":"); n != 1 {
			t.Errorf("%s said %d times:\n%v", key, n, err)
		}
	}
}

// A default runs to the brace that closes its reference: it may hold
// braces in pairs and references of its own, as in a shell.
func TestExpandRefs(t *testing.T) {
	t.Setenv("SG_SET", "v")
	t.Setenv("SG_EMPTY", "")
	for in, want := range map[string]string{
		"${SG_SET}":                    "v",
		"a${SG_SET}b${SG_SET}":         "avbv",
		"${SG_UNSET}":                  "",
		"${SG_EMPTY:-d}":               "d",
		`${SG_UNSET:-{"a": {"b": 1}}}`: `{"a": {"b": 1}}`,
		"${SG_UNSET:-${SG_SET}}":       "v",
		"${SG_UNSET:-x${SG_NONE:-y}z}": "xyz",
		"${SG_SET:-{ignored}}":         "v",
		"${SG_UNSET:-open":             "${SG_UNSET:-open",
		"${SG_UNSET:-{}":               "{",
		"${SG_UNSET:-a{b}-x":           "a{b-x",
		"${1X} ${} $SG_SET":            "${1X} ${} $SG_SET",
	} {
		if got := expandRefs(in); got != want {
			t.Errorf("%s: %q, want %q", in, got, want)
		}
	}
}
