// Package experiment owns A/B tests of steering settings: which arm a
// request's unit is in (sticky, from a hash), the arm's steering laid
// under the request's, the per-arm totals every replica adds to (Redis or
// memory), and the statistics read from them: means with intervals,
// differences from control with an always-valid confidence sequence and
// Welch's test beside it, feedback win rates with Wilson intervals, cost,
// and a verdict only when the confidence sequence allows one.
package experiment
