// Package ollama adapts an Ollama server to backend.Backend through the
// official client, github.com/ollama/ollama/api: /api/chat for chat,
// /api/generate with raw for plain completions and for continuing a partial
// assistant message, per-token logprobs, and streaming. Sampling options are
// built as a map so that zero values survive, and Ollama's own sampling
// defaults are overridden so that an OpenAI request means the same here.
package ollama
