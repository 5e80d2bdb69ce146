//go:build linux

package gateway

import (
	"context"
	"errors"
	"testing"
	"time"
)

// The watcher cancels a request whose client closes its connection, leaves
// one whose client sends its next request (pipelined) alone, and cancels
// nothing once the request has stopped the watch; many connections share
// its one goroutine.
func TestWatcherTellsGoneFromPipelined(t *testing.T) {
	clk := runClock(t)
	type req struct {
		ctx  context.Context
		stop func()
	}
	watchOne := func() (req, func() error, func([]byte) error) {
		server, client := tcpPair(t)
		ctx, cancel := context.WithCancelCause(context.Background())
		stop := watchDisconnect(clk, server, cancel)
		return req{ctx, stop}, client.Close, func(b []byte) error { _, err := client.Write(b); return err }
	}
	gone, closeGone, _ := watchOne()
	piped, closePiped, sendPiped := watchOne()
	stopped, closeStopped, _ := watchOne()
	time.Sleep(3 * watchDelay) // every watch has begun
	if err := sendPiped([]byte("GET / HTTP/1.1\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	stopped.stop()
	if err := closeGone(); err != nil {
		t.Fatal(err)
	}
	_ = closeStopped()
	select {
	case <-gone.ctx.Done():
		if !errors.Is(context.Cause(gone.ctx), errClientGone) {
			t.Errorf("cause %v", context.Cause(gone.ctx))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a gone client was not noticed")
	}
	// The pipelined request ended its watch: the client closing after it
	// cancels nothing.
	time.Sleep(50 * time.Millisecond)
	_ = closePiped()
	time.Sleep(100 * time.Millisecond)
	if err := context.Cause(piped.ctx); err != nil {
		t.Errorf("a client that sent its next request was taken as gone: %v", err)
	}
	if err := context.Cause(stopped.ctx); err != nil {
		t.Errorf("a stopped watch cancelled its request: %v", err)
	}
	clk.watcher.mu.Lock()
	left := len(clk.watcher.watched)
	clk.watcher.mu.Unlock()
	piped.stop()
	gone.stop()
	if left != 0 {
		t.Errorf("%d connections still watched", left)
	}
}
