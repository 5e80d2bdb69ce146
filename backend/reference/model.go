package reference

import (
	_ "embed"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"unicode"
)

//go:embed corpus.txt
var corpus string

// Token ids with fixed meaning.
const (
	eos = 0 // end of answer; its text is empty
	bos = 1 // start of answer context
	unk = 2 // a word the corpus never had
)

// Model is an interpolated trigram model over words (with their leading
// space) and punctuation marks, trained on the embedded corpus. It is a tiny
// demo model, not an LLM: it exists so that Steergate runs and is testable
// with nothing else installed, and it reports the exact probabilities it
// samples from.
type Model struct {
	vocab []string
	ids   map[string]int32
	uni   []float64 // P1(w), smoothed over the vocabulary
	floor float64   // P1 of a word never seen
	bi    map[int32][]succ
	tri   map[[2]int32][]succ
}

type succ struct {
	id int32
	p  float64 // conditional probability under this context
}

// Interpolation weights; a context never seen gives its weight to the
// lower orders. The topic weight pulls towards words of the prompt, so that
// answers depend on the question.
const (
	lambdaTri   = 0.72
	lambdaBi    = 0.2
	lambdaUni   = 0.03
	lambdaTopic = 0.05
)

// NewModel trains the model on the embedded corpus.
func NewModel() *Model { return train(corpus) }

func train(text string) *Model {
	m := &Model{ids: map[string]int32{}, bi: map[int32][]succ{}, tri: map[[2]int32][]succ{}}
	for _, s := range []string{"", "<s>", "<unk>"} {
		m.add(s)
	}
	uniC := map[int32]float64{}
	biC := map[int32]map[int32]float64{}
	triC := map[[2]int32]map[int32]float64{}
	for _, para := range strings.Split(text, "\n\n") {
		para = strings.TrimSpace(para)
		if para == "" {
			continue
		}
		seq := []int32{bos, bos}
		for _, t := range Split(" " + para) {
			seq = append(seq, m.add(t))
		}
		seq = append(seq, eos)
		for i := 2; i < len(seq); i++ {
			w := seq[i]
			uniC[w]++
			inc(biC, seq[i-1], w)
			inc(triC, [2]int32{seq[i-2], seq[i-1]}, w)
		}
	}
	var total float64
	for _, c := range uniC {
		total += c
	}
	v := float64(len(m.vocab))
	m.uni = make([]float64, len(m.vocab))
	m.floor = 0.5 / (total + 0.5*(v-2))
	for w := range m.uni {
		if w == bos || w == unk {
			continue // never generated
		}
		m.uni[w] = (uniC[int32(w)] + 0.5) / (total + 0.5*(v-2))
	}
	for k, c := range biC {
		m.bi[k] = normalise(c)
	}
	for k, c := range triC {
		m.tri[k] = normalise(c)
	}
	return m
}

func inc[K comparable](m map[K]map[int32]float64, k K, w int32) {
	if m[k] == nil {
		m[k] = map[int32]float64{}
	}
	m[k][w]++
}

func normalise(c map[int32]float64) []succ {
	var sum float64
	for _, n := range c {
		sum += n
	}
	out := make([]succ, 0, len(c))
	for w, n := range c {
		out = append(out, succ{w, n / sum})
	}
	slices.SortFunc(out, func(a, b succ) int { return int(a.id - b.id) }) // deterministic order
	return out
}

func (m *Model) add(tok string) int32 {
	if id, ok := m.ids[tok]; ok {
		return id
	}
	id := int32(len(m.vocab))
	m.vocab = append(m.vocab, tok)
	m.ids[tok] = id
	return id
}

// Split cuts text into the model's tokens: a word with its leading
// whitespace, or one punctuation mark with its leading whitespace.
func Split(text string) []string {
	var out []string
	start := 0
	rs := []rune(text)
	i := 0
	for i < len(rs) {
		j := i
		for j < len(rs) && unicode.IsSpace(rs[j]) {
			j++
		}
		if j == len(rs) {
			out = append(out, string(rs[start:]))
			return out
		}
		if isWord(rs[j]) {
			for j < len(rs) && isWord(rs[j]) {
				j++
			}
		} else {
			j++
		}
		out = append(out, string(rs[start:j]))
		start, i = j, j
	}
	return out
}

func isWord(r rune) bool { return unicode.IsLetter(r) || unicode.IsDigit(r) || r == '\'' }

// Encode maps text to token ids; unknown tokens become unk.
func (m *Model) Encode(text string) []int32 {
	parts := Split(text)
	ids := make([]int32, len(parts))
	for i, p := range parts {
		if id, ok := m.ids[p]; ok {
			ids[i] = id
		} else if id, ok := m.ids[" "+strings.TrimLeftFunc(p, unicode.IsSpace)]; ok && p != "" {
			ids[i] = id // "\nThe" reads as " The" for context
		} else {
			ids[i] = unk
		}
	}
	return ids
}

// Token returns the text of a token id.
func (m *Model) Token(id int32) string { return m.vocab[id] }

// VocabSize is the number of token ids.
func (m *Model) VocabSize() int { return len(m.vocab) }

// Topic is the set of vocabulary words a prompt mentions, used to pull the
// answer towards the question.
func (m *Model) Topic(prompt string) []int32 {
	seen := map[int32]bool{}
	var out []int32
	for _, id := range m.Encode(prompt) {
		t := m.vocab[id]
		if id <= unk || seen[id] || len(strings.TrimSpace(t)) < 4 {
			continue // skip punctuation and short function words
		}
		seen[id] = true
		out = append(out, id)
	}
	return out
}

// Dist fills p (len VocabSize) with the next-token distribution after the
// context (u, v) and topic words. It is a proper distribution: it sums to 1.
func (m *Model) Dist(p []float64, u, v int32, topic []int32) {
	tri := m.tri[[2]int32{u, v}]
	bi := m.bi[v]
	lt, lb, lp := lambdaTri, lambdaBi, lambdaTopic
	if tri == nil {
		lt = 0
	}
	if bi == nil {
		lb = 0
	}
	if len(topic) == 0 {
		lp = 0
	}
	scale := 1 / (lt + lb + lp + lambdaUni)
	lu := lambdaUni * scale
	for w := range p {
		p[w] = lu * m.uni[w]
	}
	for _, s := range tri {
		p[s.id] += lt * scale * s.p
	}
	for _, s := range bi {
		p[s.id] += lb * scale * s.p
	}
	for _, w := range topic {
		p[w] += lp * scale / float64(len(topic))
	}
}

// Sampler draws tokens from a distribution under temperature, top_p and
// top_k, reproducibly from its seed.
type Sampler struct {
	rng         *rand.Rand
	temperature float64
	topP        float64
	topK        int
	q           []float64
	order       []int32
}

// NewSampler returns a sampler. temperature 0 is greedy decoding.
func NewSampler(seed uint64, temperature, topP float64, topK, vocab int) *Sampler {
	return &Sampler{
		rng:         rand.New(rand.NewPCG(seed, 0x5eed5eed)),
		temperature: temperature, topP: topP, topK: topK,
		q: make([]float64, vocab), order: make([]int32, vocab),
	}
}

// Sample picks a token id from p (which it does not modify).
func (s *Sampler) Sample(p []float64) int32 {
	if s.temperature <= 0 {
		best := 0
		for w := range p {
			if p[w] > p[best] {
				best = w
			}
		}
		return int32(best)
	}
	q := s.q
	var sum float64
	if s.temperature == 1 {
		copy(q, p) // the common case needs no exp/log per token
		sum = 1
	} else {
		inv := 1 / s.temperature
		for w, pw := range p {
			if pw > 0 {
				q[w] = math.Exp(inv * math.Log(pw))
			} else {
				q[w] = 0
			}
			sum += q[w]
		}
	}
	cands := s.order[:0]
	if s.topP < 1 || (s.topK > 0 && s.topK < len(p)) {
		for w := range q {
			if q[w] > 0 {
				cands = append(cands, int32(w))
			}
		}
		slices.SortFunc(cands, func(a, b int32) int {
			switch {
			case q[a] > q[b]:
				return -1
			case q[a] < q[b]:
				return 1
			}
			return int(a - b)
		})
		if s.topK > 0 && s.topK < len(cands) {
			cands = cands[:s.topK]
		}
		if s.topP < 1 {
			var cum float64
			for i, w := range cands {
				cum += q[w] / sum
				if cum >= s.topP {
					cands = cands[:i+1]
					break
				}
			}
		}
		sum = 0
		for _, w := range cands {
			sum += q[w]
		}
		r := s.rng.Float64() * sum
		for _, w := range cands {
			r -= q[w]
			if r < 0 {
				return w
			}
		}
		return cands[len(cands)-1]
	}
	r := s.rng.Float64() * sum
	last := int32(0)
	for w := range q {
		if q[w] == 0 {
			continue
		}
		last = int32(w)
		r -= q[w]
		if r < 0 {
			return int32(w)
		}
	}
	return last
}

// Top returns the k most likely tokens of p, most likely first (ties to the
// lower id).
func Top(p []float64, k int) []int32 {
	out := make([]int32, 0, k+1)
	for w := range p {
		if p[w] == 0 {
			continue
		}
		i := len(out)
		for i > 0 && p[out[i-1]] < p[w] {
			i--
		}
		if i >= k {
			continue
		}
		out = slices.Insert(out, i, int32(w))
		if len(out) > k {
			out = out[:k]
		}
	}
	return out
}

// unseen is the probability the model gives a word outside its vocabulary
// when scoring: the smoothed unigram floor, under the weights used when no
// higher-order context matches.
func (m *Model) unseen(topic bool) float64 {
	w := lambdaUni
	if topic {
		w += lambdaTopic
	}
	return lambdaUni / w * m.floor
}
