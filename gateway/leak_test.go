package gateway_test

import (
	"testing"

	"github.com/steergate/steergate/test/leak"
)

// TestMain fails the package's tests if a goroutine they started is still
// running at their end.
func TestMain(m *testing.M) { leak.VerifyTestMain(m) }
