package tokenizer

import (
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
)

// Tokenizer is a loaded tokenizer.json. Safe for concurrent use.
type Tokenizer struct {
	vocab     map[string]int
	idToToken []string
	added     map[byte][]addedJSON // by first byte, longest first
	normalize normalizer
	pre       preTokenizer
	model     interface{ encode(string, []int) []int }
	decode    decoder
	post      *postProcessor
}

// Load reads a tokenizer.json file.
func Load(path string) (*Tokenizer, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokenizer: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("tokenizer %s: %w", path, err)
	}
	return t, nil
}

// Parse reads tokenizer.json bytes.
func Parse(data []byte) (*Tokenizer, error) {
	var f fileJSON
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("not a tokenizer.json: %w", err)
	}
	t := &Tokenizer{vocab: map[string]int{}, added: map[byte][]addedJSON{}}
	if err := json.Unmarshal(f.Model.Vocab, &t.vocab); err != nil {
		return nil, fmt.Errorf("model.vocab must be an object of token ids (model type %q): %w", f.Model.Type, err)
	}
	for _, a := range f.AddedTokens {
		t.vocab[a.Content] = a.ID
		if a.Content != "" {
			t.added[a.Content[0]] = append(t.added[a.Content[0]], a)
		}
	}
	for k := range t.added {
		l := t.added[k]
		sort.SliceStable(l, func(i, j int) bool { return len(l[i].Content) > len(l[j].Content) })
	}
	maxID := 0
	for _, id := range t.vocab {
		maxID = max(maxID, id)
	}
	t.idToToken = make([]string, maxID+1)
	for tok, id := range t.vocab {
		if id < 0 {
			return nil, fmt.Errorf("negative token id %d", id)
		}
		t.idToToken[id] = tok
	}
	var err error
	switch f.Model.Type {
	case "BPE", "":
		t.model, err = newBPE(f.Model, t.vocab)
	case "WordPiece":
		t.model, err = newWordPiece(f.Model, t.vocab)
	default:
		err = fmt.Errorf("model type %q is not supported (BPE and WordPiece are)", f.Model.Type)
	}
	if err != nil {
		return nil, err
	}
	if t.normalize, err = newNormalizer(f.Normalizer); err != nil {
		return nil, err
	}
	if t.pre, err = newPreTokenizer(f.PreTokenizer); err != nil {
		return nil, err
	}
	if t.decode, err = newDecoder(f.Decoder); err != nil {
		return nil, err
	}
	if t.post, err = newPostProcessor(f.PostProcessor, t.vocab); err != nil {
		return nil, err
	}
	return t, nil
}

// VocabSize is one more than the largest token id.
func (t *Tokenizer) VocabSize() int { return len(t.idToToken) }

// TokenID returns the id of a token (including added tokens).
func (t *Tokenizer) TokenID(tok string) (int, bool) {
	id, ok := t.vocab[tok]
	return id, ok
}

// Token returns the token of an id.
func (t *Tokenizer) Token(id int) string {
	if id < 0 || id >= len(t.idToToken) {
		return ""
	}
	return t.idToToken[id]
}

// Encode returns the ids of text without special tokens added; added and
// special tokens written in the text are recognised as themselves.
func (t *Tokenizer) Encode(text string) []int {
	var out []int
	start := 0
	for i := 0; i < len(text); {
		a, ok := t.addedAt(text, i)
		if !ok {
			i++
			continue
		}
		out = t.encodeSegment(text[start:i], out)
		out = append(out, a.ID)
		i += len(a.Content)
		start = i
	}
	return t.encodeSegment(text[start:], out)
}

// addedAt returns the longest added token starting at byte i.
func (t *Tokenizer) addedAt(text string, i int) (addedJSON, bool) {
	for _, a := range t.added[text[i]] {
		if strings.HasPrefix(text[i:], a.Content) {
			return a, true
		}
	}
	return addedJSON{}, false
}

func (t *Tokenizer) encodeSegment(s string, out []int) []int {
	if s == "" {
		return out
	}
	for _, piece := range t.pre([]string{t.normalize(s)}) {
		out = t.model.encode(piece, out)
	}
	return out
}

// EncodeSpecial encodes text (and, if second is not nil, a pair) with the
// special tokens the post-processor adds, e.g. [CLS] a [SEP] b [SEP]. It
// also returns the token type ids.
func (t *Tokenizer) EncodeSpecial(first string, second *string) (ids, typeIDs []int) {
	a := t.Encode(first)
	var b []int
	if second != nil {
		b = t.Encode(*second)
	}
	return t.post.apply(a, b, second != nil)
}

// Decode turns ids back into text. Every token, added and special ones
// included, goes through the decoder, as Hugging Face's does.
func (t *Tokenizer) Decode(ids []int) string {
	toks := make([]string, len(ids))
	for i, id := range ids {
		toks[i] = t.Token(id)
	}
	return t.decode(toks)
}
