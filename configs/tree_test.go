package configs

import (
	"strings"
	"testing"
	"time"
)

// Values the decode would once have converted or replaced silently are
// refused with file:key, and every problem of a file is reported at once.
func TestTreeCheckRefuses(t *testing.T) {
	const ref = "backends:\n  ref: {type: reference}\n"
	const up = "backends:\n  up: {type: openai, url: \"http://127.0.0.1:9/v1\"%s}\nmodels: [{name: m, backend: up}]\n"
	for _, c := range []struct{ yaml, want string }{
		{"server: {max_inflight: true}\n" + ref, "t.yaml:server.max_inflight: expected a whole number, got true"},
		{"server: {max_n: 3.5}\n" + ref, "t.yaml:server.max_n: expected a whole number, got 3.5"},
		{"server: {max_body_bytes: 99999999999999999999}\n" + ref, "t.yaml:server.max_body_bytes: 1e+20 is out of range"},
		{"server: {max_body_bytes: 18446744073709551615}\n" + ref, "t.yaml:server.max_body_bytes: 18446744073709551615 is out of range"},
		{"server: {drain_delay: -1s}\n" + ref, "t.yaml:server.drain_delay: must not be negative"},
		{"server: {request_timeout: true}\n" + ref, "t.yaml:server.request_timeout: expected a duration such as 30s or 250ms, got true"},
		{"server: {listen: [a]}\n" + ref, "t.yaml:server.listen: expected a string, got a list"},
		{"auth: {redis: \"yes\"}\n" + ref, `t.yaml:auth.redis: expected true or false, got "yes"`},
		{"log: {access_sample: .nan}\n" + ref, "t.yaml:log.access_sample: expected a finite number, got NaN"},
		{"cache: {redis: {addrs: 5}}\n" + ref, "t.yaml:cache.redis.addrs: expected a list, got 5"},
		{"server: 5\n" + ref, "t.yaml:server: expected a mapping, got 5"},
		{strings.Replace(up, "%s", ", max_response_bytes: -1", 1), "t.yaml:backends.up.max_response_bytes: must not be negative"},
		{strings.Replace(up, "%s", ", timeout: 0s", 1), "t.yaml:backends.up.timeout: must not be 0 (leave it out for the default)"},
		{strings.Replace(up, "%s", ", max_concurrency: 0", 1), "t.yaml:backends.up.max_concurrency: must not be 0"},
		{"models: [{name: true, backend: ref, model: reference}]\n" + ref, "t.yaml:models[0].name: expected a string, got true; write it in quotes"},
		{"server: {max_inflight: 010}\n" + ref, "t.yaml:server.max_inflight: 010 would be read as an octal number; write it without the leading 0, or as 0o…"},
		{"server: {max_inflight: \"010\"}\n" + ref, "t.yaml:server.max_inflight: 010 would be read as an octal number"},
		{"preferences: {max_weight: 010}\n" + ref, "t.yaml:preferences.max_weight: 010 would be read as an octal number"},
		{"models: [{name: reference, backend: ref, steering: {n: 010}}]\n" + ref, "t.yaml:models[0].steering.n: 010 would be read as an octal number"},
		// A refused key does not hide the file's other problems, and what
		// Validate would say of the default put in its place is not said.
		{"server: {max_n: x, max_inflight: 0}\n" + ref, "t.yaml:server.max_n: expected a whole number, got \"x\"\nt.yaml:server.max_inflight: must be at least 1"},
	} {
		_, err := Parse("t.yaml", []byte(c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\nerr = %v\nwant %s", c.yaml, err, c.want)
			continue
		}
		if strings.Count(err.Error(), "server.max_n") > 1 {
			t.Errorf("%s: said twice:\n%v", c.yaml, err)
		}
	}
}

func TestTreeCheckAccepts(t *testing.T) {
	cfg, err := Parse("t.yaml", []byte(`server: {max_inflight: "10", listen: "127.0.0.1:8080", request_timeout: " 2m"}
backends:
  ref: {type: reference}
models: [{name: 2024, backend: ref, model: reference, aliases: [1.10, 0x1F, 010, 1_000]}]
rewards:
  r: {type: rules, weights: {repetition: -1}}
  p:
    type: onnx_prm
    onnx: {path: m.onnx, tokenizer: t.json}
    prm: {separator: "<s>", positive: 0}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Server.MaxInflight != 10 || cfg.Server.RequestTimeout != 2*time.Minute || cfg.Models[0].Name != "2024" {
		t.Errorf("server %+v, model %q", cfg.Server, cfg.Models[0].Name)
	}
	// A number where text goes is read as written.
	if a := cfg.Models[0].Aliases; strings.Join(a, " ") != "1.10 0x1F 010 1_000" {
		t.Errorf("aliases %q", a)
	}
	if cfg.Rewards["r"].Weights["repetition"] != -1 {
		t.Errorf("weights %v", cfg.Rewards["r"].Weights)
	}
	// Class 0 is a class, not "unset".
	if p := cfg.Rewards["p"].PRM.Positive; p == nil || *p != 0 {
		t.Errorf("prm.positive %v", p)
	}
	cfg, err = Parse("t.yaml", []byte("backends:\n  ref: {type: reference}\nrewards:\n  p: {type: onnx_prm, onnx: {path: m.onnx, tokenizer: t.json}, prm: {separator: \"<s>\"}}\n"))
	if err != nil || *cfg.Rewards["p"].PRM.Positive != 1 {
		t.Fatalf("default positive: %v", err)
	}
}

// A variable's value is checked as the file's are, and the message names
// the variable, not the file's line.
func TestTreeCheckNamesTheVariable(t *testing.T) {
	defer func() { environ = realEnviron }()
	environ = func() []string { return []string{"STEERGATE_SERVER_MAX_INFLIGHT=lots"} }
	_, err := Parse("t.yaml", []byte("backends:\n  ref: {type: reference}\n"))
	want := `the environment variable STEERGATE_SERVER_MAX_INFLIGHT sets server.max_inflight: expected a whole number, got "lots" (config file t.yaml)`
	if err == nil || err.Error() != want {
		t.Errorf("err = %v\nwant %s", err, want)
	}
	environ = func() []string { return []string{"STEERGATE_SERVER_MAX_INFLIGHT=12", "STEERGATE_AUTH_REDIS=false"} }
	cfg, err := Parse("t.yaml", []byte("backends:\n  ref: {type: reference}\n"))
	if err != nil || cfg.Server.MaxInflight != 12 {
		t.Fatalf("%v %+v", err, cfg)
	}
}

// What Validate says of a value a variable set names the variable; a
// variable does not hide what is wrong in the file; list values it gives
// are split at commas and trimmed, where a file's string is no list.
func TestVariablesAndTheFile(t *testing.T) {
	defer func() { environ = realEnviron }()
	const file = "backends:\n  ref: {type: reference}\n"
	for _, c := range []struct{ env, yaml, want string }{
		{"STEERGATE_SERVER_MAX_N=500", file, "the environment variable STEERGATE_SERVER_MAX_N sets server.max_n: must be at most 128 (config file t.yaml)"},
		{"STEERGATE_CACHE_REDIS_ADDRS=r:1,s:0", file, "the environment variable STEERGATE_CACHE_REDIS_ADDRS sets cache.redis.addrs[1]: must be host:port"},
		{"STEERGATE_SERVER_MAX_N=4", "server: 5\n" + file, "the environment variable STEERGATE_SERVER_MAX_N sets a key in server, which the file has as 5, not a mapping"},
		{"STEERGATE_MODELS_0_STEERING=x", "models: [{name: m, backend: ref, model: reference, steering: {n: 2}}]\n" + file, "set its keys instead (e.g. STEERGATE_MODELS_0_STEERING_...)"},
		{"", "models: [{name: m, backend: ref, model: reference, aliases: 'a,b'}]\n" + file, "t.yaml:models[0].aliases: expected a list, got \"a,b\"; write [\"a,b\"]"},
		// Two readings that both name a key: refused, not settled by a rule.
		{"STEERGATE_BACKENDS_REF_QUEUE_TIMEOUT=7s", "backends: {ref: {type: reference}, ref_queue: {type: reference}}\n",
			"the environment variable STEERGATE_BACKENDS_REF_QUEUE_TIMEOUT is ambiguous: it names backends.ref_queue.timeout and backends.ref.queue_timeout"},
	} {
		environ = func() []string { return []string{c.env} }
		if _, err := Parse("t.yaml", []byte(c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s\n%s: err = %v\nwant %s", c.env, c.yaml, err, c.want)
		}
	}
	// With backends up and up_max, UP_MAX_TOKENS names up's max_tokens.
	environ = func() []string { return []string{"STEERGATE_BACKENDS_UP_MAX_TOKENS=5"} }
	cfg, err := Parse("t.yaml", []byte("backends: {up: {type: reference}, up_max: {type: reference}}\n"))
	if err != nil || cfg.Backends["up"].MaxTokens != 5 || cfg.Backends["up_max"].MaxTokens != 256 {
		t.Errorf("%v %+v", err, cfg)
	}
	environ = func() []string { return []string{"STEERGATE_CACHE_REDIS_ADDRS=r:1, s:2"} }
	cfg, err = Parse("t.yaml", []byte(file))
	if err != nil || strings.Join(cfg.Cache.Redis.Addrs, "|") != "r:1|s:2" {
		t.Errorf("%v %q", err, cfg.Cache.Redis.Addrs)
	}
}

// Anchors, merge keys, a trailing --- and ${VAR} in values work as YAML
// users expect: a variable's value is the value whole, and a comment
// expands nothing.
func TestYAMLAsUsersWriteIt(t *testing.T) {
	t.Setenv("SG_KEY", "!x #1: y")
	t.Setenv("SG_PORT", "9443")
	t.Setenv("SG_NOTE", "5\n  max_n: 2")
	cfg, err := Parse("y.yaml", []byte(`# ${SG_NOTE}
server:
  listen: "127.0.0.1:${SG_PORT}"
  max_inflight: ${SG_PORT}
backends:
  base: &b {type: openai, url: "http://h:8000/v1", api_key: 12345}
  a: {<<: *b}
  k:
    type: openai
    url: "http://h:8000/v1"
    api_key: ${SG_KEY}
rewards:
  r1: &r {type: rules, version: 1.10}
  r2: *r
---
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Backends["a"].APIKey != "12345" || cfg.Rewards["r2"].Version != "1.10" || cfg.Backends["k"].APIKey != "!x #1: y" ||
		cfg.Server.Listen != "127.0.0.1:9443" || cfg.Server.MaxInflight != 9443 || cfg.Server.MaxN != 16 {
		t.Errorf("a %q, r2 %q, k %q, server %+v", cfg.Backends["a"].APIKey, cfg.Rewards["r2"].Version, cfg.Backends["k"].APIKey, cfg.Server)
	}
	// Unquoted inside {…}, a reference is no YAML until expanded: such a
	// file is expanded in its text.
	cfg, err = Parse("y.yaml", []byte("server: {max_inflight: ${SG_PORT}}\nbackends: {r: {type: reference}}\n"))
	if err != nil || cfg.Server.MaxInflight != 9443 {
		t.Errorf("flow style: %v", err)
	}
}

// Entries with nothing in them and mapping keys that are no strings are
// named, in one order every run; arm weights are bounded.
func TestEmptyAndOddEntries(t *testing.T) {
	const ref = "backends: {r: {type: reference}}\n"
	for _, c := range []struct{ yaml, want string }{
		{ref + "rewards: {d: {type: rules, weights: {verbosity: }}}\n", "t.yaml:rewards.d.weights.verbosity: is empty"},
		{ref + "rewards: {d: {type: rules, rules: {keywords: {k: }}}}\n", "t.yaml:rewards.d.rules.keywords.k: is empty"},
		{ref + "rewards: {d: {type: rules, weights: {1: 1, true: 2}}}\n", "t.yaml:rewards.d.weights: has keys that are no strings (1, true): write them in quotes"},
		{ref + "models: [{name: reference, backend: r}]\nexperiments: [{name: e, models: [reference], arms: [{name: a, weight: 1e308}, {name: b}], outcome: {type: feedback}}]\n",
			"t.yaml:experiments[0].arms[0].weight: must be a positive number, at most 1e+06"},
	} {
		for range 3 {
			if _, err := Parse("t.yaml", []byte(c.yaml)); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("%s\nerr = %v\nwant %s", c.yaml, err, c.want)
			}
		}
	}
}
