// Package rmtest owns test helpers for reward models: a rewarder that
// scores from a fixed table, and (under testdata) the tiny ONNX models and
// tokenizer the project generates.
package rmtest
