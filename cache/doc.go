// Package cache owns Steergate's caches: one small byte-oriented interface
// (single and batched gets and sets) with two implementations: an
// in-memory LRU bounded in bytes with a TTL per entry, and Redis
// (standalone, Sentinel or Cluster) shared by every replica, which never
// fails or slows a request for long: reads within a budget, writes queued
// in the background, a circuit after failed reads. Keys are built by
// callers from everything a value depends on.
package cache
