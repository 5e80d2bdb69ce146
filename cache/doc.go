// Package cache owns Steergate's caches: one small byte-oriented interface
// and its in-memory implementation (LRU, TTL, a bound in bytes). Keys are
// built by callers from everything a value depends on.
package cache
