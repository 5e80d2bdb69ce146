// Package judge owns rewards computed by an LLM through a backend: the
// yes/no judge, log P("Yes") − log P("No") read from the top logprobs of
// the judge's first answer token; the rating judge, a 1–10 rating read from
// the text (for backends without logprobs); the critique judge, a critique
// and then a 1–10 score, the critique kept as the sample's detail; and the
// density-ratio reward log p_strong(response) − log p_weak(response) where
// both backends can score given text.
package judge
