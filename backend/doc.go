// Package backend owns the contract between Steergate and the LLM servers it
// fronts: the Backend interface, capabilities, the request and generation
// types every adapter speaks, the error taxonomy, routing of model names to
// backends, and fanning a request with n > 1 out to backends without native n.
//
// Adapters live in sub-packages: ollama, openai and reference (the embedded
// demo model). backendtest holds the conformance suite they all pass.
package backend
