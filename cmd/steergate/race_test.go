//go:build race

package main

// streamStackLimit is TestStreamStackStaysWithin8KiB's limit in a race
// build, whose instrumented frames are larger.
const streamStackLimit = 16 << 10
