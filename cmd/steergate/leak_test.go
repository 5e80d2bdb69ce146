package main

import (
	"testing"

	"github.com/steergate/steergate/backend/ollama/ollamatest"
	"github.com/steergate/steergate/test/leak"
)

// TestMain stops the real Ollama the tests shared, then fails if a
// goroutine they started is still running.
func TestMain(m *testing.M) { leak.VerifyTestMain(m, ollamatest.StopAll) }
