package cache

import (
	"context"
	"fmt"
	"testing"
	"time"
)

func TestMemoryLRUAndBytes(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(30) // room for three 10-byte entries
	for i := range 3 {
		_ = m.Set(ctx, fmt.Sprint("k", i), []byte("12345678"), 0)
	}
	if _, ok, _ := m.Get(ctx, "k0"); !ok { // k0 is now most recent
		t.Fatal("k0 missing")
	}
	_ = m.Set(ctx, "k3", []byte("12345678"), 0)
	if _, ok, _ := m.Get(ctx, "k1"); ok {
		t.Error("k1 should be evicted as least recently used")
	}
	for _, k := range []string{"k0", "k2", "k3"} {
		if _, ok, _ := m.Get(ctx, k); !ok {
			t.Errorf("%s evicted", k)
		}
	}
	_ = m.Set(ctx, "huge", make([]byte, 100), 0)
	if _, ok, _ := m.Get(ctx, "huge"); ok || m.Len() != 3 {
		t.Error("an entry larger than the cache must not evict everything")
	}
}

func TestMemoryTTL(t *testing.T) {
	ctx := context.Background()
	m := NewMemory(1 << 10)
	now := time.Unix(100, 0)
	m.now = func() time.Time { return now }
	_ = m.Set(ctx, "a", []byte("x"), time.Second)
	if _, ok, _ := m.Get(ctx, "a"); !ok {
		t.Fatal("fresh entry missing")
	}
	now = now.Add(2 * time.Second)
	if _, ok, _ := m.Get(ctx, "a"); ok {
		t.Error("expired entry served")
	}
}
