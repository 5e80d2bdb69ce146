package main

import (
	"runtime/debug"
	"runtime/metrics"
	"testing"
)

func TestGCPercentPutsTheGoalAtTheFloor(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		live, roots uint64
		want        int
	}{
		{1 * mib, 0, 700},       // 1 + 1×7 = 8 MiB
		{1 * mib, 1 * mib, 350}, // 1 + 2×3.5 = 8 MiB
		{4 * mib, 0, 100},       // twice the live heap reaches the floor
		{6 * mib, 0, 100},       // and passes it: Go's default
		{0, 0, 100},             // nothing measured yet
		{100, 0, 10000},         // a tiny heap: capped
	} {
		if got := gcPercent(c.live, c.roots, 8*mib); got != c.want {
			t.Errorf("gcPercent(%d, %d) = %d, want %d", c.live, c.roots, got, c.want)
		}
	}
}

// tune sets GOGC as gcPercent says for the live heap the runtime reports;
// a floor far above this process's heap makes it move.
func TestGCTunerSetsGOGC(t *testing.T) {
	t.Cleanup(func() { debug.SetGCPercent(100) })
	tu := newGCTuner(1 << 40)
	tu.tune()
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}}
	metrics.Read(s)
	if got := int(s[0].Value.Uint64()); got != tu.percent || got <= 100 {
		t.Fatalf("GOGC is %d after tune, the tuner says %d; want it raised above 100", got, tu.percent)
	}
}
