package cache

import (
	"container/list"
	"context"
	"sync"
	"time"
)

// Cache stores byte values under string keys. A cache never fails its
// caller: an unavailable store is a miss on read and a no-op on write, and
// the errors returned are for tests and metrics only.
type Cache interface {
	Get(ctx context.Context, key string) ([]byte, bool, error)
	// GetMany looks several keys up at once (one round trip where the
	// store allows); a miss is a nil entry.
	GetMany(ctx context.Context, keys []string) ([][]byte, error)
	Set(ctx context.Context, key string, val []byte, ttl time.Duration) error
	SetMany(ctx context.Context, items []Item, ttl time.Duration) error
}

// Item is one key and value to store.
type Item struct {
	Key string
	Val []byte
}

// Memory is an LRU cache bounded in bytes (keys and values), with a TTL per
// entry. Safe for concurrent use.
type Memory struct {
	mu       sync.Mutex
	maxBytes int
	bytes    int
	ll       *list.List
	items    map[string]*list.Element
	now      func() time.Time
}

type entry struct {
	key     string
	val     []byte
	expires time.Time // zero: never
}

var _ Cache = (*Memory)(nil)

// NewMemory returns a cache holding at most maxBytes.
func NewMemory(maxBytes int) *Memory {
	return &Memory{maxBytes: maxBytes, ll: list.New(), items: map[string]*list.Element{}, now: time.Now}
}

func (m *Memory) Get(_ context.Context, key string) ([]byte, bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	el, ok := m.items[key]
	if !ok {
		return nil, false, nil
	}
	e := el.Value.(*entry)
	if !e.expires.IsZero() && m.now().After(e.expires) {
		m.remove(el)
		return nil, false, nil
	}
	m.ll.MoveToFront(el)
	return e.val, true, nil
}

func (m *Memory) Set(_ context.Context, key string, val []byte, ttl time.Duration) error {
	size := len(key) + len(val)
	m.mu.Lock()
	defer m.mu.Unlock()
	if el, ok := m.items[key]; ok {
		m.remove(el)
	}
	if size > m.maxBytes {
		return nil // larger than the whole cache: not cached
	}
	e := &entry{key: key, val: val}
	if ttl > 0 {
		e.expires = m.now().Add(ttl)
	}
	m.items[key] = m.ll.PushFront(e)
	m.bytes += size
	for m.bytes > m.maxBytes {
		m.remove(m.ll.Back())
	}
	return nil
}

func (m *Memory) GetMany(ctx context.Context, keys []string) ([][]byte, error) {
	out := make([][]byte, len(keys))
	for i, k := range keys {
		out[i], _, _ = m.Get(ctx, k)
	}
	return out, nil
}

func (m *Memory) SetMany(ctx context.Context, items []Item, ttl time.Duration) error {
	for _, it := range items {
		_ = m.Set(ctx, it.Key, it.Val, ttl)
	}
	return nil
}

func (m *Memory) remove(el *list.Element) {
	e := el.Value.(*entry)
	m.ll.Remove(el)
	delete(m.items, e.key)
	m.bytes -= len(e.key) + len(e.val)
}

// Len returns the number of entries.
func (m *Memory) Len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ll.Len()
}
