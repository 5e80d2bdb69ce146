package tokenizer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// decoder turns a run of tokens into text.
type decoder func(tokens []string) string

// step is one decoder of a sequence: tokens in, tokens out.
type step func(tokens []string) []string

func newDecoder(c *componentJSON) (decoder, error) {
	if c == nil {
		return func(ts []string) string { return strings.Join(ts, "") }, nil
	}
	s, err := newStep(c)
	if err != nil {
		return nil, err
	}
	return func(ts []string) string { return strings.Join(s(append([]string(nil), ts...)), "") }, nil
}

func newStep(c *componentJSON) (step, error) {
	switch c.Type {
	case "Sequence":
		var steps []step
		for i := range c.Decoders {
			s, err := newStep(&c.Decoders[i])
			if err != nil {
				return nil, err
			}
			steps = append(steps, s)
		}
		return func(ts []string) []string {
			for _, s := range steps {
				ts = s(ts)
			}
			return ts
		}, nil
	case "ByteLevel":
		return func(ts []string) []string {
			var b []byte
			for _, t := range ts {
				for _, r := range t {
					if x, ok := runeToByte[r]; ok {
						b = append(b, x)
					} else {
						b = utf8.AppendRune(b, r)
					}
				}
			}
			return []string{strings.ToValidUTF8(string(b), "\uFFFD")}
		}, nil
	case "Replace":
		f, err := newReplace(c.Pattern, c.Content)
		if err != nil {
			return nil, err
		}
		return func(ts []string) []string {
			for i, t := range ts {
				ts[i] = f(t)
			}
			return ts
		}, nil
	case "ByteFallback":
		// Runs of <0xXX> tokens become the text their bytes spell; bytes
		// that are not valid UTF-8 become U+FFFD each.
		return func(ts []string) []string {
			var out []string
			var bytes []byte
			flush := func() {
				if len(bytes) == 0 {
					return
				}
				if utf8.Valid(bytes) {
					out = append(out, string(bytes))
				} else {
					for range bytes {
						out = append(out, "\uFFFD")
					}
				}
				bytes = bytes[:0]
			}
			for _, t := range ts {
				if len(t) == 6 && strings.HasPrefix(t, "<0x") && t[5] == '>' {
					if v, err := strconv.ParseUint(t[3:5], 16, 8); err == nil {
						bytes = append(bytes, byte(v))
						continue
					}
				}
				flush()
				out = append(out, t)
			}
			flush()
			return out
		}, nil
	case "Fuse":
		return func(ts []string) []string { return []string{strings.Join(ts, "")} }, nil
	case "Strip":
		return func(ts []string) []string {
			for i, t := range ts {
				r := []rune(t)
				a, b := min(c.Start, len(r)), max(len(r)-c.Stop, 0)
				if a > b {
					a = b
				}
				ts[i] = string(r[a:b])
			}
			return ts
		}, nil
	case "Metaspace":
		rep := c.Replacement
		if rep == "" {
			rep = "▁"
		}
		return func(ts []string) []string {
			for i, t := range ts {
				t = strings.ReplaceAll(t, rep, " ")
				if i == 0 && c.PrependScheme != "never" {
					t = strings.TrimPrefix(t, " ")
				}
				ts[i] = t
			}
			return ts
		}, nil
	case "WordPiece":
		prefix := c.Prefix
		if prefix == "" {
			prefix = "##"
		}
		cleanup := flag(c.Cleanup, true)
		return func(ts []string) []string {
			for i, t := range ts {
				if i > 0 {
					if strings.HasPrefix(t, prefix) {
						t = t[len(prefix):]
					} else {
						t = " " + t
					}
				}
				if cleanup {
					for _, p := range []string{" .", " ?", " !", " ,"} {
						t = strings.ReplaceAll(t, p, p[1:])
					}
					t = strings.NewReplacer(" ' ", "'", " n't", "n't", " 'm", "'m", " 's", "'s", " 've", "'ve", " 're", "'re").Replace(t)
				}
				ts[i] = t
			}
			return ts
		}, nil
	}
	return nil, fmt.Errorf("decoder %q is not supported", c.Type)
}

// postProcessor adds special tokens around encoded texts.
type postProcessor struct {
	single, pair []templateItem
	special      map[string][]int
}

func newPostProcessor(c *componentJSON, vocab map[string]int) (*postProcessor, error) {
	p := &postProcessor{special: map[string][]int{}}
	if c == nil {
		return p, nil
	}
	seqA := templateItem{}
	seqA.Sequence = &struct {
		ID     string `json:"id"`
		TypeID int    `json:"type_id"`
	}{ID: "A"}
	switch c.Type {
	case "TemplateProcessing":
		p.single, p.pair = c.Single, c.Pair
		for name, st := range c.SpecialTokens {
			p.special[name] = st.IDs
		}
	case "BertProcessing", "RobertaProcessing":
		tok := func(x []any) (string, error) {
			if len(x) != 2 {
				return "", fmt.Errorf("%s: cls and sep must be [token, id]", c.Type)
			}
			s, _ := x[0].(string)
			id, _ := x[1].(float64)
			p.special[s] = []int{int(id)}
			return s, nil
		}
		cls, err := tok(c.Cls)
		if err != nil {
			return nil, err
		}
		sep, err := tok(c.Sep)
		if err != nil {
			return nil, err
		}
		sp := func(id string, typ int) templateItem {
			var t templateItem
			t.SpecialToken = &struct {
				ID     string `json:"id"`
				TypeID int    `json:"type_id"`
			}{id, typ}
			return t
		}
		seqB := templateItem{}
		seqB.Sequence = &struct {
			ID     string `json:"id"`
			TypeID int    `json:"type_id"`
		}{ID: "B", TypeID: 1}
		p.single = []templateItem{sp(cls, 0), seqA, sp(sep, 0)}
		p.pair = []templateItem{sp(cls, 0), seqA, sp(sep, 0), seqB, sp(sep, 1)}
		if c.Type == "RobertaProcessing" {
			p.pair = []templateItem{sp(cls, 0), seqA, sp(sep, 0), sp(sep, 0), seqB, sp(sep, 0)}
			p.pair[4].Sequence.TypeID = 0
		}
	case "ByteLevel":
		// offsets only
	case "Sequence":
		for i := range c.Processors {
			sub, err := newPostProcessor(&c.Processors[i], vocab)
			if err != nil {
				return nil, err
			}
			if sub.single != nil {
				return sub, nil
			}
		}
	default:
		return nil, fmt.Errorf("post-processor %q is not supported", c.Type)
	}
	return p, nil
}

func (p *postProcessor) apply(a, b []int, isPair bool) (ids, types []int) {
	tmpl := p.single
	if isPair {
		tmpl = p.pair
	}
	if tmpl == nil { // no post-processor: plain concatenation
		ids = append(append(ids, a...), b...)
		types = make([]int, len(a), len(ids))
		for range b {
			types = append(types, 1)
		}
		return ids, types
	}
	for _, it := range tmpl {
		switch {
		case it.SpecialToken != nil:
			for _, id := range p.special[it.SpecialToken.ID] {
				ids = append(ids, id)
				types = append(types, it.SpecialToken.TypeID)
			}
		case it.Sequence != nil:
			seq := a
			if it.Sequence.ID == "B" {
				seq = b
			}
			for _, id := range seq {
				ids = append(ids, id)
				types = append(types, it.Sequence.TypeID)
			}
		}
	}
	return ids, types
}
