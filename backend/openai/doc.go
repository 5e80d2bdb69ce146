// Package openai adapts any OpenAI-compatible server (OpenAI, vLLM,
// llama.cpp server, Ollama's /v1) to backend.Backend on the fasthttp
// client: chat and completions, streaming (server-sent events), logprobs and
// native n, with flavours for what differs: vLLM's continue_final_message and
// echo scoring, llama.cpp's implicit assistant prefill, and OpenAI itself,
// which continues nothing.
package openai
