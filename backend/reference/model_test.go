package reference

import (
	"math"
	"strings"
	"testing"
)

func TestSplitRoundTrips(t *testing.T) {
	for _, s := range []string{"", "Hello, world.", "  two  spaces\nand lines ", "don't stop!"} {
		if got := strings.Join(Split(s), ""); got != s {
			t.Errorf("Split(%q) joins to %q", s, got)
		}
	}
}

func TestDistIsADistribution(t *testing.T) {
	m := Shared()
	p := make([]float64, m.VocabSize())
	for _, ctx := range [][2]int32{{bos, bos}, {unk, unk}, {bos, m.ids[" The"]}} {
		for _, topic := range [][]int32{nil, m.Topic("Why is the sky blue?")} {
			m.Dist(p, ctx[0], ctx[1], topic)
			var sum float64
			for _, x := range p {
				if x < 0 {
					t.Fatal("negative probability")
				}
				sum += x
			}
			if math.Abs(sum-1) > 1e-9 {
				t.Errorf("context %v topic %v: sum %v", ctx, topic, sum)
			}
			if p[bos] != 0 || p[unk] != 0 {
				t.Errorf("bos/unk must never be generated")
			}
		}
	}
}

func TestSamplerFollowsDistribution(t *testing.T) {
	p := []float64{0.5, 0, 0, 0.3, 0.2}
	s := NewSampler(1, 1, 1, 0, len(p))
	counts := make([]float64, len(p))
	const n = 20000
	for range n {
		counts[s.Sample(p)]++
	}
	for w := range p {
		if math.Abs(counts[w]/n-p[w]) > 0.015 {
			t.Errorf("token %d: frequency %.3f, want %.3f", w, counts[w]/n, p[w])
		}
	}
	// top_p 0.6 keeps {0, 3}: renormalised 0.625 / 0.375.
	s = NewSampler(2, 1, 0.6, 0, len(p))
	clear(counts)
	for range n {
		counts[s.Sample(p)]++
	}
	if counts[4] != 0 || math.Abs(counts[0]/n-0.625) > 0.015 {
		t.Errorf("top_p: counts %v", counts)
	}
	if g := NewSampler(3, 0, 1, 0, len(p)).Sample(p); g != 0 {
		t.Errorf("greedy picked %d", g)
	}
}

func TestTop(t *testing.T) {
	p := []float64{0.1, 0.4, 0.1, 0.3, 0.1}
	got := Top(p, 3)
	want := []int32{1, 3, 0}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("Top = %v, want %v", got, want)
		}
	}
}
