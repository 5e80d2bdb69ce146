package steering

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
	"gonum.org/v1/gonum/stat/distuv"
)

// Reweighting against values worked out by hand: base 0.5, 0.3, 0.2 and a
// token reward of log 2 for the second candidate, weight 1, β = 0.5: the
// second's weight is 0.3·2² = 1.2, so 0.5, 1.2, 0.2 over 1.9. Temperature
// 2 takes square roots; top_p 0.5 keeps the second alone (0.63), 0.85
// the second and the first (0.89).
func TestReweight(t *testing.T) {
	base := []float64{math.Log(0.5), math.Log(0.3), math.Log(0.2)}
	reward := [][]float64{{0, math.Log(2), 0}}
	near := func(what string, got, want []float64) {
		t.Helper()
		for i := range want {
			if math.Abs(got[i]-want[i]) > 1e-12 {
				t.Errorf("%s: %v, want %v", what, got, want)
				return
			}
		}
	}
	near("β 0.5", Reweight(base, reward, []float64{1}, 0.5, 1, 1), []float64{0.5 / 1.9, 1.2 / 1.9, 0.2 / 1.9})
	z := math.Sqrt(0.5) + math.Sqrt(1.2) + math.Sqrt(0.2)
	near("temperature 2", Reweight(base, reward, []float64{1}, 0.5, 2, 1), []float64{math.Sqrt(0.5) / z, math.Sqrt(1.2) / z, math.Sqrt(0.2) / z})
	near("top_p 0.5", Reweight(base, reward, []float64{1}, 0.5, 1, 0.5), []float64{0, 1, 0})
	near("top_p 0.85", Reweight(base, reward, []float64{1}, 0.5, 1, 0.85), []float64{0.5 / 1.7, 1.2 / 1.7, 0})
	// Two rewards mix by their weights; a negative weight pushes away.
	near("mixed", Reweight(base, [][]float64{{0, math.Log(2), 0}, {math.Log(3), 0, 0}}, []float64{1, -1}, 1, 1, 1),
		[]float64{0.5 / 3 / (0.5/3 + 0.6 + 0.2), 0.6 / (0.5/3 + 0.6 + 0.2), 0.2 / (0.5/3 + 0.6 + 0.2)})
}

// topK answers every step with the same five candidates and their
// log-probabilities; a candidate "" ends the answer.
type topK struct {
	noLogprobs bool
	block      bool // wait for the context at every call
	started    chan struct{}
	mu         sync.Mutex
	calls      int
}

var topKTokens = []backend.TopLogprob{{Token: " a", Logprob: math.Log(0.4)}, {Token: " b", Logprob: math.Log(0.3)},
	{Token: " c", Logprob: math.Log(0.15)}, {Token: " d", Logprob: math.Log(0.1)}, {Token: " e", Logprob: math.Log(0.05)}}

func (b *topK) Name() string { return "topk" }
func (b *topK) Caps() backend.Caps {
	return backend.Caps{Logprobs: !b.noLogprobs, MaxTopLogprobs: 5, Continuation: true, NativeN: true}
}
func (b *topK) Generate(ctx context.Context, r *backend.Request) (*backend.Generation, error) {
	b.mu.Lock()
	b.calls++
	b.mu.Unlock()
	if b.block {
		b.started <- struct{}{}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if r.TopLogprobs != 5 || !r.Logprobs || r.MaxTokens != 1 || *r.Temperature != 1 {
		return nil, errors.New("a guided step asks for one token, top 5, at temperature 1")
	}
	return &backend.Generation{Choices: []backend.Choice{{Text: " a", FinishReason: backend.FinishLength, Tokens: 1,
		Logprobs: []backend.TokenLogprob{{Token: " a", Logprob: math.Log(0.4), Top: topKTokens}}}}, Usage: backend.Usage{PromptTokens: 3, CompletionTokens: 1}}, nil
}
func (b *topK) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	return b.Generate(ctx, r)
}

// likes is a token reward: log 4 for " c", 0 for the rest.
type likes struct{}

func (likes) LogProbs(_ context.Context, _ rm.Sample, next []string) ([]float32, error) {
	out := make([]float32, len(next))
	for i, n := range next {
		if n == " c" {
			out[i] = float32(math.Log(4))
		}
	}
	return out, nil
}

func guidedEngine(b backend.Backend) (*Engine, func(steer string, seed int64) *Call) {
	e := NewEngine(Options{Rewards: map[string]rm.Rewarder{}, Tokens: map[string]rm.TokenRewarder{"likes": likes{}},
		Routes: map[string]json.RawMessage{"m": json.RawMessage(`{}`)}, Limits: Limits{MaxSamples: 16}})
	return e, func(steer string, seed int64) *Call {
		return &Call{Route: backend.Route{Name: "m", Backend: b}, Steering: json.RawMessage(steer),
			Request: &backend.Request{Model: "m", Seed: &seed, MaxTokens: 1, Messages: []backend.Message{{Role: "user", Content: "q"}}}}
	}
}

// First tokens over many seeds follow the reweighted top k: with the token
// reward off, the base model's renormalized top 5 (0.4, 0.3, 0.15, 0.1,
// 0.05); with weight 1 and β 1, " c" four times as likely. Chi-square at
// the 0.1% level.
func TestGuidedSamplesFollowTheReweightedDistribution(t *testing.T) {
	e, call := guidedEngine(&topK{})
	for _, c := range []struct {
		steer string
		want  []float64
	}{
		{`{"strategy":"guided","token_rewards":{"likes":0}}`, []float64{0.4, 0.3, 0.15, 0.1, 0.05}},
		{`{"strategy":"guided","token_rewards":{"likes":1}}`, []float64{0.4 / 1.45, 0.3 / 1.45, 0.6 / 1.45, 0.1 / 1.45, 0.05 / 1.45}},
	} {
		const n = 2000
		counts := make([]float64, 5)
		for seed := range int64(n) {
			out, err := run(context.Background(), e, call(c.steer, seed), nil)
			if err != nil {
				t.Fatal(err)
			}
			text := out.Generation.Choices[0].Text
			counts[strings.Index("abcde", strings.TrimSpace(text))]++
		}
		var chi float64
		for i, p := range c.want {
			chi += (counts[i] - n*p) * (counts[i] - n*p) / (n * p)
		}
		if limit := (distuv.ChiSquared{K: 4}).Quantile(0.999); chi > limit {
			t.Errorf("%s: counts %v against %v: chi-square %.1f > %.1f", c.steer, counts, c.want, chi, limit)
		}
	}
}

// The request's temperature and top_p shape the reweighted distribution
// (the backend is still asked for its raw one): temperature 0 is greedy,
// a small top_p keeps the likeliest; the steering object's own win.
func TestGuidedKeepsTheRequestsTemperatureAndTopP(t *testing.T) {
	e, call := guidedEngine(&topK{})
	for _, c := range []struct {
		steer       string
		temperature *float64
		topP        *float64
		want        string // every seed's answer; "" varied
	}{
		{`{"strategy":"guided","token_rewards":{"likes":1}}`, new(0.0), nil, " c"},
		{`{"strategy":"guided","token_rewards":{"likes":0}}`, nil, new(0.3), " a"},
		{`{"strategy":"guided","token_rewards":{"likes":1},"temperature":1}`, new(0.0), nil, ""},
		{`{"strategy":"guided","token_rewards":{"likes":1}}`, new(1.0), nil, ""},
	} {
		seen := map[string]bool{}
		for seed := range int64(40) {
			cl := call(c.steer, seed)
			cl.Request.Temperature, cl.Request.TopP = c.temperature, c.topP
			out, err := run(context.Background(), e, cl, nil)
			if err != nil {
				t.Fatal(err)
			}
			seen[out.Generation.Choices[0].Text] = true
		}
		if c.want != "" && (len(seen) != 1 || !seen[c.want]) || c.want == "" && len(seen) < 2 {
			t.Errorf("%s, temperature %v, top_p %v: answers %v, want %q", c.steer, c.temperature, c.topP, seen, c.want)
		}
	}
}

// The answer streams as it is written; a stop sequence ends it before
// the stop, and nothing of the stop is sent.
func TestGuidedStreamsAndStops(t *testing.T) {
	e, call := guidedEngine(&topK{})
	c := call(`{"strategy":"guided","token_rewards":{"likes":3},"beta":0.1}`, 1)
	c.Request.MaxTokens = 12
	c.Request.Stop = []string{"c c"}
	var rec recorder
	out, err := run(context.Background(), e, c, rec.emit)
	if err != nil {
		t.Fatal(err)
	}
	got := out.Generation.Choices[0]
	if strings.Contains(got.Text, "c c") || rec.text() != got.Text || got.FinishReason != backend.FinishStop || len(rec.deltas) < 3 {
		t.Errorf("answer %q (%s), streamed %q in %d deltas", got.Text, got.FinishReason, rec.text(), len(rec.deltas))
	}
	if got.StopSequence == nil || *got.StopSequence != "c c" {
		t.Errorf("stop sequence %v, want the one that ended the answer", got.StopSequence)
	}
	if out.Info.Extra["steps"].(int) < 2 || out.Info.Extra["topk_mass"].(float64) != 1 {
		t.Errorf("report %v", out.Info.Extra)
	}
	// Logprobs: streamed, the same entries as the answer's, each with
	// the request's top_logprobs alternatives, not the k guided reads.
	for _, top := range []int{0, 2} {
		c := call(`{"strategy":"guided","token_rewards":{"likes":3},"beta":0.1}`, 1)
		c.Request.MaxTokens, c.Request.Stop, c.Request.Logprobs, c.Request.TopLogprobs = 12, []string{"c c"}, true, top
		var rec recorder
		out, err := run(context.Background(), e, c, rec.emit)
		if err != nil {
			t.Fatal(err)
		}
		var streamed []backend.TokenLogprob
		for _, d := range rec.deltas {
			streamed = append(streamed, d.Logprobs...)
		}
		got := out.Generation.Choices[0].Logprobs
		if len(got) == 0 || fmt.Sprint(streamed) != fmt.Sprint(got) {
			t.Errorf("top %d: streamed logprobs %v, the answer's %v", top, streamed, got)
		}
		for _, lp := range got {
			if len(lp.Top) != top {
				t.Errorf("top_logprobs %d: an entry has %d alternatives", top, len(lp.Top))
			}
		}
	}
}

// What guided cannot do is refused by name; a client that goes away
// cancels the step in flight.
func TestGuidedRefusalsAndCancel(t *testing.T) {
	e, call := guidedEngine(&topK{})
	for steer, want := range map[string]string{
		`{"strategy":"guided","k":9}`:                                 "steering.k",
		`{"strategy":"guided","beta":0}`:                              "steering.beta",
		`{"strategy":"guided","token_rewards":{"nope":1}}`:            "steering.token_rewards",
		`{"strategy":"guided","top_p":0}`:                             "steering.top_p",
		`{"strategy":"guided","block_tokens":99}`:                     "steering.block_tokens",
		`{"strategy":"guided","reward":"x"}`:                          "steering.reward",
		`{"strategy":"guided","token_rewards":{"likes":1e99}}`:        "steering.token_rewards",
		`{"strategy":"guided","token_rewards":{"likes":null}}`:        "steering.token_rewards.likes",
		`{"strategy":"guided","min_success":2}`:                       "steering.min_success",
		`{"strategy":"guided","token_rewards":{"likes":1,"likes":2}}`: "steering.token_rewards.likes",
	} {
		if _, err := run(context.Background(), e, call(steer, 0), nil); fault.Param(err) != want {
			t.Errorf("%s: %v, want a 400 naming %s", steer, err, want)
		}
	}
	e2, call2 := guidedEngine(&topK{noLogprobs: true})
	if _, err := run(context.Background(), e2, call2(`{"strategy":"guided"}`, 0), nil); !errors.Is(err, fault.ErrUnsupported) || !strings.Contains(err.Error(), "topk") {
		t.Errorf("no logprobs: %v", err)
	}
	b := &topK{block: true, started: make(chan struct{}, 1)}
	e3, call3 := guidedEngine(b)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := run(ctx, e3, call3(`{"strategy":"guided"}`, 0), nil)
		done <- err
	}()
	<-b.started
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

// Block mode samples k continuations and picks one by the token reward
// alone: the one with " c" wins when β is small.
func TestGuidedBlocks(t *testing.T) {
	e, call := guidedEngine(&scriptedBlocks{})
	c := call(`{"strategy":"guided","block_tokens":4,"k":4,"token_rewards":{"likes":1},"beta":0.01}`, 3)
	c.Request.MaxTokens = 8
	out, err := run(context.Background(), e, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.Generation.Choices[0].Text; got != " c c" || out.Info.Extra["backend_calls"].(int) != 8 {
		t.Errorf("answer %q, report %v", got, out.Info.Extra)
	}
}

// scriptedBlocks answers k blocks: block i is " a", " b", " c", " d".
type scriptedBlocks struct{}

func (scriptedBlocks) Name() string { return "blocks" }
func (scriptedBlocks) Caps() backend.Caps {
	return backend.Caps{Continuation: true, NativeN: true}
}
func (scriptedBlocks) Generate(_ context.Context, r *backend.Request) (*backend.Generation, error) {
	g := &backend.Generation{}
	for i := range r.N {
		g.Choices = append(g.Choices, backend.Choice{Index: i, Text: " " + string(rune('a'+i)), FinishReason: backend.FinishLength, Tokens: 4})
	}
	return g, nil
}
func (s scriptedBlocks) Stream(ctx context.Context, r *backend.Request, emit func(backend.Delta) error) (*backend.Generation, error) {
	return s.Generate(ctx, r)
}

// Blocks whose tokens the backend does not count (several choices in one
// call, no logprobs) count as long as they were asked for when cut by
// length: the answer ends at max_tokens, not past it.
func TestGuidedBlocksKeepToMaxTokensUncounted(t *testing.T) {
	e, call := guidedEngine(uncounted{})
	for _, most := range []int{5, 12} {
		c := call(`{"strategy":"guided","block_tokens":3,"k":2,"token_rewards":{"likes":1}}`, 3)
		c.Request.MaxTokens = most
		out, err := run(context.Background(), e, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		ch := out.Generation.Choices[0]
		if words := strings.Count(ch.Text, " w"); words != most || ch.Tokens != most {
			t.Errorf("max_tokens %d: %d words, %d tokens counted", most, words, ch.Tokens)
		}
	}
}

// The request's top_logprobs reach its answer whole, also past k; only
// the k likeliest are candidates.
func TestGuidedTopLogprobsBeyondK(t *testing.T) {
	e, call := guidedEngine(&topK{})
	for seed := range int64(20) {
		c := call(`{"strategy":"guided","k":3}`, seed)
		c.Request.Logprobs, c.Request.TopLogprobs = true, 5
		out, err := run(context.Background(), e, c, nil)
		if err != nil {
			t.Fatal(err)
		}
		ch := out.Generation.Choices[0]
		if len(ch.Logprobs) != 1 || len(ch.Logprobs[0].Top) != 5 {
			t.Fatalf("seed %d: logprobs %+v, want one token with its top 5", seed, ch.Logprobs)
		}
		if ch.Text != " a" && ch.Text != " b" && ch.Text != " c" {
			t.Errorf("seed %d: %q is not among the 3 likeliest", seed, ch.Text)
		}
	}
}
