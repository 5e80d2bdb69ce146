package onnx

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
)

var testdata = filepath.Join("..", "rmtest", "testdata")

// library returns the ONNX Runtime library, which make test fetches.
func library(t testing.TB) string {
	t.Helper()
	p := LibraryPath("")
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("ONNX Runtime library missing in CI: %v", err)
		}
		t.Skipf("ONNX Runtime library %s missing: run make test, which fetches it", p)
	}
	return p
}

func config(t testing.TB, model string) Config {
	return Config{Name: "test", Library: library(t), Model: filepath.Join(testdata, model),
		Tokenizer: filepath.Join(testdata, "tokenizer.json"), Objectives: rmtest.Objectives, MaxLength: 64,
		MaxBatch: 16, MaxWait: 5 * time.Millisecond}
}

var samples = []rm.Sample{
	{Prompt: "Why is the sky blue?", Response: "Because air scatters blue light first."},
	{Prompt: "how do plants make food?", Response: "The sun helps plants make food, for example."},
	{Prompt: "what is a cache?", Response: "A good cache helps."},
	{Prompt: "x", Response: "Unknownword zzz."},
}

// want computes the sequence model's scores in Go from the same weights.
func want(t *testing.T, r *Rewarder, w rmtest.SeqWeights, ss []rm.Sample) [][]float32 {
	var ids, mask, types [][]int64
	for _, s := range ss {
		row, tt, err := r.enc.encode(s)
		if err != nil {
			t.Fatal(err)
		}
		var a, m, ty []int64
		for i := range row {
			a, m, ty = append(a, int64(row[i])), append(m, 1), append(ty, int64(tt[i]))
		}
		ids, mask, types = append(ids, a), append(mask, m), append(types, ty)
	}
	return w.Forward(ids, mask, types)
}

func near(t *testing.T, what string, got, want [][]float32) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d rows, want %d", what, len(got), len(want))
	}
	for i := range want {
		for k := range want[i] {
			if math.Abs(float64(got[i][k]-want[i][k])) > 1e-5 {
				t.Errorf("%s: sample %d objective %d = %v, Go computes %v", what, i, k, got[i][k], want[i][k])
			}
		}
	}
}

// TestEncoderSizedMatchesGo checks the encoder-sized benchmark model
// (small here) against its Go forward pass: the batching figures on a
// device time a model that computes what it says.
func TestEncoderSizedMatchesGo(t *testing.T) {
	w := rmtest.Encoder(3, 16, 40)
	cfg := config(t, "seq_reward.onnx")
	cfg.Model = filepath.Join(t.TempDir(), "encoder_sized.onnx")
	if err := os.WriteFile(cfg.Model, w.Model(), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := NewRewarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	got, err := r.Score(context.Background(), samples) // one padded batch
	if err != nil {
		t.Fatal(err)
	}
	var ids, mask [][]int64
	for _, s := range samples {
		row, _, err := r.enc.encode(s)
		if err != nil {
			t.Fatal(err)
		}
		var a, m []int64
		for _, id := range row {
			a, m = append(a, int64(id)), append(m, 1)
		}
		ids, mask = append(ids, a), append(mask, m)
	}
	want := w.Forward(ids, mask)
	for i := range want {
		for k := range want[i] {
			if d := math.Abs(float64(got[i][k] - want[i][k])); d > 1e-4*(1+math.Abs(float64(want[i][k]))) {
				t.Errorf("sample %d objective %d = %v, Go computes %v", i, k, got[i][k], want[i][k])
			}
		}
	}
}

func TestSequenceModelMatchesGo(t *testing.T) {
	for _, c := range []struct {
		file  string
		types bool
		trunc string
	}{{"seq_reward.onnx", false, "left"}, {"seq_reward_types.onnx", true, "left"}, {"seq_reward.onnx", false, "right"}} {
		t.Run(c.file+"/"+c.trunc, func(t *testing.T) {
			cfg := config(t, c.file)
			cfg.Truncation = c.trunc
			cfg.MaxLength = 10 // long samples are truncated
			cfg.Format = "pair"
			r, err := NewRewarder(cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			if r.sess.hasTypes != c.types || r.Provider() != "cpu" {
				t.Fatalf("token types %v, provider %s", r.sess.hasTypes, r.Provider())
			}
			got, err := r.Score(context.Background(), samples)
			if err != nil {
				t.Fatal(err)
			}
			near(t, c.file, got, want(t, r, rmtest.Seq(c.types), samples))
			ids, _, _ := r.enc.encode(samples[1])
			full, _ := r.enc.tok.EncodeSpecial(samples[1].Prompt, &samples[1].Response)
			if len(ids) != 10 || (c.trunc == "left" && ids[9] != full[len(full)-1]) || (c.trunc == "right" && ids[0] != full[0]) {
				t.Errorf("%s truncation kept %v of %v", c.trunc, ids, full)
			}
		})
	}
}

func TestConcurrentScoringIsBatched(t *testing.T) {
	r, err := NewRewarder(config(t, "seq_reward_types.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wantAll := want(t, r, rmtest.Seq(true), samples)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := samples[g%len(samples)]
			got, err := r.Score(context.Background(), []rm.Sample{s})
			if err != nil {
				errs <- err
				return
			}
			for k := range got[0] {
				if math.Abs(float64(got[0][k]-wantAll[g%len(samples)][k])) > 1e-5 {
					errs <- fmt.Errorf("goroutine %d: %v, want %v", g, got[0], wantAll[g%len(samples)])
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	runs, n := r.Stats()
	if n != 64 || runs >= 64 {
		t.Errorf("%d samples in %d runs: concurrent calls were not coalesced", n, runs)
	}
	t.Logf("64 concurrent callers: %d model runs", runs)
}

// armLogProb is what Go computes for candidate n after the context: the
// log-softmax sum over the candidate's tokens from position start.
func armLogProb(logits func([]int64) [][]float32, ids []int, start int) float64 {
	var ids64 []int64
	for _, id := range ids {
		ids64 = append(ids64, int64(id))
	}
	l := logits(ids64)
	var lp float64
	for p := start; p < len(ids); p++ {
		lp += rmtest.LogSoftmax(l[p-1])[ids[p]]
	}
	return lp
}

// The ARM scores candidates after an open assistant turn, as Go computes
// it: one row for one-token candidates, a row each for the others, every
// candidate over the same span.
func TestARMMatchesGo(t *testing.T) {
	for _, c := range []struct {
		file   string
		logits func([]int64) [][]float32
	}{{"arm.onnx", rmtest.ARM().Logits}, {"arm_kv.onnx", rmtest.KVARM().MeanLogits}} {
		t.Run(c.file, func(t *testing.T) {
			a, err := NewARM(config(t, c.file))
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			if a.KV() != (c.file == "arm_kv.onnx") {
				t.Fatalf("key/value cache: %v", a.KV())
			}
			s := rm.Sample{Messages: []backend.Message{{Role: "user", Content: "why is the sky blue?"}}, Response: "the sky is"}
			ctxText := "why is the sky blue?\nthe sky is"
			base := a.enc.tok.Encode(ctxText)
			for _, next := range [][]string{{" because", " the", " blue", "."}, {" because", " the sun", " zzz", "."}} {
				got, err := a.LogProbs(context.Background(), s, next)
				if err != nil {
					t.Fatal(err)
				}
				for i, n := range next {
					if lp := armLogProb(c.logits, a.enc.tok.Encode(ctxText+n), len(base)); math.Abs(float64(got[i])-lp) > 1e-4 || lp >= 0 {
						t.Errorf("%v: candidate %q: %v, Go computes %v", next, n, got[i], lp)
					}
				}
			}
			// A candidate that merges with the context's last token ("blu"
			// + "e" is "blue"): every candidate is scored from the token
			// that changes, so that all cover the same span.
			s.Response = "the sky is blu"
			merged := []string{"e", " sky"}
			got, err := a.LogProbs(context.Background(), s, merged)
			if err != nil {
				t.Fatal(err)
			}
			ctxText += " blu"
			base = a.enc.tok.Encode(ctxText)
			start := len(base) - 1
			for i, n := range merged {
				ids := a.enc.tok.Encode(ctxText + n)
				if lp := armLogProb(c.logits, ids, start); math.Abs(float64(got[i])-lp) > 1e-4 {
					t.Errorf("merged candidate %q: %v, Go computes %v from position %d", n, got[i], lp, start)
				}
			}
		})
	}
}

// With a key/value cache, extending the answer by a token feeds the model
// that token only, and scores match a model that reads it all.
func TestARMReusesKeyValues(t *testing.T) {
	a, err := NewARM(config(t, "arm_kv.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s := rm.Sample{Messages: []backend.Message{{Role: "user", Content: "why is the sky blue?"}}}
	w := rmtest.KVARM()
	for i, word := range strings.Fields("the sky is blue because air scatters light") {
		before := a.Fed()
		got, err := a.LogProbs(context.Background(), s, []string{" why", " the", " sun"})
		if err != nil {
			t.Fatal(err)
		}
		ctxText := "why is the sky blue?\n" + s.Response
		ids := a.enc.tok.Encode(ctxText)
		if fed := a.Fed() - before; i > 0 && fed != 1 {
			t.Errorf("step %d fed %d tokens, want 1", i, fed)
		}
		for j, n := range []string{" why", " the", " sun"} {
			if lp := armLogProb(w.MeanLogits, a.enc.tok.Encode(ctxText+n), len(ids)); math.Abs(float64(got[j])-lp) > 1e-4 {
				t.Errorf("step %d candidate %q: %v, Go computes %v", i, n, got[j], lp)
			}
		}
		if s.Response != "" {
			s.Response += " "
		}
		s.Response += word
	}
}

func TestClearErrors(t *testing.T) {
	lib := library(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.onnx")
	if err := os.WriteFile(bad, rmtest.BadInputsModel(), 0o644); err != nil {
		t.Fatal(err)
	}
	garbage := filepath.Join(dir, "garbage.onnx")
	os.WriteFile(garbage, []byte("not a model"), 0o644)
	for _, c := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"missing library", func(c *Config) { c.Library = filepath.Join(dir, "libonnxruntime.so.1") }, "ONNX Runtime library"},
		{"missing model", func(c *Config) { c.Model = filepath.Join(dir, "nope.onnx") }, "model file"},
		{"not a model", func(c *Config) { c.Model = garbage }, "not a readable ONNX model"},
		{"inputs do not match", func(c *Config) { c.Model = bad }, "needs input_ids and attention_mask"},
		{"objectives do not match", func(c *Config) { c.Objectives = []string{"only"} }, "3 columns but 1 objectives"},
		{"unreadable tokenizer", func(c *Config) { c.Tokenizer = filepath.Join(dir, "tokenizer.json") }, "tokenizer"},
		{"cuda unavailable", func(c *Config) { c.Provider = "cuda" }, "CUDA execution provider unavailable"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := config(t, "seq_reward.onnx")
			cfg.Library = lib
			c.mod(&cfg)
			r, err := NewRewarder(cfg)
			if err == nil {
				r.Close()
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not say %q", err, c.want)
			}
			if c.name == "cuda unavailable" && !errors.Is(err, ErrCUDA) {
				t.Errorf("not ErrCUDA: %v", err)
			}
		})
	}
	// CUDA with fallback runs on the CPU.
	cfg := config(t, "seq_reward.onnx")
	cfg.Provider, cfg.Fallback = "cuda", "cpu"
	r, err := NewRewarder(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Provider() != "cpu" {
		t.Errorf("provider %s after fallback", r.Provider())
	}
}

// A file that is not the ONNX Runtime library fails to load with a clear
// message. It runs in a child process, since a process loads the runtime
// once.
func TestWrongLibrary(t *testing.T) {
	if path := os.Getenv("STEERGATE_WRONG_LIB"); path != "" {
		err := Init(path)
		if err == nil || !strings.Contains(err.Error(), "could not be loaded") {
			fmt.Printf("unexpected: %v\n", err)
			os.Exit(2)
		}
		fmt.Println("clear error:", err)
		os.Exit(0)
	}
	library(t)
	fake := filepath.Join(t.TempDir(), "libonnxruntime.so.1")
	os.WriteFile(fake, []byte("\x7fELF not really"), 0o644)
	cmd := exec.Command(os.Args[0], "-test.run=^TestWrongLibrary$")
	cmd.Env = append(os.Environ(), "STEERGATE_WRONG_LIB="+fake)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "clear error") {
		t.Errorf("child: %v\n%s", err, out)
	}
}

// The ARM encodes a growing answer from heads of earlier texts: the ids are
// the whole text's, step after step, and past the first steps each encodes
// no more than a bounded tail.
func TestARMEncodeFromHeads(t *testing.T) {
	a, err := NewARM(config(t, "arm_kv.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	words := "the sky is blue because air scatters light, so the sun helps plants make food. which is good! " +
		"(a simple answer) - the ocean: water and rain; ##ed tests"
	texts := growing("why is the sky blue?\n", words, 600, 17)
	for i, text := range texts {
		if got, want := a.encode(text), a.enc.tok.Encode(text); !slices.Equal(got, want) {
			t.Fatalf("step %d: encoded %v\nwhole text %v", i, got, want)
		}
	}
	a.headMu.Lock()
	defer a.headMu.Unlock()
	if len(a.heads) == 0 {
		t.Fatal("no head was kept")
	}
	text := texts[len(texts)-1]
	if last := a.heads[len(a.heads)-1]; len(text)-len(last.text) > headRest {
		t.Errorf("the last head ends %d bytes before the text's end", len(text)-len(last.text))
	}
}

// growing is start grown a word of words at a time, n times, each text in
// turn; every lines-th word starts a new line.
func growing(start, words string, n, lines int) []string {
	ws := strings.Fields(words)
	out := make([]string, n)
	for i := range n {
		sep := " "
		if i%lines == 0 {
			sep = "\n"
		}
		start += sep + ws[i%len(ws)]
		out[i] = start
	}
	return out
}

// Candidates are encoded from the context's last word on: with the ids
// before it, each gives the ids of the whole text, whatever follows (a
// word, a piece that merges with the last word, punctuation, a new line).
func TestARMStemEncoding(t *testing.T) {
	a, err := NewARM(config(t, "arm_kv.onnx"))
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	words := "the sky is blu because air scatters light, so the sun helps plants make food. which is good! (a simple answer) - ##ed"
	next := []string{" the", "e", "s", ".", "\n", " the sun", "!!", " ", "ed because"}
	for i, open := range growing("why is the sky blue?\n", words, 300, 13) {
		base := a.encode(open)
		cut, keep, ok := a.stem(open, base)
		if !ok || cut <= len(open)-headRest || keep > len(base) {
			t.Fatalf("step %d: no stem in %q (cut %d, keep %d)", i, open[max(0, len(open)-40):], cut, keep)
		}
		for _, n := range next {
			got := append(slices.Clone(base[:keep]), a.enc.tok.Encode(open[cut:]+n)...)
			if want := a.enc.tok.Encode(open + n); !slices.Equal(got, want) {
				t.Fatalf("step %d, candidate %q: %v\nwhole text %v", i, n, got, want)
			}
		}
	}
	// A last word longer than headRest has no stem: candidates are
	// encoded from heads.
	long := "why?\nthe " + strings.Repeat("a", headRest+10)
	if _, _, ok := a.stem(long, a.encode(long)); ok {
		t.Error("a stem over a word longer than headRest")
	}
}
