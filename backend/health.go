package backend

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Probe is one backend to check actively: every Interval its models are
// listed and the outcome goes to its breaker, so a dead backend is skipped
// before a request finds out and a revived one is tried again.
type Probe struct {
	Name     string
	Backend  Lister
	Breaker  *Breaker
	Interval time.Duration
}

// Health runs the probes until Close.
type Health struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// StartHealth starts one goroutine per probe.
func StartHealth(probes []Probe, log *slog.Logger) *Health {
	ctx, cancel := context.WithCancel(context.Background())
	h := &Health{cancel: cancel}
	for _, p := range probes {
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			t := time.NewTicker(p.Interval)
			defer t.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
				cctx, cancel := context.WithTimeout(ctx, min(p.Interval, 5*time.Second))
				_, err := p.Backend.Models(cctx)
				cancel()
				if ctx.Err() != nil {
					return
				}
				if err != nil {
					log.Warn("backend health check failed", "backend", p.Name, "err", err)
				}
				p.Breaker.Record(err == nil)
			}
		}()
	}
	return h
}

// Close stops every probe and waits for them; safe on nil and repeatable.
func (h *Health) Close() {
	if h == nil {
		return
	}
	h.cancel()
	h.wg.Wait()
}
