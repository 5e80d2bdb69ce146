// Package remote owns reward models served elsewhere over the KServe v2
// inference protocol (HTTP/JSON), as Triton Inference Server speaks it, so
// that reward models can run on a shared GPU fleet. The samples are rendered
// with the model's input format and sent as one BYTES tensor; the output is
// a [batch] or [batch, K] FP32 tensor of K named objectives.
package remote
