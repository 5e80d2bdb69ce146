// Package tokenizer owns reading text the way a reward model was trained
// to: it loads a Hugging Face tokenizer.json and encodes and decodes with
// its added tokens, normalizers, pre-tokenizers (regular expressions with
// lookahead through regexp2), and models: byte-level BPE (Llama 3, Qwen),
// SentencePiece-style BPE with byte fallback (Gemma, Llama 2) and WordPiece
// (BERT), plus the post-processor's special tokens for single texts and
// pairs.
package tokenizer
