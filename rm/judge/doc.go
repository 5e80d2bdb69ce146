// Package judge owns rewards computed by an LLM through a backend: the
// judge reward log P("Yes") − log P("No") read from the top logprobs of the
// judge's first answer token (with a parsed 1–10 rating where the backend
// has no logprobs), and the density-ratio reward log p_strong(response) −
// log p_weak(response) where both backends can score given text.
package judge
