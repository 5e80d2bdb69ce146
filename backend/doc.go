// Package backend owns the contract between Steergate and the LLM servers it
// fronts: the Backend interface, capabilities, the request and generation
// types every adapter speaks, routing of model names to backends, pools
// with retries, failover and circuit breakers, per-backend concurrency and
// timeout limits, active health checks, fanning a request with n > 1 out to
// backends without native n, and the meter that sums what every backend
// call of a request spent. Errors are classed with package fault.
//
// Adapters live in sub-packages: ollama, openai and reference (the embedded
// demo model). backendtest holds the conformance suite they all pass.
package backend
