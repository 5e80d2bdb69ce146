package tokenizer

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/dlclark/regexp2/v2"
	"golang.org/x/text/unicode/norm"
)

type normalizer func(string) string

func newNormalizer(c *componentJSON) (normalizer, error) {
	if c == nil {
		return func(s string) string { return s }, nil
	}
	switch c.Type {
	case "NFC":
		return norm.NFC.String, nil
	case "NFD":
		return norm.NFD.String, nil
	case "NFKC":
		return norm.NFKC.String, nil
	case "NFKD":
		return norm.NFKD.String, nil
	case "Lowercase":
		return strings.ToLower, nil
	case "Strip":
		return func(s string) string {
			if c.Left {
				s = strings.TrimLeftFunc(s, unicode.IsSpace)
			}
			if c.Right {
				s = strings.TrimRightFunc(s, unicode.IsSpace)
			}
			return s
		}, nil
	case "StripAccents":
		return stripAccents, nil
	case "Prepend":
		return func(s string) string {
			if s == "" {
				return s
			}
			return c.Prepend + s
		}, nil
	case "Replace":
		return newReplace(c.Pattern, c.Content)
	case "BertNormalizer":
		return bertNormalizer(c), nil
	case "Sequence":
		var fs []normalizer
		for i := range c.Normalizers {
			f, err := newNormalizer(&c.Normalizers[i])
			if err != nil {
				return nil, err
			}
			fs = append(fs, f)
		}
		return func(s string) string {
			for _, f := range fs {
				s = f(s)
			}
			return s
		}, nil
	}
	return nil, fmt.Errorf("normalizer %q is not supported", c.Type)
}

func newReplace(p *patternJSON, content string) (func(string) string, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("a Replace normalizer needs a pattern")
	case p.String != nil:
		from := *p.String
		return func(s string) string { return strings.ReplaceAll(s, from, content) }, nil
	case p.Regex != nil:
		re, err := compile(*p.Regex)
		if err != nil {
			return nil, err
		}
		return func(s string) string {
			out, err := re.Replace(s, content, -1, -1)
			if err != nil {
				return s
			}
			return out
		}, nil
	}
	return nil, fmt.Errorf("a Replace pattern must be String or Regex")
}

// compile compiles a tokenizer regex with the flags that make .NET-style
// regexp2 read patterns as the JavaScript and Rust implementations do.
func compile(expr string) (*regexp2.Regexp, error) {
	re, err := regexp2.Compile(expr, regexp2.Unicode)
	if err != nil {
		return nil, fmt.Errorf("regex %q: %w", expr, err)
	}
	return re, nil
}

func stripAccents(s string) string {
	var b strings.Builder
	for _, r := range norm.NFD.String(s) {
		if unicode.Is(unicode.Mn, r) {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func isChinese(r rune) bool {
	return r >= 0x4E00 && r <= 0x9FFF || r >= 0x3400 && r <= 0x4DBF || r >= 0x20000 && r <= 0x2A6DF ||
		r >= 0x2A700 && r <= 0x2B73F || r >= 0x2B740 && r <= 0x2B81F || r >= 0x2B820 && r <= 0x2CEAF ||
		r >= 0xF900 && r <= 0xFAFF || r >= 0x2F800 && r <= 0x2FA1F
}

func flag(p *bool, def bool) bool {
	if p == nil {
		return def
	}
	return *p
}

// bertNormalizer cleans control characters, spaces out CJK characters,
// and optionally strips accents and lower-cases (BERT's BasicTokenizer).
func bertNormalizer(c *componentJSON) normalizer {
	clean, chinese := flag(c.CleanText, true), flag(c.HandleChineseChars, true)
	lower := flag(c.Lowercase, true)
	strip := flag(c.StripAccents, lower)
	return func(s string) string {
		var b strings.Builder
		for _, r := range s {
			if clean {
				if r == 0 || r == 0xFFFD || (unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r') {
					continue
				}
				if unicode.IsSpace(r) {
					r = ' '
				}
			}
			if chinese && isChinese(r) {
				b.WriteByte(' ')
				b.WriteRune(r)
				b.WriteByte(' ')
				continue
			}
			b.WriteRune(r)
		}
		out := b.String()
		if strip {
			out = stripAccents(out)
		}
		if lower {
			out = strings.ToLower(out)
		}
		return out
	}
}
