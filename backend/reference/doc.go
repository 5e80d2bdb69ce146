// Package reference owns the embedded demo model, a trigram model over a
// short corpus that samples reproducibly and reports exact logprobs of its
// own distribution, served in-process as a Backend and over HTTP by Server
// in the Ollama and OpenAI (vLLM-flavoured) wire formats, for tests,
// benchmarks and `make run` with nothing installed.
package reference
