// Package rm owns reward models: the Rewarder interface (named objective
// scores per (prompt, response) sample, batched), the Explainer interface
// (a detail beside the scores: step scores, a critique), the StepScorer
// interface (a process reward's per-step scores) and the TokenRewarder
// interface (an autoregressive reward model's log-probabilities of
// candidate next pieces of text), and the code that combines rewards
// safely: per-objective normalization, transforms (clip, log-sigmoid
// against a fixed or per-prompt reference), ensembles over members'
// utilities (mean, min, mean − λ·std, mean − λ·variance), gated utilities
// Σ w_k·g_k·r_k, step rules (clip, delta, aggregates), a length-bias
// penalty, the utility Σ w_k·t(r_k) under a weight vector, and a score cache
// in front of any rewarder.
//
// Implementations live in sub-packages: rules (no model), judge (an LLM
// through a backend), remote (KServe v2 / Triton), onnx (ONNX Runtime), with
// tokenizer for the models' own tokenization.
package rm
