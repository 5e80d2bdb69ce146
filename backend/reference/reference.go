package reference

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/wire"
	"golang.org/x/sync/errgroup"
)

// ModelName is the name the embedded model is served under.
const ModelName = "reference"

// Options tune the simulated serving behaviour.
type Options struct {
	TokenDelay      time.Duration // between tokens
	FirstTokenDelay time.Duration // before the first token (time to first token)
	MaxTokens       int           // default and cap of max_tokens; 0: 256
}

// Backend serves the embedded Model in-process.
type Backend struct {
	name  string
	model *Model
	opts  Options
	pool  sync.Pool // []float64 distribution buffers
}

var (
	_ backend.Backend = (*Backend)(nil)
	_ backend.Lister  = (*Backend)(nil)
	_ backend.Scorer  = (*Backend)(nil)
)

var (
	sharedOnce  sync.Once
	sharedModel *Model
)

// Shared returns the process-wide model, trained once.
func Shared() *Model {
	sharedOnce.Do(func() { sharedModel = NewModel() })
	return sharedModel
}

// New returns a backend named name over the shared model.
func New(name string, opts Options) *Backend {
	if opts.MaxTokens <= 0 {
		opts.MaxTokens = 256
	}
	m := Shared()
	b := &Backend{name: name, model: m, opts: opts}
	b.pool.New = func() any { s := make([]float64, m.VocabSize()); return &s }
	return b
}

func (b *Backend) Name() string { return b.name }

func (b *Backend) Caps() backend.Caps {
	return backend.Caps{Logprobs: true, MaxTopLogprobs: 20, Continuation: true, NativeN: true, Scoring: true, ScoringChat: true, StopSequence: true}
}

func (b *Backend) Models(context.Context) ([]string, error) { return []string{ModelName}, nil }

func (b *Backend) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	return b.Stream(ctx, r, nil)
}

func (b *Backend) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	topK, err := b.check(r)
	if err != nil {
		return nil, err
	}
	p := b.prepare(r)
	p.topK = topK
	n := r.Choices()
	choices := make([]backend.Choice, n)
	var mu sync.Mutex
	safeEmit := emit
	if emit != nil && n > 1 {
		safeEmit = func(d backend.Delta) error { mu.Lock(); defer mu.Unlock(); return emit(d) }
	}
	g, gctx := errgroup.WithContext(ctx)
	for i := range n {
		g.Go(func() error {
			c, err := b.run(gctx, r, p, i, safeEmit)
			choices[i] = c
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	gen := &backend.Generation{Model: ModelName, Choices: choices}
	for _, c := range choices {
		gen.Usage.CompletionTokens += c.Tokens
	}
	gen.Usage.PromptTokens = p.promptTokens
	return gen, nil
}

// check refuses what the model cannot serve, and reads its top_k (0 for
// none).
func (b *Backend) check(r *backend.Request) (topK int, err error) {
	if r.Model != "" && r.Model != ModelName && r.Model != ModelName+":latest" {
		return 0, &fault.ParamError{Param: "model", Msg: "model '" + r.Model + "' not found", Err: fault.ErrNotFound}
	}
	if r.TopLogprobs < 0 || r.TopLogprobs > 20 {
		return 0, fault.Invalid("top_logprobs", "top_logprobs must be between 0 and 20")
	}
	// Tools, images and JSON modes are refused here too, not only by the
	// gateway before it: the wire faces (reference-server) call in
	// directly.
	if err := b.Caps().Check(r); err != nil {
		return 0, err
	}
	// It reads a message's content only: an assistant's reasoning or
	// refusal sent back would be dropped.
	for i, m := range r.Messages {
		switch {
		case m.Reasoning != "":
			return 0, fault.Unsupported(fmt.Sprintf("messages[%d].reasoning_content", i), "the reference model reads text only: it has no reasoning to read back")
		case m.Refusal != "":
			return 0, fault.Unsupported(fmt.Sprintf("messages[%d].refusal", i), "the reference model reads text only: it has no refusal to read back")
		}
	}
	if r.Temperature != nil && (*r.Temperature < 0 || *r.Temperature > 2) {
		return 0, fault.Invalid("temperature", "temperature must be between 0 and 2")
	}
	if r.TopP != nil && (*r.TopP <= 0 || *r.TopP > 1) {
		return 0, fault.Invalid("top_p", "top_p must be in (0, 1]")
	}
	// A field the model does not serve is refused by name, not ignored;
	// top_k is its one sampling option beside OpenAI's.
	for _, k := range slices.Sorted(maps.Keys(r.Extra)) {
		if k != "top_k" {
			return 0, fault.Unsupported(k, "the reference model has no %s (the field it takes beside OpenAI's is top_k)", fault.Clip(k, 64))
		}
	}
	if p := wire.Unread(r); p != "" {
		return 0, fault.Unsupported(p, "the reference model has no %s (fields the gateway does not read go only to OpenAI-compatible backends, as sent)", fault.Clip(p, 96))
	}
	if raw, ok := r.Extra["top_k"]; ok {
		if err := json.Unmarshal(raw, &topK); err != nil || topK < -1 {
			return 0, fault.Invalid("top_k", "top_k must be an integer: -1 or 0 for none, else how many of the likeliest tokens to sample from")
		}
	}
	return max(topK, 0), nil
}

// prepared is what every choice of one request shares.
type prepared struct {
	ctx          []int32 // token context the answer starts after
	topic        []int32
	promptTokens int
	fresh        bool // a new chat answer, not a continuation or raw completion
	topK         int  // the request's top_k (0: none)
}

// prepare renders the request into the model's context. Chat messages are
// read as a transcript; the answer starts a new paragraph unless the last
// message is a partial assistant message to continue.
func (b *Backend) prepare(r *backend.Request) prepared {
	m := b.model
	if r.Messages == nil {
		if msgs, ok := ParseRendered(r.Prompt); ok {
			// A rendered chat ending in an (open) assistant turn.
			rr := *r
			rr.Messages, rr.Prompt, rr.Continue = msgs, "", true
			return b.prepare(&rr)
		}
		ids := m.Encode(r.Prompt)
		return prepared{ctx: append([]int32{bos, bos}, ids...), topic: m.Topic(r.Prompt), promptTokens: len(ids) + 1}
	}
	var p prepared
	var question string
	msgs := r.Messages
	if r.Continue && len(msgs) > 0 {
		msgs = msgs[:len(msgs)-1]
	}
	for _, msg := range r.Messages {
		p.promptTokens += len(m.Encode(msg.Content)) + 4 // role markers, as chat templates add
	}
	p.promptTokens += 3 // the assistant header that opens the answer
	for _, msg := range msgs {
		if msg.Role == "user" {
			question = msg.Content
		}
	}
	p.topic = m.Topic(question)
	p.ctx = []int32{bos, bos}
	p.fresh = !r.Continue
	if r.Continue && len(r.Messages) > 0 {
		p.ctx = append(p.ctx, m.Encode(r.Messages[len(r.Messages)-1].Content)...)
	}
	return p
}

func (b *Backend) seed(r *backend.Request, i int) uint64 {
	if s := backend.SampleSeed(r.Seed, i); s != nil {
		return uint64(*s)
	}
	return rand.Uint64()
}

func (b *Backend) maxTokens(r *backend.Request) int {
	if r.MaxTokens > 0 && r.MaxTokens < b.opts.MaxTokens {
		return r.MaxTokens
	}
	return b.opts.MaxTokens
}

func (b *Backend) run(ctx context.Context, r *backend.Request, p prepared, index int, emit func(backend.Delta) error) (backend.Choice, error) {
	m := b.model
	temp, topP := 1.0, 1.0
	if r.Temperature != nil {
		temp = *r.Temperature
	}
	if r.TopP != nil {
		topP = *r.TopP
	}
	topK := p.topK
	distp := b.pool.Get().(*[]float64)
	defer b.pool.Put(distp)
	dist := *distp
	s := NewSampler(b.seed(r, index), temp, topP, topK, m.VocabSize())
	st := stopper{stops: r.Stop}
	u, v := p.ctx[len(p.ctx)-2], p.ctx[len(p.ctx)-1]
	choice := backend.Choice{Index: index, FinishReason: backend.FinishLength}
	if r.Logprobs {
		choice.Logprobs = []backend.TokenLogprob{} // an empty answer has logprobs too: none
	}
	flush := func(pieces []piece, finish string) error {
		var d backend.Delta
		d.Index = index
		for _, pc := range pieces {
			d.Text += pc.text
			choice.Text += pc.text
			if r.Logprobs && pc.lp != nil {
				d.Logprobs = append(d.Logprobs, *pc.lp)
				choice.Logprobs = append(choice.Logprobs, *pc.lp)
			}
		}
		d.FinishReason = finish
		if emit == nil || (d.Text == "" && finish == "" && d.Logprobs == nil) {
			return nil
		}
		return emit(d)
	}
	limit := b.maxTokens(r)
	for t := 0; t < limit; t++ {
		delay := b.opts.TokenDelay
		if t == 0 {
			delay = b.opts.FirstTokenDelay
		}
		if err := wait(ctx, delay); err != nil {
			return choice, err
		}
		m.Dist(dist, u, v, p.topic)
		w := s.Sample(dist)
		choice.Tokens++
		if w == eos {
			choice.FinishReason = backend.FinishStop
			choice.StopSequence = new(string)
			break
		}
		// An answer starts without the space its first word carries in the
		// corpus; its alternatives are spelled the same way, so that the
		// chosen token is always one of them.
		spell := m.Token
		if t == 0 && p.fresh {
			spell = func(w int32) string { return strings.TrimLeft(m.Token(w), " ") }
		}
		text := spell(w)
		var lp *backend.TokenLogprob
		if r.Logprobs {
			lp = &backend.TokenLogprob{Token: text, Logprob: math.Log(dist[w])}
			for _, alt := range Top(dist, r.TopLogprobs) {
				lp.Top = append(lp.Top, backend.TopLogprob{Token: spell(alt), Logprob: math.Log(dist[alt])})
			}
		}
		ready, stopped := st.push(piece{text: text, lp: lp})
		if err := flush(ready, ""); err != nil {
			return choice, err
		}
		if stopped {
			choice.FinishReason = backend.FinishStop
			choice.StopSequence = &st.matched
			return choice, flush(nil, choice.FinishReason)
		}
		u, v = v, w
	}
	// Text held back as a possible stop prefix is released at the end.
	if err := flush(st.pending, ""); err != nil {
		return choice, err
	}
	return choice, flush(nil, choice.FinishReason)
}

func wait(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

type piece struct {
	text string
	lp   *backend.TokenLogprob
}

// stopper holds back text that may be the start of a stop sequence and cuts
// the output where one appears, so that a stop sequence is never emitted.
type stopper struct {
	stops   []string
	pending []piece
	text    strings.Builder // text of pending
	matched string          // the stop sequence found
}

// push adds a piece and returns the pieces now safe to emit, and whether a
// stop sequence was found (then the returned pieces end just before it).
func (s *stopper) push(pc piece) ([]piece, bool) {
	if len(s.stops) == 0 {
		return []piece{pc}, false
	}
	s.pending = append(s.pending, pc)
	s.text.WriteString(pc.text)
	full := s.text.String()
	cut := -1
	for _, stop := range s.stops {
		if stop == "" {
			continue
		}
		if i := strings.Index(full, stop); i >= 0 && (cut < 0 || i < cut) {
			cut, s.matched = i, stop
		}
	}
	if cut >= 0 {
		return truncate(s.pending, cut), true
	}
	hold := 0
	for _, stop := range s.stops {
		for k := min(len(stop)-1, len(full)); k > hold; k-- {
			if strings.HasSuffix(full, stop[:k]) {
				hold = k
				break
			}
		}
	}
	// Release whole pieces that end before the held-back suffix.
	var ready []piece
	end := 0
	for len(s.pending) > 0 && end+len(s.pending[0].text) <= len(full)-hold {
		end += len(s.pending[0].text)
		ready = append(ready, s.pending[0])
		s.pending = s.pending[1:]
	}
	rest := full[end:]
	s.text.Reset()
	s.text.WriteString(rest)
	return ready, false
}

// truncate returns the pieces covering the first n bytes of their text.
func truncate(ps []piece, n int) []piece {
	var out []piece
	for _, p := range ps {
		if n <= 0 {
			break
		}
		if len(p.text) > n {
			out = append(out, piece{text: p.text[:n]}) // a cut token has no logprob of its own
			break
		}
		out = append(out, p)
		n -= len(p.text)
	}
	return out
}

// ScoreText returns the model's log-probability of text as the answer to r
// (or its continuation).
func (b *Backend) ScoreText(ctx context.Context, r *backend.Request, text string) (*backend.Score, error) {
	lps, err := b.TokenLogprobs(ctx, r, text)
	if err != nil {
		return nil, err
	}
	sc := &backend.Score{Tokens: len(lps), Usage: backend.Usage{PromptTokens: b.prepare(r).promptTokens + len(lps)}}
	for _, lp := range lps {
		sc.Logprob += lp.Logprob
	}
	return sc, nil
}

// TokenLogprobs returns the logprob of each token of text after the context
// of r. Words the corpus never had get the smoothed probability of an unseen
// word, so every text has a finite score.
func (b *Backend) TokenLogprobs(ctx context.Context, r *backend.Request, text string) ([]backend.TokenLogprob, error) {
	topK, err := b.check(r)
	if err != nil {
		return nil, err
	}
	p := b.prepare(r)
	p.topK = topK
	m := b.model
	distp := b.pool.Get().(*[]float64)
	defer b.pool.Put(distp)
	dist := *distp
	u, v := p.ctx[len(p.ctx)-2], p.ctx[len(p.ctx)-1]
	parts := Split(text)
	out := make([]backend.TokenLogprob, len(parts))
	for i, w := range m.Encode(text) {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		m.Dist(dist, u, v, p.topic)
		pw := dist[w]
		if w == unk {
			pw = m.unseen(p.topic != nil)
		}
		out[i] = backend.TokenLogprob{Token: parts[i], Logprob: math.Log(pw)}
		u, v = v, w
	}
	return out, nil
}
