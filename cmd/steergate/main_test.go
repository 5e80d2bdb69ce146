package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/prefs"
	"github.com/steergate/steergate/steering"
)

func runCmd(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	var out, errb bytes.Buffer
	old := os.Stdin
	if stdin != "" {
		f, err := os.CreateTemp(t.TempDir(), "in")
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString(stdin)
		f.Seek(0, 0)
		os.Stdin = f
		defer func() { os.Stdin = old; f.Close() }()
	}
	err := run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), err
}

func TestCheckConfig(t *testing.T) {
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir("cmd/steergate")
	for _, f := range []string{"configs/default.yaml", "configs/ollama.yaml", "configs/openai.yaml", "configs/production.yaml"} {
		t.Run(f, func(t *testing.T) {
			if f == "configs/production.yaml" {
				// It names model files this machine lacks; check-config
				// checks they exist, so point them at the test model.
				t.Setenv("STEERGATE_REWARDS_SKYWORK_ONNX_PATH", "rm/rmtest/testdata/seq_reward_one.onnx")
				t.Setenv("STEERGATE_REWARDS_SKYWORK_ONNX_TOKENIZER", "rm/rmtest/testdata/tokenizer.json")
				t.Setenv("APP_KEY_SHA256", prefs.Hash("sk-app"))
				t.Setenv("ADMIN_KEY_SHA256", prefs.Hash("sk-ops"))
			}
			out, _, err := runCmd(t, "", "check-config", f)
			if err != nil || !strings.Contains(out, "listen:") {
				t.Errorf("%s: %v\n%s", f, err, out)
			}
		})
	}
	// Production without its keys does not start, and says which.
	t.Setenv("APP_KEY_SHA256", "")
	if _, _, err := runCmd(t, "", "check-config", "configs/production.yaml"); err == nil || !strings.Contains(err.Error(), "configs/production.yaml:auth.keys[0].hash:") {
		t.Errorf("production without keys: %v", err)
	}
	_, _, err := runCmd(t, "", "check-config", "configs/testdata/bad/dangling.yaml")
	if err == nil || !strings.Contains(err.Error(), "configs/testdata/bad/dangling.yaml:models[0].backend:") {
		t.Errorf("bad config: %v", err)
	}
}

func TestScoreCommand(t *testing.T) {
	if err := os.Chdir("../.."); err != nil {
		t.Fatal(err)
	}
	defer os.Chdir("cmd/steergate")
	in := `{"prompt":"Why?","response":"Because it helps, for example."}` + "\n" +
		`{"prompt":[{"role":"user","content":"hi"}],"response":"hi hi hi hi hi"}` + "\n"
	out, _, err := runCmd(t, in, "score", "--config", "configs/default.yaml", "--reward", "default")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines: %q", len(lines), out)
	}
	var first, second map[string]float64
	json.Unmarshal([]byte(lines[0]), &first)
	json.Unmarshal([]byte(lines[1]), &second)
	// 3 of 8 helpfulness patterns; 5 tokens normalised (5−40)/20.
	if first["helpfulness"] != 0.375 || float32(second["repetition"]) != float32(2.0/3) || first["verbosity"] != (7-40)/20.0 {
		t.Errorf("scores %v / %v", first, second)
	}
	if _, _, err := runCmd(t, in, "score", "--config", "configs/default.yaml", "--reward", "words"); err == nil || !strings.Contains(err.Error(), "token-level") {
		t.Errorf("a token-level reward: %v", err)
	}
	_, _, err = runCmd(t, "{\"prompt\":\"x\"}\n", "score", "--reward", "default")
	if err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("missing response: %v", err)
	}
}

func TestScoreWithONNXReward(t *testing.T) {
	lib := os.Getenv("ONNXRUNTIME_LIB")
	if lib == "" {
		home, _ := os.UserHomeDir()
		lib = home + "/.cache/steergate/onnxruntime/1.24.3/libonnxruntime.so.1"
	}
	if _, err := os.Stat(lib); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ONNX Runtime library missing in CI")
		}
		t.Skip("ONNX Runtime library missing: make test fetches it")
	}
	wd, _ := os.Getwd()
	td := wd + "/../../rm/rmtest/testdata"
	cfg := t.TempDir() + "/onnx.yaml"
	os.WriteFile(cfg, []byte(`backends:
  ref: {type: reference}
onnx:
  library: `+lib+`
rewards:
  tiny:
    type: onnx
    objectives: [helpfulness, correctness, verbosity]
    onnx: {path: `+td+`/seq_reward_types.onnx, tokenizer: `+td+`/tokenizer.json, format: pair}
`), 0o644)
	out, _, err := runCmd(t, `{"prompt":"why is the sky blue?","response":"because air scatters light."}`+"\n", "score", "--config", cfg, "--reward", "tiny")
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]float64
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 3 {
		t.Fatalf("%q: %v", out, err)
	}
	// Scoring is deterministic.
	out2, _, _ := runCmd(t, `{"prompt":"why is the sky blue?","response":"because air scatters light."}`+"\n", "score", "--config", cfg, "--reward", "tiny")
	if out2 != out {
		t.Errorf("%q then %q", out, out2)
	}
}

// TestCheckConfigRefusesBadSteering: configs that load but whose route
// steering, or rewards, serve would refuse; check-config names file and key.
func TestCheckConfigRefusesBadSteering(t *testing.T) {
	t.Chdir("../..")
	files, _ := filepath.Glob("configs/testdata/check/*.yaml")
	if len(files) < 10 {
		t.Fatalf("only %d files", len(files))
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			want, err := os.ReadFile(strings.TrimSuffix(f, ".yaml") + ".err")
			if err != nil {
				t.Fatal(err)
			}
			_, _, err = runCmd(t, "", "check-config", f)
			if err == nil || !strings.Contains(err.Error(), strings.TrimSpace(string(want))) {
				t.Errorf("check-config %s: %v\nwant: %s", f, err, want)
			}
		})
	}
}

// hash-key prints what auth.keys[].hash holds, from an argument or stdin.
func TestHashKey(t *testing.T) {
	want := "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\n" // SHA-256("abc")
	for _, c := range []struct{ stdin, arg string }{{"", "abc"}, {"abc\n", ""}} {
		args := []string{"hash-key"}
		if c.arg != "" {
			args = append(args, c.arg)
		}
		if out, _, err := runCmd(t, c.stdin, args...); err != nil || out != want {
			t.Errorf("%v with stdin %q: %q %v", args, c.stdin, out, err)
		}
	}
}

// The config's bound of a user's weight is the one every weight has.
func TestMaxWeightIsSteerings(t *testing.T) {
	if configs.MaxWeight != steering.MaxWeight {
		t.Errorf("configs.MaxWeight %g, steering.MaxWeight %g", float64(configs.MaxWeight), float64(steering.MaxWeight))
	}
}

// serve's own failure to listen names the file and key, as a config
// error does.
func TestServeNamesListenWhenItCannot(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	f := filepath.Join(t.TempDir(), "c.yaml")
	if err := os.WriteFile(f, []byte("server: {listen: \""+held.Addr().String()+"\"}\nbackends: {r: {type: reference}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err = runCmd(t, "", "serve", "--config", f)
	if err == nil || !strings.Contains(err.Error(), f+":server.listen: cannot listen on "+held.Addr().String()) {
		t.Errorf("err = %v", err)
	}
}

// A command refuses an argument it does not take, rather than ignore it:
// serve FILE would serve the embedded default.
func TestCommandsRefuseStrayArguments(t *testing.T) {
	for _, args := range [][]string{{"serve", "my.yaml"}, {"reference-server", "x"}, {"score", "--reward", "default", "x"}, {"tokenize", "--tokenizer", "t.json", "x"}, {"eval", "x"}, {"version", "x"}, {"help", "x"}} {
		if _, _, err := runCmd(t, "", args...); err == nil || !strings.Contains(err.Error(), `unexpected argument "`) {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// check-config parses the templates a reward holds, as serve would, and
// names the key of one that does not parse.
func TestCheckConfigParsesTemplates(t *testing.T) {
	f := filepath.Join(t.TempDir(), "t.yaml")
	cfg := `backends: {r: {type: reference}}
rewards:
  j: {type: judge, judge: {backend: r, model: reference, question: "{{.Nope"}}
  rm: {type: remote, objectives: [x], remote: {url: "http://h:1", model: m, format: "{{.Bad"}}
  j2: {type: judge, judge: {backend: r, model: reference, question: "Is this good? {{.prompt}}"}}
  rm2: {type: remote, objectives: [x], remote: {url: "http://h:1", model: m, format: "{{.Nope}}"}}
`
	if err := os.WriteFile(f, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := runCmd(t, "", "check-config", f)
	for _, want := range []string{f + ":rewards.j.judge.question: judge question: template:", f + ":rewards.rm.remote.format: format template:",
		f + `:rewards.j2.judge.question: judge question: template: judge:1:16: executing "judge" at <.prompt>: map has no entry for key "prompt"`,
		f + ":rewards.rm2.remote.format: format template: template: custom:1:2: executing"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v\nwant %s", err, want)
		}
	}
}

// An ensemble's members are shaped per call (here a reference taken from
// the batch's median): inside the ensemble a member scores each answer as
// it does alone, also an answer scored before, never a stored shaped score.
func TestScoreEnsembleShapesEveryCall(t *testing.T) {
	cfg := t.TempDir() + "/e.yaml"
	os.WriteFile(cfg, []byte(`backends:
  ref: {type: reference}
rewards:
  default:
    type: rules
    objectives: [verbosity, repetition]
    transform: {verbosity: {kind: log_sigmoid, reference_quantile: 0.5}}
  m2:
    type: rules
    objectives: [verbosity, repetition]
  ens:
    type: ensemble
    ensemble: {members: [default, m2]}
`), 0o644)
	in := `{"prompt":"q","response":"one two three"}` + "\n" + `{"prompt":"q","response":"a much longer answer with many many words in it"}` + "\n" +
		`{"prompt":"q","response":"one two three"}` + "\n" + `{"prompt":"q","response":"x"}` + "\n"
	alone, _, err := runCmd(t, in, "score", "--config", cfg, "--reward", "default", "--batch", "2")
	if err != nil {
		t.Fatal(err)
	}
	within, _, err := runCmd(t, in, "score", "--config", cfg, "--reward", "ens", "--batch", "2")
	if err != nil {
		t.Fatal(err)
	}
	a, w := strings.Split(strings.TrimSpace(alone), "\n"), strings.Split(strings.TrimSpace(within), "\n")
	if len(a) != 4 || len(w) != 4 {
		t.Fatalf("%q / %q", alone, within)
	}
	for i := range a {
		var x, y map[string]float64
		json.Unmarshal([]byte(a[i]), &x)
		json.Unmarshal([]byte(w[i]), &y)
		if x["verbosity"] != y["verbosity@default"] {
			t.Errorf("line %d: verbosity %v alone, %v in the ensemble", i+1, x["verbosity"], y["verbosity@default"])
		}
	}
	if a[0] == a[2] {
		t.Errorf("the same answer in another batch scored alike (%s): the test shapes nothing", a[0])
	}
}
