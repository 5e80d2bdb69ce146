//go:build !race

package main

// streamStackLimit is the stack a stream's connection goroutine keeps
// within (TestStreamStackStaysWithin8KiB).
const streamStackLimit = 8 << 10
