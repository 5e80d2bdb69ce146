// Command bench measures Steergate side by side with the floor it adds to,
// in one run on one machine, and writes docs/benchmarks.md. Targets run as
// separate processes on loopback; the load generator runs here. Runs are
// interleaved and repeated, and figures are reported as medians with their
// spread and as differences and ratios to the floor, because a shared
// machine is noisy and only same-run comparisons mean anything.
package main
