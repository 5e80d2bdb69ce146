// Package rmtest owns test helpers for reward models: a rewarder that
// scores from a fixed table, (under testdata) the tiny ONNX models and
// tokenizer the project generates, and an encoder-sized model with random
// weights that the batching benchmarks time on a device.
package rmtest
