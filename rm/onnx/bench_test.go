package onnx

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steergate/steergate/rm"
)

func benchSamples(n int) []rm.Sample {
	out := make([]rm.Sample, n)
	for i := range out {
		out[i] = rm.Sample{Prompt: "why is the sky blue?", Response: strings.Repeat("the sky is blue because air scatters light. ", 1+i%4)}
	}
	return out
}

// BenchmarkScoreBatch scores one call of b samples at a time.
func BenchmarkScoreBatch(b *testing.B) {
	for _, n := range []int{1, 4, 16, 64} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			cfg := config(b, "seq_reward_types.onnx")
			cfg.Library = LibraryPath("")
			cfg.MaxBatch, cfg.MaxWait, cfg.MaxLength = 64, 0, 128
			r, err := NewRewarder(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ss := benchSamples(n)
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
			cfg := config(b, "seq_reward_types.onnx")
			cfg.Library = LibraryPath("")
			cfg.MaxBatch, cfg.MaxWait, cfg.MaxLength = c.batch, c.wait, 128
			r, err := NewRewarder(cfg)
			if err != nil {
				b.Fatal(err)
			}
			defer r.Close()
			ss := benchSamples(64)
			for b.Loop() {
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
			b.ReportMetric(64*float64(b.N)/b.Elapsed().Seconds(), "responses/s")
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
				cfg := config(b, model)
				cfg.Library, cfg.MaxLength = LibraryPath(""), 512
				a, err := NewARM(cfg)
				if err != nil {
					b.Fatal(err)
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
