// Package backendtest owns the conformance suite every backend adapter
// passes: generation, streaming equal to generation, seeded reproducibility,
// max_tokens, stop sequences, logprobs, continuation, n, cancellation and
// errors. Adapters run it against the reference model's wire faces.
package backendtest
