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
