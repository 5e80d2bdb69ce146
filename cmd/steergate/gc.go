package main

import (
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// heapFloor is the heap `serve` may grow to before the collector runs,
// however small its live heap. A gateway's live heap is a megabyte or two;
// at Go's default (a goal of twice the live heap, and 4 MiB at least) it
// collected every few hundred requests, and each cycle slows the requests
// it overlaps. With the floor, 40,000 passthrough requests at 64 clients
// took 26 collections instead of 88, and the cache-hit p99 fell by about a
// quarter in quiet runs. Where twice the live heap is more, as with a
// thousand open streams, Go's default holds.
const heapFloor = 8 << 20

var floorOnce sync.Once

// floorHeap keeps the collector's goal at heapFloor while the live heap is
// small, by setting GOGC after each collection. A GOGC set in the
// environment is the operator's, and left alone.
func floorHeap() {
	if os.Getenv("GOGC") != "" {
		return
	}
	floorOnce.Do(func() { (&gcCycle{newGCTuner(heapFloor)}).arm() })
}

// gcTuner sets GOGC for a floor; its percent is what it last set.
type gcTuner struct {
	floor   uint64
	percent int
	sample  []metrics.Sample
}

func newGCTuner(floor uint64) *gcTuner {
	return &gcTuner{floor: floor, percent: 100, sample: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"}, {Name: "/gc/scan/stack:bytes"}, {Name: "/gc/scan/globals:bytes"}}}
}

// tune sets GOGC for the live heap the last collection found; small moves
// leave it as it is.
func (t *gcTuner) tune() {
	metrics.Read(t.sample)
	p := gcPercent(t.sample[0].Value.Uint64(), t.sample[1].Value.Uint64()+t.sample[2].Value.Uint64(), t.floor)
	if d := p - t.percent; d > t.percent/4 || -d > t.percent/4 {
		debug.SetGCPercent(p)
		t.percent = p
	}
}

// gcPercent is the GOGC that puts the collector's goal, live + (live +
// roots) × GOGC/100 with roots the stacks and globals it scans, at floor,
// or Go's default where that puts it higher.
func gcPercent(live, roots, floor uint64) int {
	if live+roots == 0 || 2*live+roots >= floor {
		return 100
	}
	return min(int((floor-live)*100/(live+roots)), 10000)
}

// gcCycle is garbage whose finalizer runs once a collection has found it:
// once a cycle, each arming the next.
type gcCycle struct{ t *gcTuner }

func (c *gcCycle) arm() { runtime.SetFinalizer(c, (*gcCycle).done) }

func (c *gcCycle) done() {
	c.t.tune()
	(&gcCycle{c.t}).arm()
}
