package onnx

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/rmtest"
)

// The batching benchmarks run the tiny test model on the CPU unless told
// otherwise, e.g. on a GPU machine:
//
//	go test -run - -bench 'ScoreBatch|ConcurrentCallers' ./rm/onnx -args -onnx.provider cuda -onnx.model 12x768x3072
var (
	benchProvider = flag.String("onnx.provider", "cpu", "execution provider of the batching benchmarks: cpu or cuda (no fallback to the CPU)")
	benchModel    = flag.String("onnx.model", "", "model of the batching benchmarks: empty for the test model, or LAYERSxHIDDENxFF for rmtest.Encoder")
)

var (
	encoderOnce  sync.Once
	encoderModel []byte
	encoderErr   error
)

// benchConfig is the batching benchmarks' model: the test model, or an
// encoder-sized one (made once per run), which reads longer answers.
func benchConfig(b *testing.B, maxBatch int, maxWait time.Duration) (Config, int) {
	benchFlags(b)
	cfg := config(b, "seq_reward_types.onnx")
	cfg.Library, cfg.MaxBatch, cfg.MaxWait, cfg.MaxLength, cfg.Provider = LibraryPath(""), maxBatch, maxWait, 128, *benchProvider
	if *benchModel == "" {
		return cfg, 1
	}
	encoderOnce.Do(func() {
		var layers, hidden, ff int
		if _, err := fmt.Sscanf(*benchModel, "%dx%dx%d", &layers, &hidden, &ff); err != nil || layers < 1 || hidden < 1 || ff < 1 {
			encoderErr = fmt.Errorf("-onnx.model %q: want LAYERSxHIDDENxFF, e.g. 12x768x3072", *benchModel)
			return
		}
		encoderModel = rmtest.Encoder(layers, hidden, ff).Model()
	})
	if encoderErr != nil {
		b.Fatal(encoderErr)
	}
	cfg.Model, cfg.MaxLength = filepath.Join(b.TempDir(), "encoder_sized.onnx"), 256
	if err := os.WriteFile(cfg.Model, encoderModel, 0o644); err != nil {
		b.Fatal(err)
	}
	return cfg, 4
}

// benchFlags fails a benchmark whose flags ask for what it cannot measure:
// a provider it does not know, or (where a provider or model was asked
// for) a missing library, which otherwise skips the benchmark and leaves
// no figure.
func benchFlags(b *testing.B) {
	if *benchProvider != "cpu" && *benchProvider != "cuda" {
		b.Fatalf("-onnx.provider %q: want cpu or cuda", *benchProvider)
	}
	if *benchProvider != "cpu" || *benchModel != "" {
		if _, err := os.Stat(LibraryPath("")); err != nil {
			b.Fatalf("ONNX Runtime library: %v (set %s)", err, LibraryEnv)
		}
	}
}

// benchRewarder loads the benchmark model on the asked provider, and fails
// where it would run elsewhere.
func benchRewarder(b *testing.B, cfg Config) *Rewarder {
	r, err := NewRewarder(cfg)
	if err != nil {
		b.Fatal(err)
	}
	if r.Provider() != cfg.Provider {
		r.Close()
		b.Fatalf("model runs on %s, not %s", r.Provider(), cfg.Provider)
	}
	return r
}

// benchSamples are n answers of 1 to 4 sentences (17 to 44 tokens with the
// prompt), each scale times as many sentences.
func benchSamples(n, scale int) []rm.Sample {
	out := make([]rm.Sample, n)
	for i := range out {
		out[i] = rm.Sample{Prompt: "why is the sky blue?", Response: strings.Repeat("the sky is blue because air scatters light. ", (1+i%4)*scale)}
	}
	return out
}

// BenchmarkScoreBatch scores one call of b samples at a time.
func BenchmarkScoreBatch(b *testing.B) {
	for _, n := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			cfg, scale := benchConfig(b, 64, 0)
			r := benchRewarder(b, cfg)
			defer r.Close()
			ss := benchSamples(n, scale)
			if _, err := r.Score(context.Background(), ss); err != nil { // warm-up: a provider's first run sets up its kernels and memory
				b.Fatal(err)
			}
			for b.Loop() {
				if _, err := r.Score(context.Background(), ss); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "responses/s")
		})
	}
}

// BenchmarkConcurrentCallers has 64 goroutines each scoring one response,
// without dynamic batching (one sample per run) and with it (up to 64 per
// run; what queued during the previous run, or also what arrives within
// max_wait).
func BenchmarkConcurrentCallers(b *testing.B) {
	for _, c := range []struct {
		name  string
		batch int
		wait  time.Duration
	}{{"batching=off", 1, 0}, {"batching=on", 64, 0}, {"batching=on,max_wait=2ms", 64, 2 * time.Millisecond}} {
		b.Run(c.name, func(b *testing.B) {
			cfg, scale := benchConfig(b, c.batch, c.wait)
			r := benchRewarder(b, cfg)
			defer r.Close()
			ss := benchSamples(64, scale)
			round := func() {
				var wg sync.WaitGroup
				for g := range 64 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if _, err := r.Score(context.Background(), ss[g:g+1]); err != nil {
							b.Error(err)
						}
					}()
				}
				wg.Wait()
			}
			round() // warm-up, as in BenchmarkScoreBatch
			runs0, _ := r.Stats()
			for b.Loop() {
				round()
			}
			runs, _ := r.Stats()
			b.ReportMetric(64*float64(b.N)/b.Elapsed().Seconds(), "responses/s")
			b.ReportMetric(float64(runs-runs0)/float64(b.N), "runs/op")
		})
	}
}

// BenchmarkARMStep is one guided step's token-reward time: 8 one-token
// candidates after a partial answer that starts at the given length and
// grows by one token an op (run it with a fixed count, e.g. -benchtime
// 100x), with the key/value model (which feeds only the new token) and
// without (which reads the whole context every step).
func BenchmarkARMStep(b *testing.B) {
	words := strings.Fields("the sky is blue because air scatters light so the sun helps plants make food which is good")
	next := []string{" the", " sky", " is", " blue", " because", " air", " so", " which"}
	for _, model := range []string{"arm_kv.onnx", "arm.onnx"} {
		for _, length := range []int{16, 64, 256} {
			b.Run(fmt.Sprintf("%s/answer=%d", strings.TrimSuffix(model, ".onnx"), length), func(b *testing.B) {
				benchFlags(b)
				cfg := config(b, model)
				cfg.Library, cfg.MaxLength, cfg.Provider = LibraryPath(""), 512, *benchProvider
				a, err := NewARM(cfg)
				if err != nil {
					b.Fatal(err)
				}
				if a.sess.provider != cfg.Provider {
					a.Close()
					b.Fatalf("model runs on %s, not %s", a.sess.provider, cfg.Provider)
				}
				defer a.Close()
				s := rm.Sample{Prompt: "why is the sky blue?"}
				for i := range length {
					s.Response += " " + words[i%len(words)]
				}
				if _, err := a.LogProbs(context.Background(), s, next); err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					s.Response += " " + words[i%len(words)] // one token more, as a guided step adds
					i++
					if _, err := a.LogProbs(context.Background(), s, next); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
