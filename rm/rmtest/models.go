package rmtest

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/steergate/steergate/rm"
)

// The tiny test models. Their weights come from a fixed seed, so the
// generator, the committed .onnx files and the pure-Go forward passes
// below always agree.
const (
	Dim       = 8
	PadID     = 0
	seedModel = 20261127
)

// Objectives of the sequence reward model.
var Objectives = []string{"helpfulness", "correctness", "verbosity"}

// words is the WordPiece vocabulary after the special tokens.
var words = strings.Fields(`the a an is are was be to of and in on for with as by at from it this that
sky blue light air sun water tea bread plants food moon sleep heart rain earth ocean cache code test
why how what when where because first second then so which helps help means example good bad
yes no not very more most short answer question steps step list clear simple well best
## ##s ##ed ##ing ##ly ##er ##est ##es
. , ! ? ' " ( ) : ; -`)

// Vocab returns the test tokenizer's vocabulary in id order.
func Vocab() []string {
	return append([]string{"[PAD]", "[UNK]", "[CLS]", "[SEP]"}, words...)
}

// StepToken is the process reward model's step separator: a special token
// after the vocabulary (id StepID), which only that model embeds.
const StepToken = "[STEP]"

// StepID is StepToken's id.
func StepID() int { return len(Vocab()) }

// SeqWeights are the sequence reward model's parameters.
type SeqWeights struct {
	Emb     []float32 // [V, Dim]
	TypeEmb []float32 // [2, Dim], nil for the model without token types
	W       []float32 // [Dim, K]
	B       []float32 // [K]
}

// ARMWeights are the autoregressive reward model's parameters.
type ARMWeights struct {
	Emb []float32 // [V, Dim]
	W   []float32 // [Dim, V]
	B   []float32 // [V]
}

// PRMWeights are the process reward model's parameters: per position, the
// mean embedding of the tokens so far, then a two-class head.
type PRMWeights struct {
	Emb []float32 // [V+1, Dim]
	W   []float32 // [Dim, 2]
	B   []float32 // [2]
}

// GatedWeights are the gated model's parameters: mean-pooled embeddings,
// then a head for the objective scores and a softmax head for their gates.
type GatedWeights struct {
	Emb    []float32 // [V, Dim]
	W, G   []float32 // [Dim, K]
	BW, BG []float32 // [K]
}

func randn(r *rand.Rand, n int, scale float64) []float32 {
	out := make([]float32, n)
	for i := range out {
		out[i] = float32(r.NormFloat64() * scale)
	}
	return out
}

// Seq returns the sequence model's weights; withTypes adds token type
// embeddings.
func Seq(withTypes bool) SeqWeights {
	r := rand.New(rand.NewPCG(seedModel, 1))
	v := len(Vocab())
	w := SeqWeights{Emb: randn(r, v*Dim, 1), W: randn(r, Dim*len(Objectives), 0.5), B: randn(r, len(Objectives), 0.1)}
	if withTypes {
		w.TypeEmb = randn(r, 2*Dim, 0.3)
	}
	return w
}

// SeqOne is the sequence model with its first objective alone: a reward
// model of one score, as most published ones are.
func SeqOne() SeqWeights {
	w := Seq(false)
	k := len(w.B)
	one := SeqWeights{Emb: w.Emb, W: make([]float32, Dim), B: w.B[:1]}
	for d := range Dim {
		one.W[d] = w.W[d*k]
	}
	return one
}

// Preferred are the words the autoregressive test model favours after any
// token: their logits carry PreferredBias more, so that guided decoding
// with it has a known direction.
var Preferred = []string{"because", "so", "which", "helps", "example"}

// PreferredBias is what the test ARM adds to the logits of Preferred.
const PreferredBias = 4

// ARM returns the autoregressive model's weights.
func ARM() ARMWeights {
	r := rand.New(rand.NewPCG(seedModel, 2))
	v := len(Vocab())
	w := ARMWeights{Emb: randn(r, v*Dim, 1), W: randn(r, Dim*v, 0.7), B: randn(r, v, 0.1)}
	for _, p := range Preferred {
		w.B[slices.Index(Vocab(), p)] += PreferredBias
	}
	return w
}

// KVARM returns the weights of the autoregressive model that exports its
// key/value cache: the same shapes as ARM's.
func KVARM() ARMWeights {
	r := rand.New(rand.NewPCG(seedModel, 5))
	v := len(Vocab())
	return ARMWeights{Emb: randn(r, v*Dim, 1), W: randn(r, Dim*v, 0.7), B: randn(r, v, 0.1)}
}

// MeanLogits computes the key/value model in Go: per position t, the
// vocabulary logits of the mean embedding of tokens 0..t.
func (w ARMWeights) MeanLogits(ids []int64) [][]float32 {
	v := len(w.B)
	out := make([][]float32, len(ids))
	var sum [Dim]float32
	for t, id := range ids {
		for d := range Dim {
			sum[d] += w.Emb[int(id)*Dim+d]
		}
		out[t] = make([]float32, v)
		for j := range v {
			var acc float32
			for d := range Dim {
				acc += sum[d] / float32(t+1) * w.W[d*v+j]
			}
			out[t][j] = acc + w.B[j]
		}
	}
	return out
}

// PRM returns the process reward model's weights.
func PRM() PRMWeights {
	r := rand.New(rand.NewPCG(seedModel, 3))
	return PRMWeights{Emb: randn(r, (len(Vocab())+1)*Dim, 1), W: randn(r, Dim*2, 1), B: randn(r, 2, 0.1)}
}

// Gated returns the gated model's weights.
func Gated() GatedWeights {
	r := rand.New(rand.NewPCG(seedModel, 4))
	v, k := len(Vocab()), len(Objectives)
	return GatedWeights{Emb: randn(r, v*Dim, 1), W: randn(r, Dim*k, 0.5), BW: randn(r, k, 0.1), G: randn(r, Dim*k, 1), BG: randn(r, k, 0.1)}
}

// Logits computes the process reward model in Go: per position t, the
// two-class logits of the mean embedding of tokens 0..t.
func (w PRMWeights) Logits(ids []int64) [][2]float32 {
	out := make([][2]float32, len(ids))
	var sum [Dim]float32
	for t, id := range ids {
		for d := range Dim {
			sum[d] += w.Emb[int(id)*Dim+d]
		}
		for c := range 2 {
			var acc float32
			for d := range Dim {
				acc += sum[d] / float32(t+1) * w.W[d*2+c]
			}
			out[t][c] = acc + w.B[c]
		}
	}
	return out
}

// Forward computes the gated model in Go: the objective scores and their
// gates (a softmax) of each sample.
func (w GatedWeights) Forward(ids [][]int64) (scores, gates [][]float32) {
	k := len(w.BW)
	for _, row := range ids {
		var mean [Dim]float32
		for _, id := range row {
			for d := range Dim {
				mean[d] += w.Emb[int(id)*Dim+d] / float32(len(row))
			}
		}
		head := func(m, b []float32) []float32 {
			out := make([]float32, k)
			for j := range k {
				for d := range Dim {
					out[j] += mean[d] * m[d*k+j]
				}
				out[j] += b[j]
			}
			return out
		}
		s, g := head(w.W, w.BW), head(w.G, w.BG)
		lse := float32(rm.LogNormalizer(g))
		for j := range g {
			g[j] = float32(math.Exp(float64(g[j] - lse)))
		}
		scores, gates = append(scores, s), append(gates, g)
	}
	return scores, gates
}

// Forward computes the sequence model in Go: token embeddings (plus type
// embeddings) averaged under the attention mask, then a linear head.
func (w SeqWeights) Forward(ids, mask, types [][]int64) [][]float32 {
	k := len(w.B)
	out := make([][]float32, len(ids))
	for b := range ids {
		var sum [Dim]float32
		var n float32
		for s, id := range ids[b] {
			m := float32(mask[b][s])
			for d := range Dim {
				e := w.Emb[int(id)*Dim+d]
				if w.TypeEmb != nil {
					e += w.TypeEmb[int(types[b][s])*Dim+d]
				}
				sum[d] += e * m
			}
			n += m
		}
		out[b] = make([]float32, k)
		for j := range k {
			var acc float32
			for d := range Dim {
				acc += sum[d] / n * w.W[d*k+j]
			}
			out[b][j] = acc + w.B[j]
		}
	}
	return out
}

// Logits computes the autoregressive model in Go: per position, the
// vocabulary logits of the next token.
func (w ARMWeights) Logits(ids []int64) [][]float32 {
	v := len(w.B)
	out := make([][]float32, len(ids))
	for s, id := range ids {
		out[s] = make([]float32, v)
		for j := range v {
			var acc float32
			for d := range Dim {
				acc += w.Emb[int(id)*Dim+d] * w.W[d*v+j]
			}
			out[s][j] = acc + w.B[j]
		}
	}
	return out
}

// LogSoftmax returns log-probabilities of logits.
func LogSoftmax(logits []float32) []float64 { return rm.LogSoftmax(logits) }

func seqModel(w SeqWeights) []byte {
	v, k := int64(len(Vocab())), int64(len(w.B))
	inputs := []onnxValue{
		{"input_ids", onnxInt64, []any{"batch", "sequence"}},
		{"attention_mask", onnxInt64, []any{"batch", "sequence"}},
	}
	inits := []onnxTensor{
		{name: "emb", dims: []int64{v, Dim}, f32: w.Emb},
		{name: "head_w", dims: []int64{Dim, k}, f32: w.W},
		{name: "head_b", dims: []int64{k}, f32: w.B},
		{name: "axis1", dims: []int64{1}, i64: []int64{1}},
		{name: "axis2", dims: []int64{1}, i64: []int64{2}},
	}
	nodes := []onnxNode{{op: "Gather", in: []string{"emb", "input_ids"}, out: []string{"tok"}}}
	embedded := "tok"
	if w.TypeEmb != nil {
		inputs = append(inputs, onnxValue{"token_type_ids", onnxInt64, []any{"batch", "sequence"}})
		inits = append(inits, onnxTensor{name: "type_emb", dims: []int64{2, Dim}, f32: w.TypeEmb})
		nodes = append(nodes,
			onnxNode{op: "Gather", in: []string{"type_emb", "token_type_ids"}, out: []string{"typ"}},
			onnxNode{op: "Add", in: []string{"tok", "typ"}, out: []string{"tok_typ"}})
		embedded = "tok_typ"
	}
	nodes = slices.Concat(nodes, meanPool(embedded), linearHead)
	return onnxModel("seq_reward", nodes, inits, inputs, []onnxValue{{"logits", onnxFloat, []any{"batch", k}}})
}

// meanPool averages the embedded tokens that attention_mask keeps (axis1
// and axis2 are initializers holding 1 and 2) into "mean".
func meanPool(embedded string) []onnxNode {
	return []onnxNode{
		{op: "Cast", in: []string{"attention_mask"}, out: []string{"mask"}, attrs: []onnxAttr{{name: "to", i: i64(onnxFloat)}}},
		{op: "Unsqueeze", in: []string{"mask", "axis2"}, out: []string{"mask3"}},
		{op: "Mul", in: []string{embedded, "mask3"}, out: []string{"masked"}},
		{op: "ReduceSum", in: []string{"masked", "axis1"}, out: []string{"sum"}, attrs: []onnxAttr{{name: "keepdims", i: i64(0)}}},
		{op: "ReduceSum", in: []string{"mask", "axis1"}, out: []string{"count"}, attrs: []onnxAttr{{name: "keepdims", i: i64(1)}}},
		{op: "Div", in: []string{"sum", "count"}, out: []string{"mean"}},
	}
}

// linearHead turns "mean" into "logits" with head_w and head_b.
var linearHead = []onnxNode{
	{op: "MatMul", in: []string{"mean", "head_w"}, out: []string{"head"}},
	{op: "Add", in: []string{"head", "head_b"}, out: []string{"logits"}},
}

func armModel(w ARMWeights) []byte {
	v := int64(len(Vocab()))
	return onnxModel("arm",
		[]onnxNode{
			{op: "Gather", in: []string{"emb", "input_ids"}, out: []string{"tok"}},
			{op: "MatMul", in: []string{"tok", "out_w"}, out: []string{"proj"}},
			{op: "Add", in: []string{"proj", "out_b"}, out: []string{"logits"}},
		},
		[]onnxTensor{
			{name: "emb", dims: []int64{v, Dim}, f32: w.Emb},
			{name: "out_w", dims: []int64{Dim, v}, f32: w.W},
			{name: "out_b", dims: []int64{v}, f32: w.B},
		},
		[]onnxValue{{"input_ids", onnxInt64, []any{"batch", "sequence"}}, {"attention_mask", onnxInt64, []any{"batch", "sequence"}}},
		[]onnxValue{{"logits", onnxFloat, []any{"batch", "sequence", v}}})
}

// kvARMModel is a decoder with a one-layer key/value cache: the key of a
// token is its embedding, present = past ++ new keys, and the logits of a
// new position are a linear head on the mean of the keys up to it.
func kvARMModel(w ARMWeights) []byte {
	v := int64(len(Vocab()))
	return onnxModel("arm_kv",
		[]onnxNode{
			{op: "Gather", in: []string{"emb", "input_ids"}, out: []string{"tok"}},
			{op: "Unsqueeze", in: []string{"tok", "axis1"}, out: []string{"new_keys"}},
			{op: "Concat", in: []string{"past_key_values.0.key", "new_keys"}, out: []string{"present.0.key"}, attrs: []onnxAttr{{name: "axis", i: i64(2)}}},
			{op: "Concat", in: []string{"past_key_values.0.value", "new_keys"}, out: []string{"present.0.value"}, attrs: []onnxAttr{{name: "axis", i: i64(2)}}},
			{op: "CumSum", in: []string{"present.0.key", "axis2s"}, out: []string{"sums"}},
			{op: "Shape", in: []string{"present.0.key"}, out: []string{"kshape"}},
			{op: "Gather", in: []string{"kshape", "two"}, out: []string{"total"}},
			{op: "Add", in: []string{"total", "one"}, out: []string{"total1"}},
			{op: "Range", in: []string{"one", "total1", "one"}, out: []string{"positions"}},
			{op: "Cast", in: []string{"positions"}, out: []string{"counts"}, attrs: []onnxAttr{{name: "to", i: i64(onnxFloat)}}},
			{op: "Reshape", in: []string{"counts", "count_shape"}, out: []string{"counts4"}},
			{op: "Div", in: []string{"sums", "counts4"}, out: []string{"means"}},
			{op: "Shape", in: []string{"input_ids"}, out: []string{"ishape"}},
			{op: "Slice", in: []string{"ishape", "one1", "two1"}, out: []string{"fresh"}},
			{op: "Neg", in: []string{"fresh"}, out: []string{"from"}},
			{op: "Slice", in: []string{"means", "from", "big", "two1"}, out: []string{"new_means"}},
			{op: "Squeeze", in: []string{"new_means", "axis1"}, out: []string{"h"}},
			{op: "MatMul", in: []string{"h", "out_w"}, out: []string{"proj"}},
			{op: "Add", in: []string{"proj", "out_b"}, out: []string{"logits"}},
		},
		[]onnxTensor{
			{name: "emb", dims: []int64{v, Dim}, f32: w.Emb},
			{name: "out_w", dims: []int64{Dim, v}, f32: w.W},
			{name: "out_b", dims: []int64{v}, f32: w.B},
			{name: "axis1", dims: []int64{1}, i64: []int64{1}},
			{name: "axis2s", i64: []int64{2}}, // a scalar: CumSum's axis
			{name: "one", i64: []int64{1}},
			{name: "two", i64: []int64{2}},
			{name: "one1", dims: []int64{1}, i64: []int64{1}},
			{name: "two1", dims: []int64{1}, i64: []int64{2}},
			{name: "big", dims: []int64{1}, i64: []int64{1 << 40}},
			{name: "count_shape", dims: []int64{4}, i64: []int64{1, 1, -1, 1}},
		},
		[]onnxValue{
			{"input_ids", onnxInt64, []any{"batch", "sequence"}},
			{"attention_mask", onnxInt64, []any{"batch", "total"}},
			{"past_key_values.0.key", onnxFloat, []any{"batch", int64(1), "past", int64(Dim)}},
			{"past_key_values.0.value", onnxFloat, []any{"batch", int64(1), "past", int64(Dim)}},
		},
		[]onnxValue{
			{"logits", onnxFloat, []any{"batch", "sequence", v}},
			{"present.0.key", onnxFloat, []any{"batch", int64(1), "total", int64(Dim)}},
			{"present.0.value", onnxFloat, []any{"batch", int64(1), "total", int64(Dim)}},
		})
}

func prmModel(w PRMWeights) []byte {
	v := int64(len(Vocab()) + 1)
	return onnxModel("prm",
		[]onnxNode{
			{op: "Gather", in: []string{"emb", "input_ids"}, out: []string{"tok"}},
			{op: "Cast", in: []string{"attention_mask"}, out: []string{"mask"}, attrs: []onnxAttr{{name: "to", i: i64(onnxFloat)}}},
			{op: "Unsqueeze", in: []string{"mask", "axis2"}, out: []string{"mask3"}},
			{op: "Mul", in: []string{"tok", "mask3"}, out: []string{"masked"}},
			{op: "CumSum", in: []string{"masked", "axis1"}, out: []string{"sums"}},
			{op: "CumSum", in: []string{"mask", "axis1"}, out: []string{"counts"}},
			{op: "Unsqueeze", in: []string{"counts", "axis2"}, out: []string{"counts3"}},
			{op: "Div", in: []string{"sums", "counts3"}, out: []string{"means"}},
			{op: "MatMul", in: []string{"means", "head_w"}, out: []string{"proj"}},
			{op: "Add", in: []string{"proj", "head_b"}, out: []string{"logits"}},
		},
		[]onnxTensor{
			{name: "emb", dims: []int64{v, Dim}, f32: w.Emb},
			{name: "head_w", dims: []int64{Dim, 2}, f32: w.W},
			{name: "head_b", dims: []int64{2}, f32: w.B},
			{name: "axis1", i64: []int64{1}}, // a scalar: CumSum's axis
			{name: "axis2", dims: []int64{1}, i64: []int64{2}},
		},
		[]onnxValue{{"input_ids", onnxInt64, []any{"batch", "sequence"}}, {"attention_mask", onnxInt64, []any{"batch", "sequence"}}},
		[]onnxValue{{"logits", onnxFloat, []any{"batch", "sequence", int64(2)}}})
}

func gatedModel(w GatedWeights) []byte {
	v, k := int64(len(Vocab())), int64(len(w.BW))
	return onnxModel("gated",
		slices.Concat([]onnxNode{{op: "Gather", in: []string{"emb", "input_ids"}, out: []string{"tok"}}}, meanPool("tok"), []onnxNode{
			{op: "MatMul", in: []string{"mean", "score_w"}, out: []string{"score_proj"}},
			{op: "Add", in: []string{"score_proj", "score_b"}, out: []string{"scores"}},
			{op: "MatMul", in: []string{"mean", "gate_w"}, out: []string{"gate_proj"}},
			{op: "Add", in: []string{"gate_proj", "gate_b"}, out: []string{"gate_logits"}},
			{op: "Softmax", in: []string{"gate_logits"}, out: []string{"gates"}},
		}),
		[]onnxTensor{
			{name: "emb", dims: []int64{v, Dim}, f32: w.Emb},
			{name: "score_w", dims: []int64{Dim, k}, f32: w.W},
			{name: "score_b", dims: []int64{k}, f32: w.BW},
			{name: "gate_w", dims: []int64{Dim, k}, f32: w.G},
			{name: "gate_b", dims: []int64{k}, f32: w.BG},
			{name: "axis1", dims: []int64{1}, i64: []int64{1}},
			{name: "axis2", dims: []int64{1}, i64: []int64{2}},
		},
		[]onnxValue{{"input_ids", onnxInt64, []any{"batch", "sequence"}}, {"attention_mask", onnxInt64, []any{"batch", "sequence"}}},
		[]onnxValue{{"scores", onnxFloat, []any{"batch", k}}, {"gates", onnxFloat, []any{"batch", k}}})
}

// tokenizerJSON is a BERT-style WordPiece tokenizer over Vocab.
func tokenizerJSON() []byte {
	vocab := map[string]int{}
	for i, t := range Vocab() {
		vocab[t] = i
	}
	var added []map[string]any
	special := append(Vocab()[:4:4], StepToken)
	for i, t := range special {
		id := i
		if t == StepToken {
			id = StepID()
		}
		added = append(added, map[string]any{"id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	f := map[string]any{
		"version":        "1.0",
		"added_tokens":   added,
		"normalizer":     map[string]any{"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": nil, "lowercase": true},
		"pre_tokenizer":  map[string]any{"type": "BertPreTokenizer"},
		"post_processor": map[string]any{"type": "BertProcessing", "sep": []any{"[SEP]", 3}, "cls": []any{"[CLS]", 2}},
		"decoder":        map[string]any{"type": "WordPiece", "prefix": "##", "cleanup": true},
		"model":          map[string]any{"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100, "vocab": vocab},
	}
	b, _ := json.MarshalIndent(f, "", " ")
	return append(b, '\n')
}

// Files returns every generated file by name.
func Files() map[string][]byte {
	return map[string][]byte{
		"seq_reward.onnx":       seqModel(Seq(false)),
		"seq_reward_types.onnx": seqModel(Seq(true)),
		"seq_reward_one.onnx":   seqModel(SeqOne()),
		"arm.onnx":              armModel(ARM()),
		"arm_kv.onnx":           kvARMModel(KVARM()),
		"prm.onnx":              prmModel(PRM()),
		"gated.onnx":            gatedModel(Gated()),
		"tokenizer.json":        tokenizerJSON(),
	}
}

// Write writes the generated files into dir.
func Write(dir string) error {
	files := Files()
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if err := os.WriteFile(filepath.Join(dir, n), files[n], 0o644); err != nil {
			return fmt.Errorf("write %s: %w", n, err)
		}
	}
	return nil
}

// Dir is the folder of the committed files, relative to the module root.
const Dir = "rm/rmtest/testdata"

// BadInputsModel is the sequence model with its token input renamed, for
// testing that a model whose inputs do not match is refused clearly.
func BadInputsModel() []byte {
	m := seqModel(Seq(false))
	return []byte(strings.ReplaceAll(string(m), "input_ids", "tokens___"))
}
