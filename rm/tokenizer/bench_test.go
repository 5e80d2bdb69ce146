package tokenizer

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// BenchmarkEncode reports tokens per second on a mixed English, code and
// Unicode text for each golden tokenizer.
func BenchmarkEncode(b *testing.B) {
	text := strings.Repeat("The quick brown fox jumps over the lazy dog. def f(x):\n    return x**2  # ok\nÜnïcödé 東京 😀 1234567 ", 20)
	for _, name := range []string{"llama3", "qwen3", "gemma3"} {
		b.Run(name, func(b *testing.B) {
			tok := load(b, name)
			n := len(tok.Encode(text))
			b.SetBytes(int64(len(text)))
			b.ResetTimer()
			for b.Loop() {
				tok.Encode(text)
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
		})
	}
}

// FuzzEncodeDecode checks that encoding never panics and that decoding
// gives the (normalized) text back for the byte-level tokenizer.
func FuzzEncodeDecode(f *testing.F) {
	for _, s := range []string{"Hello, world!", "  leading", "\n\n\t", "<|begin_of_text|>x", "😀👍🏽", "ﬁ İ ß", "'s'll'VE"} {
		f.Add(s)
	}
	tok := load(f, "llama3")
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		ids := tok.Encode(s)
		if got := tok.Decode(ids); got != s {
			t.Errorf("decode(encode(%q)) = %q", s, got)
		}
	})
}
