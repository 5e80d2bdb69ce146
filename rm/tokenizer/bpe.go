package tokenizer

import (
	"container/heap"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// bpe is a byte-pair-encoding model: byte-level (Llama 3, Qwen) when the
// pre-tokenizer maps bytes to characters, SentencePiece-style with byte
// fallback (Gemma, Llama 2) otherwise.
type bpe struct {
	vocab        map[string]int
	ranks        map[uint64]merge // (left id, right id) -> merge
	unk          int              // -1: none
	fuseUnk      bool
	byteFallback bool
	ignoreMerges bool
	prefix       string // continuing_subword_prefix
	suffix       string // end_of_word_suffix
	byteIDs      [256]int
}

type merge struct {
	rank int
	id   int // the merged token's id
}

func pairKey(a, b int) uint64 { return uint64(uint32(a))<<32 | uint64(uint32(b)) }

func newBPE(m modelJSON, vocab map[string]int) (*bpe, error) {
	b := &bpe{vocab: vocab, ranks: map[uint64]merge{}, unk: -1, fuseUnk: m.FuseUnk,
		byteFallback: m.ByteFallback, ignoreMerges: m.IgnoreMerges}
	if m.UnkToken != nil {
		id, ok := vocab[*m.UnkToken]
		if !ok {
			return nil, fmt.Errorf("unk_token %q is not in the vocabulary", *m.UnkToken)
		}
		b.unk = id
	}
	if m.ContinuingSubwordPrefix != nil {
		b.prefix = *m.ContinuingSubwordPrefix
	}
	if m.EndOfWordSuffix != nil {
		b.suffix = *m.EndOfWordSuffix
	}
	for i := range 256 {
		id, ok := vocab[fmt.Sprintf("<0x%02X>", i)]
		if !ok {
			id = -1
			if b.byteFallback {
				return nil, fmt.Errorf("byte_fallback is on but <0x%02X> is not in the vocabulary", i)
			}
		}
		b.byteIDs[i] = id
	}
	// Merges are "a b" strings in older files and [a, b] pairs in newer ones.
	var pairs [][2]string
	var asStrings []string
	if err := json.Unmarshal(m.Merges, &asStrings); err == nil {
		for _, s := range asStrings {
			l, r, ok := strings.Cut(s, " ")
			if !ok {
				return nil, fmt.Errorf("merge %q is not two tokens", s)
			}
			pairs = append(pairs, [2]string{l, r})
		}
	} else if err := json.Unmarshal(m.Merges, &pairs); err != nil && len(m.Merges) > 0 {
		return nil, fmt.Errorf("merges: %w", err)
	}
	for rank, p := range pairs {
		l, ok1 := vocab[p[0]]
		r, ok2 := vocab[p[1]]
		id, ok3 := vocab[p[0]+p[1][len(b.prefixOf(p[1])):]]
		if !ok1 || !ok2 || !ok3 {
			return nil, fmt.Errorf("merge %d (%q %q) uses tokens missing from the vocabulary", rank, p[0], p[1])
		}
		k := pairKey(l, r)
		if _, dup := b.ranks[k]; !dup {
			b.ranks[k] = merge{rank: rank, id: id}
		}
	}
	return b, nil
}

// prefixOf returns the continuing-subword prefix s starts with, if any.
func (b *bpe) prefixOf(s string) string {
	if b.prefix != "" && strings.HasPrefix(s, b.prefix) {
		return b.prefix
	}
	return ""
}

// symbol is one node of the doubly linked list a word is merged in.
type symbol struct {
	id         int
	prev, next int
	len        int // 0: merged away
}

type candidate struct {
	rank, pos, id int
	left, right   int // ids at the time the pair was queued
}

type queue []candidate

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].rank != q[j].rank {
		return q[i].rank < q[j].rank
	}
	return q[i].pos < q[j].pos
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(candidate)) }
func (q *queue) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

// encode appends the ids of one pre-tokenized word.
func (b *bpe) encode(word string, out []int) []int {
	if word == "" {
		return out
	}
	if b.ignoreMerges {
		if id, ok := b.vocab[word+b.suffix]; ok {
			return append(out, id)
		}
	}
	syms := make([]symbol, 0, utf8.RuneCountInString(word))
	n := utf8.RuneCountInString(word)
	i := 0
	for _, r := range word {
		s := string(r)
		if i > 0 {
			s = b.prefix + s
		}
		if i == n-1 {
			s += b.suffix
		}
		i++
		if id, ok := b.vocab[s]; ok {
			syms = append(syms, symbol{id: id, len: 1})
			continue
		}
		if b.byteFallback {
			raw := string(r)
			for k := range len(raw) {
				syms = append(syms, symbol{id: b.byteIDs[raw[k]], len: 1})
			}
			continue
		}
		if b.unk >= 0 {
			if b.fuseUnk && len(syms) > 0 && syms[len(syms)-1].id == b.unk {
				continue
			}
			syms = append(syms, symbol{id: b.unk, len: 1})
		}
	}
	for k := range syms {
		syms[k].prev, syms[k].next = k-1, k+1
	}
	if len(syms) > 0 {
		syms[len(syms)-1].next = -1
	}
	q := &queue{}
	push := func(pos int) {
		nx := syms[pos].next
		if nx < 0 {
			return
		}
		if m, ok := b.ranks[pairKey(syms[pos].id, syms[nx].id)]; ok {
			heap.Push(q, candidate{rank: m.rank, pos: pos, id: m.id, left: syms[pos].id, right: syms[nx].id})
		}
	}
	for k := range syms {
		push(k)
	}
	for q.Len() > 0 {
		c := heap.Pop(q).(candidate)
		s := &syms[c.pos]
		if s.len == 0 || s.id != c.left || s.next < 0 || syms[s.next].id != c.right {
			continue // stale: one side was merged since
		}
		nx := s.next
		s.id = c.id
		s.len += syms[nx].len
		syms[nx].len = 0
		s.next = syms[nx].next
		if s.next >= 0 {
			syms[s.next].prev = c.pos
		}
		if s.prev >= 0 {
			push(s.prev)
		}
		push(c.pos)
	}
	for k := 0; k >= 0 && k < len(syms); k = syms[k].next {
		out = append(out, syms[k].id)
	}
	return out
}

// wordPiece is BERT's greedy longest-match-first subword model.
type wordPiece struct {
	vocab    map[string]int
	unk      int
	prefix   string
	maxChars int
}

func newWordPiece(m modelJSON, vocab map[string]int) (*wordPiece, error) {
	w := &wordPiece{vocab: vocab, prefix: "##", maxChars: m.MaxInputCharsPerWord}
	if m.ContinuingSubwordPrefix != nil {
		w.prefix = *m.ContinuingSubwordPrefix
	}
	if w.maxChars == 0 {
		w.maxChars = 100
	}
	unk := "[UNK]"
	if m.UnkToken != nil {
		unk = *m.UnkToken
	}
	id, ok := vocab[unk]
	if !ok {
		return nil, fmt.Errorf("unk_token %q is not in the vocabulary", unk)
	}
	w.unk = id
	return w, nil
}

func (w *wordPiece) encode(word string, out []int) []int {
	if utf8.RuneCountInString(word) > w.maxChars {
		return append(out, w.unk)
	}
	var ids []int
	for start := 0; start < len(word); {
		end := len(word)
		found := -1
		for end > start {
			s := word[start:end]
			if start > 0 {
				s = w.prefix + s
			}
			if id, ok := w.vocab[s]; ok {
				found = id
				break
			}
			_, size := utf8.DecodeLastRuneInString(word[start:end])
			end -= size
		}
		if found < 0 {
			return append(out, w.unk) // the whole word is unknown
		}
		ids = append(ids, found)
		start = end
	}
	return append(out, ids...)
}
