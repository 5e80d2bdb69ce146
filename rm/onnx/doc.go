// Package onnx owns reward models run through ONNX Runtime (the project's
// only cgo package, via github.com/yalue/onnxruntime_go): loading the
// runtime library, sessions on the CPU or CUDA execution provider with an
// optional fallback to CPU, discovery and checking of the model's inputs
// and outputs (and, without the runtime, their names from the file),
// tokenization in the model's own input format with truncation and
// padding, and dynamic batching that coalesces concurrent scoring calls
// into one run. Rewarder reads a [batch] or [batch, K] output as K
// objectives, and a gated model's second output as their gates; PRM reads
// a process reward model's step scores at its separator token; ARM reads
// an autoregressive reward model's [batch, sequence, vocabulary] logits as
// next-token log-probabilities after an open assistant turn, from one row
// when the candidates are single tokens of its own, reusing an exported
// key/value cache across a growing answer.
package onnx
