package rmtest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
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

// ARM returns the autoregressive model's weights.
func ARM() ARMWeights {
	r := rand.New(rand.NewPCG(seedModel, 2))
	v := len(Vocab())
	return ARMWeights{Emb: randn(r, v*Dim, 1), W: randn(r, Dim*v, 0.7), B: randn(r, v, 0.1)}
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
	nodes = append(nodes,
		onnxNode{op: "Cast", in: []string{"attention_mask"}, out: []string{"mask"}, attrs: []onnxAttr{{name: "to", i: i64(onnxFloat)}}},
		onnxNode{op: "Unsqueeze", in: []string{"mask", "axis2"}, out: []string{"mask3"}},
		onnxNode{op: "Mul", in: []string{embedded, "mask3"}, out: []string{"masked"}},
		onnxNode{op: "ReduceSum", in: []string{"masked", "axis1"}, out: []string{"sum"}, attrs: []onnxAttr{{name: "keepdims", i: i64(0)}}},
		onnxNode{op: "ReduceSum", in: []string{"mask", "axis1"}, out: []string{"count"}, attrs: []onnxAttr{{name: "keepdims", i: i64(1)}}},
		onnxNode{op: "Div", in: []string{"sum", "count"}, out: []string{"mean"}},
		onnxNode{op: "MatMul", in: []string{"mean", "head_w"}, out: []string{"head"}},
		onnxNode{op: "Add", in: []string{"head", "head_b"}, out: []string{"logits"}},
	)
	return onnxModel("seq_reward", nodes, inits, inputs, []onnxValue{{"logits", onnxFloat, []any{"batch", k}}})
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

// tokenizerJSON is a BERT-style WordPiece tokenizer over Vocab.
func tokenizerJSON() []byte {
	vocab := map[string]int{}
	for i, t := range Vocab() {
		vocab[t] = i
	}
	var added []map[string]any
	for i, t := range Vocab()[:4] {
		added = append(added, map[string]any{"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
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
		"arm.onnx":              armModel(ARM()),
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
