package onnx

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// ARM is an autoregressive reward model: a causal model whose output is
// [batch, sequence, vocabulary] logits. A candidate's log-probability is
// the sum, over its tokens, of the log-softmax at the position before each
// one, after the conversation and the partial answer rendered as an open
// assistant turn. When every candidate is one token of the model's own
// that extends the context, one row gives them all; a model that exports
// its key/value cache (past_key_values.* inputs, present.* outputs) then
// feeds only the tokens added since its last call.
type ARM struct {
	cfg  Config
	sess *session
	enc  *encoder
	mu   sync.Mutex // one run at a time; guards the cache
	once sync.Once
	// cache holds recent contexts' key/values, most recent last, within
	// kvCacheBytes.
	cache []*kvEntry
	bytes int64
	fed   int64 // tokens fed to the model, for tests and benchmarks
	// heads are recent contexts' beginnings with their token ids, so that
	// a growing answer is tokenized from near its end, not from the start.
	headMu sync.Mutex
	heads  []head
}

// head is a text that ends before a word (a space after a non-space),
// where every tokenizer's pre-tokenizer splits, with its ids.
type head struct {
	text string
	ids  []int
}

// Encoding from a head: at most headRest bytes after it; past headStep
// bytes after it a new head is kept, ending headBack bytes before the
// text's end; headsKept are kept (a few per concurrent answer).
const (
	headRest  = 512
	headStep  = 128
	headBack  = 64
	headsKept = 32
)

type kvEntry struct {
	ids  []int
	past []output
	last []float32 // the logits after the last token
	size int64
}

// kvCacheBytes bounds the key/values an ARM keeps between calls.
const kvCacheBytes = 64 << 20

var (
	_ rm.TokenRewarder = (*ARM)(nil)
	_ rm.Identified    = (*ARM)(nil)
)

// NewARM loads an autoregressive reward model.
func NewARM(c Config) (*ARM, error) {
	c.past = true
	enc, sess, err := load(&c)
	if err != nil {
		return nil, err
	}
	if len(sess.output.Dimensions) != 3 {
		sess.s.Destroy()
		return nil, fmt.Errorf("model %s: output %s has shape %v; an autoregressive reward model's is [batch, sequence, vocabulary]", c.Model, sess.output.Name, sess.output.Dimensions)
	}
	if enc.format.Pair {
		sess.s.Destroy()
		return nil, fmt.Errorf("model %s: an autoregressive reward model reads one text, not a pair", c.Model)
	}
	return &ARM{cfg: c, sess: sess, enc: enc}, nil
}

// Close releases the session; safe to call more than once.
func (a *ARM) Close() { a.once.Do(func() { _ = a.sess.s.Destroy() }) }

// ID names the model and its input handling, for caches.
func (a *ARM) ID() string {
	return fmt.Sprintf("onnx_arm:%s:%s:%s:%d", a.cfg.Name, a.cfg.Model, a.enc.format.Name, a.cfg.MaxLength)
}

// KV reports whether the model reuses its key/value cache.
func (a *ARM) KV() bool { return len(a.sess.past) > 0 }

// Fed returns how many tokens the model has been fed.
func (a *ARM) Fed() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.fed
}

// LogProbs returns, for each candidate next piece of text, its
// log-probability after the sample's conversation and partial answer
// (s.Response). Every candidate is scored over the same span: from the
// first token any of them changes, so that a candidate that merges with
// the context's last token stays comparable. The empty candidate (the end
// of the answer) is the end of the turn where the format closes one, else
// neutral: the mean of the others.
func (a *ARM) LogProbs(ctx context.Context, s rm.Sample, next []string) ([]float32, error) {
	if len(next) == 0 {
		return nil, nil
	}
	open, err := a.enc.format.RenderOpen(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", fault.ErrReward, err)
	}
	base := a.encode(open)
	// Every candidate is open and a text after it, and shares base's ids
	// up to open's last word (keep of them): tails[i] holds candidate i's
	// ids after those, encoded from that word on, so that a step encodes a
	// few words per candidate whatever the answer's length.
	cut, keep, ok := a.stem(open, base)
	encode := func(text string) []int {
		if !ok {
			return a.encode(open + text)
		}
		return a.enc.tok.Encode(open[cut:] + text)
	}
	tails := make([][]int, len(next))
	end := -1
	for i, n := range next {
		if n != "" {
			tails[i] = encode(n)
			continue
		}
		end = i
		closed, _, err := a.enc.format.Render(s)
		if err != nil || len(closed) <= len(open) || closed[:len(open)] != open {
			tails[i] = base[keep:] // no end of turn: the context alone
			continue
		}
		tails[i] = encode(closed[len(open):])
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var out []float32
	if single(base, keep, tails) {
		out, err = a.oneRow(base, keep, tails)
	} else {
		conts := make([][]int, len(tails))
		for i, t := range tails {
			conts[i] = append(base[:keep:keep], t...)
		}
		out, err = a.rows(base, conts)
	}
	if err != nil {
		return nil, err
	}
	if end >= 0 && len(tails[end]) == len(base)-keep {
		out[end] = neutral(out, end)
	}
	return out, nil
}

// wordStart reports whether a word starts at s[i] after its space: a
// space after a non-space (not after a new line), where every tokenizer's
// pre-tokenizer splits; i > 0.
func wordStart(s string, i int) bool {
	return s[i] == ' ' && s[i-1] != ' ' && s[i-1] != '\n'
}

// stem finds where open's last word begins (a space after a non-space,
// where tokenizers split; at most headRest bytes from the end) and how
// many of base's ids come before it. ok is false where there is no such
// place or the tokenizer does not split there: the last word's own ids
// are not base's last ones.
func (a *ARM) stem(open string, base []int) (cut, keep int, ok bool) {
	cut = len(open) - 1
	for cut > 0 && len(open)-cut <= headRest && !wordStart(open, cut) {
		cut--
	}
	if cut <= 0 || len(open)-cut > headRest {
		return 0, 0, false
	}
	ids := a.enc.tok.Encode(open[cut:])
	keep = len(base) - len(ids)
	if keep < 0 || !slices.Equal(base[keep:], ids) {
		return 0, 0, false
	}
	return cut, keep, true
}

// encode tokenizes text from the longest recent head it extends (whole
// when none does), and keeps a new head near its end once the part after
// the head has grown past headStep bytes and the tokenizer splits there
// (that part gives the same ids in two pieces as in one). A growing answer
// so costs about the same to encode each step, whatever its length.
func (a *ARM) encode(text string) []int {
	a.headMu.Lock()
	var from head
	for _, h := range a.heads {
		if len(h.text) > len(from.text) && len(text)-len(h.text) <= headRest && strings.HasPrefix(text, h.text) {
			from = h
		}
	}
	a.headMu.Unlock()
	rest := text[len(from.text):]
	restIDs := a.enc.tok.Encode(rest)
	ids := append(slices.Clone(from.ids), restIDs...)
	if len(rest) <= headStep {
		return ids
	}
	cut := len(rest) - headBack
	for cut > 0 && !wordStart(rest, cut) {
		cut--
	}
	if cut <= 0 {
		return ids
	}
	left := a.enc.tok.Encode(rest[:cut])
	if !slices.Equal(append(slices.Clone(left), a.enc.tok.Encode(rest[cut:])...), restIDs) {
		return ids // this tokenizer does not split there: no head
	}
	a.headMu.Lock()
	a.heads = append(a.heads, head{text: text[:len(from.text)+cut], ids: append(slices.Clone(from.ids), left...)})
	if len(a.heads) > headsKept {
		a.heads = a.heads[1:]
	}
	a.headMu.Unlock()
	return ids
}

// neutral is the mean of the other candidates' log-probabilities.
func neutral(out []float32, skip int) float32 {
	var sum float32
	n := 0
	for i, v := range out {
		if i != skip {
			sum += v
			n++
		}
	}
	if n == 0 {
		return 0
	}
	return sum / float32(n)
}

// single reports whether every candidate is the context plus one token of
// the model's own (or the context alone): its tail is base's after keep,
// then at most one token.
func single(base []int, keep int, tails [][]int) bool {
	m := len(base) - keep
	for _, t := range tails {
		if len(t) < m || len(t) > m+1 || !slices.Equal(t[:m], base[keep:]) {
			return false
		}
	}
	return true
}

// oneRow scores one-token candidates from the next-token distribution
// after the context.
func (a *ARM) oneRow(base []int, keep int, tails [][]int) ([]float32, error) {
	if len(base) == 0 || len(base)+1 > a.enc.max {
		return nil, fmt.Errorf("%w: the context does not fit the model's %d tokens", fault.ErrReward, a.enc.max)
	}
	a.mu.Lock()
	logits, err := a.next(base)
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	norm := float32(rm.LogNormalizer(logits))
	m := len(base) - keep
	out := make([]float32, len(tails))
	for i, t := range tails {
		if len(t) > m {
			out[i] = logits[t[m]] - norm
		}
	}
	return out, nil
}

// next returns the logits after ids: from the cache, from the cached
// key/values of its longest cached prefix plus the tokens after it, or
// from a whole run. The caller holds a.mu.
func (a *ARM) next(ids []int) ([]float32, error) {
	if !a.KV() {
		outs, err := a.sess.run(pad([][]int{ids}, nil, a.cfg.PadID))
		if err != nil {
			return nil, err
		}
		a.fed += int64(len(ids))
		v := int(outs[0].shape[2])
		return outs[0].data[(len(ids)-1)*v : len(ids)*v], nil
	}
	var from *kvEntry
	for _, e := range a.cache {
		n := len(e.ids)
		// The last ids first: most entries differ there, and the scan
		// stays short of comparing every entry whole.
		if n <= len(ids) && (from == nil || n > len(from.ids)) && e.ids[n-1] == ids[n-1] && slices.Equal(e.ids, ids[:n]) {
			from = e
		}
	}
	past, known := a.sess.emptyPast(), 0
	if from != nil {
		a.touch(from)
		if len(from.ids) == len(ids) {
			return from.last, nil
		}
		past, known = from.past, len(from.ids)
	}
	fresh := make([]int64, len(ids)-known)
	for i, id := range ids[known:] {
		fresh[i] = int64(id)
	}
	logits, present, err := a.sess.runPast(fresh, past)
	if err != nil {
		return nil, err
	}
	a.fed += int64(len(fresh))
	v := int(logits.shape[2])
	last := logits.data[(len(fresh)-1)*v : len(fresh)*v]
	e := &kvEntry{ids: slices.Clone(ids), past: present, last: last, size: int64(4 * len(last))}
	for _, p := range present {
		e.size += int64(4 * len(p.data))
	}
	a.cache = append(a.cache, e)
	a.bytes += e.size
	for a.bytes > kvCacheBytes && len(a.cache) > 1 {
		a.bytes -= a.cache[0].size
		a.cache = a.cache[1:]
	}
	return last, nil
}

// touch makes e the most recent entry.
func (a *ARM) touch(e *kvEntry) {
	i := slices.Index(a.cache, e)
	a.cache = append(append(a.cache[:i:i], a.cache[i+1:]...), e)
}

// rows scores each candidate on its own row, over the tokens from the
// first position where any candidate differs from the context.
func (a *ARM) rows(base []int, conts [][]int) ([]float32, error) {
	start := len(base)
	for _, c := range conts {
		n := 0
		for n < len(base) && n < len(c) && base[n] == c[n] {
			n++
		}
		start = min(start, n)
	}
	if start == 0 {
		return nil, fmt.Errorf("%w: a candidate changes the context's first token", fault.ErrReward)
	}
	for i, c := range conts {
		if len(c) > a.enc.max {
			return nil, fmt.Errorf("%w: candidate %d does not fit the model's %d tokens", fault.ErrReward, i, a.enc.max)
		}
	}
	out := make([]float32, len(conts))
	a.mu.Lock()
	defer a.mu.Unlock()
	// A decoder with a key/value cache runs one row at a time.
	batches := [][][]int{conts}
	if a.KV() {
		batches = nil
		for _, c := range conts {
			batches = append(batches, [][]int{c})
		}
	}
	at := 0
	for _, rows := range batches {
		outs, err := a.sess.run(pad(rows, nil, a.cfg.PadID))
		if err != nil {
			return nil, err
		}
		cols, vocab := int(outs[0].shape[1]), int(outs[0].shape[2])
		data := outs[0].data
		for r, row := range rows {
			a.fed += int64(len(row))
			var lp float64
			for t := start; t < len(row); t++ {
				logits := data[(r*cols+t-1)*vocab : (r*cols+t)*vocab]
				lp += float64(logits[row[t]]) - rm.LogNormalizer(logits)
			}
			out[at] = float32(lp)
			at++
		}
	}
	return out, nil
}
