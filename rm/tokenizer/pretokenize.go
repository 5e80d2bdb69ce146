package tokenizer

import (
	"fmt"
	"strings"
	"unicode"

	"github.com/dlclark/regexp2/v2"
)

// preTokenizer splits a normalized text into pieces the model encodes
// separately.
type preTokenizer func(pieces []string) []string

// gpt2Pattern is ByteLevel's own split when use_regex is on.
const gpt2Pattern = `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`

func newPreTokenizer(c *componentJSON) (preTokenizer, error) {
	if c == nil {
		return func(p []string) []string { return p }, nil
	}
	switch c.Type {
	case "Sequence":
		var fs []preTokenizer
		for i := range c.Pretokenizers {
			f, err := newPreTokenizer(&c.Pretokenizers[i])
			if err != nil {
				return nil, err
			}
			fs = append(fs, f)
		}
		return func(p []string) []string {
			for _, f := range fs {
				p = f(p)
			}
			return p
		}, nil
	case "Split":
		m, err := newMatcher(c.Pattern)
		if err != nil {
			return nil, err
		}
		return eachPiece(func(s string) []string { return split(s, m, c.Behavior, c.Invert) }), nil
	case "ByteLevel":
		var re matcher
		if flag(c.UseRegex, true) {
			r, err := compile(gpt2Pattern)
			if err != nil {
				return nil, err
			}
			re = regexMatcher{r}
		}
		prefix := c.AddPrefixSpace
		return eachPiece(func(s string) []string {
			if prefix && !strings.HasPrefix(s, " ") {
				s = " " + s
			}
			parts := []string{s}
			if re != nil {
				parts = split(s, re, "Isolated", false)
			}
			for i, p := range parts {
				parts[i] = byteLevel(p)
			}
			return parts
		}), nil
	case "Metaspace":
		rep := c.Replacement
		if rep == "" {
			rep = "▁"
		}
		scheme := c.PrependScheme
		if scheme == "" {
			scheme = "always"
		}
		doSplit := flag(c.Split, true)
		return func(pieces []string) []string {
			var out []string
			for i, s := range pieces {
				s = strings.ReplaceAll(s, " ", rep)
				if scheme == "always" || (scheme == "first" && i == 0) {
					if !strings.HasPrefix(s, rep) {
						s = rep + s
					}
				}
				if !doSplit {
					out = append(out, s)
					continue
				}
				out = append(out, split(s, stringMatcher(rep), "MergedWithNext", false)...)
			}
			return out
		}, nil
	case "WhitespaceSplit":
		return eachPiece(strings.Fields), nil
	case "Whitespace":
		r, err := compile(`\w+|[^\w\s]+`)
		if err != nil {
			return nil, err
		}
		return eachPiece(func(s string) []string { return split(s, regexMatcher{r}, "Removed", true) }), nil
	case "BertPreTokenizer":
		return eachPiece(bertSplit), nil
	case "Digits":
		expr := `\p{Nd}+`
		if c.IndividualDigits {
			expr = `\p{Nd}`
		}
		r, err := compile(expr)
		if err != nil {
			return nil, err
		}
		return eachPiece(func(s string) []string { return split(s, regexMatcher{r}, "Isolated", false) }), nil
	case "Punctuation":
		return eachPiece(func(s string) []string { return split(s, funcMatcher(isPunct), "Isolated", false) }), nil
	}
	return nil, fmt.Errorf("pre-tokenizer %q is not supported", c.Type)
}

func eachPiece(f func(string) []string) preTokenizer {
	return func(pieces []string) []string {
		var out []string
		for _, p := range pieces {
			out = append(out, f(p)...)
		}
		return out
	}
}

// matcher finds the byte ranges of a pattern's matches.
type matcher interface {
	find(s string) [][2]int
}

type regexMatcher struct{ re *regexp2.Regexp }

func (m regexMatcher) find(s string) [][2]int {
	var out [][2]int
	match, _ := m.re.FindStringMatch(s)
	for match != nil {
		i, n := match.ByteRange()
		if n > 0 {
			out = append(out, [2]int{i, i + n})
		}
		match, _ = m.re.FindNextMatch(match)
	}
	return out
}

type stringMatcher string

func (m stringMatcher) find(s string) [][2]int {
	var out [][2]int
	if m == "" {
		return nil
	}
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], string(m))
		if j < 0 {
			break
		}
		out = append(out, [2]int{i + j, i + j + len(m)})
		i += j + len(m)
	}
	return out
}

// funcMatcher matches single runes for which it returns true.
type funcMatcher func(rune) bool

func (f funcMatcher) find(s string) [][2]int {
	var out [][2]int
	for i, r := range s {
		if f(r) {
			out = append(out, [2]int{i, i + len(string(r))})
		}
	}
	return out
}

func newMatcher(p *patternJSON) (matcher, error) {
	switch {
	case p == nil:
		return nil, fmt.Errorf("a Split pre-tokenizer needs a pattern")
	case p.String != nil:
		return stringMatcher(*p.String), nil
	case p.Regex != nil:
		r, err := compile(*p.Regex)
		if err != nil {
			return nil, err
		}
		return regexMatcher{r}, nil
	}
	return nil, fmt.Errorf("a Split pattern must be String or Regex")
}

// split cuts s at the matches, keeping them by behavior: Isolated (own
// pieces), Removed, MergedWithPrevious, MergedWithNext, Contiguous. With
// invert, the matches are the pieces and the rest is what is split on.
func split(s string, m matcher, behavior string, invert bool) []string {
	type span struct {
		a, b  int
		match bool
	}
	var spans []span
	last := 0
	for _, r := range m.find(s) {
		if r[0] > last {
			spans = append(spans, span{last, r[0], invert})
		}
		spans = append(spans, span{r[0], r[1], !invert})
		last = r[1]
	}
	if last < len(s) {
		spans = append(spans, span{last, len(s), invert})
	}
	var out []string
	switch behavior {
	case "Removed":
		for _, sp := range spans {
			if !sp.match {
				out = append(out, s[sp.a:sp.b])
			}
		}
	case "MergedWithPrevious":
		for _, sp := range spans {
			if sp.match && len(out) > 0 {
				out[len(out)-1] += s[sp.a:sp.b]
			} else {
				out = append(out, s[sp.a:sp.b])
			}
		}
	case "MergedWithNext":
		pending := ""
		for _, sp := range spans {
			if sp.match {
				pending += s[sp.a:sp.b]
				continue
			}
			out = append(out, pending+s[sp.a:sp.b])
			pending = ""
		}
		if pending != "" {
			out = append(out, pending)
		}
	case "Contiguous":
		for i, sp := range spans {
			if i > 0 && sp.match && spans[i-1].match {
				out[len(out)-1] += s[sp.a:sp.b]
			} else {
				out = append(out, s[sp.a:sp.b])
			}
		}
	default: // Isolated
		for _, sp := range spans {
			out = append(out, s[sp.a:sp.b])
		}
	}
	return out
}

func isPunct(r rune) bool {
	return r >= 33 && r <= 47 || r >= 58 && r <= 64 || r >= 91 && r <= 96 || r >= 123 && r <= 126 || unicode.IsPunct(r)
}

// bertSplit splits on whitespace and isolates punctuation.
func bertSplit(s string) []string {
	var out []string
	for _, w := range strings.Fields(s) {
		out = append(out, split(w, funcMatcher(isPunct), "Isolated", false)...)
	}
	return out
}

// The GPT-2 byte-to-unicode table: printable bytes map to themselves, the
// others to code points from 256 up, so every byte is a visible character.
var byteToRune, runeToByte = func() ([256]rune, map[rune]byte) {
	var b2r [256]rune
	r2b := map[rune]byte{}
	n := 0
	for b := range 256 {
		if b >= '!' && b <= '~' || b >= 0xA1 && b <= 0xAC || b >= 0xAE && b <= 0xFF {
			b2r[b] = rune(b)
		} else {
			b2r[b] = rune(256 + n)
			n++
		}
		r2b[b2r[b]] = byte(b)
	}
	return b2r, r2b
}()

func byteLevel(s string) string {
	var b strings.Builder
	for i := range len(s) {
		b.WriteRune(byteToRune[s[i]])
	}
	return b.String()
}
