package rmtest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// EncoderWeights are the parameters of an encoder-sized sequence reward
// model (the inputs and output of seq_reward.onnx) with the per-token
// compute of a transformer encoder's feed-forward half: embeddings of
// width Hidden, then Layers residual blocks h += ReLU(h·W1 + B1)·W2
// (Hidden → FF → Hidden) on every token, masked mean pooling and the
// objectives' head. It has no attention and random (seeded) weights: it
// times batching on a device at a realistic size (12×768×3072 is
// BERT-base's feed-forward work, 2/3 of its FLOPs); its scores mean
// nothing.
type EncoderWeights struct {
	Hidden, FF int
	Emb        []float32   // [V, Hidden]
	W1, W2, B1 [][]float32 // per layer: [Hidden, FF], [FF, Hidden], [FF]
	W, B       []float32   // head: [Hidden, K], [K]
}

// Encoder returns an encoder-sized model's weights.
func Encoder(layers, hidden, ff int) EncoderWeights {
	r := rand.New(rand.NewPCG(seedModel, 2))
	k := len(Objectives)
	w := EncoderWeights{Hidden: hidden, FF: ff, Emb: randn(r, len(Vocab())*hidden, 1)}
	for range layers {
		w.W1 = append(w.W1, randn(r, hidden*ff, 1/math.Sqrt(float64(hidden))))
		w.B1 = append(w.B1, randn(r, ff, 0.01))
		w.W2 = append(w.W2, randn(r, ff*hidden, 1/math.Sqrt(float64(ff))))
	}
	w.W, w.B = randn(r, hidden*k, 1/math.Sqrt(float64(hidden))), randn(r, k, 0.1)
	return w
}

// Model encodes the weights as an ONNX model.
func (w EncoderWeights) Model() []byte {
	v, h, f, k := int64(len(Vocab())), int64(w.Hidden), int64(w.FF), int64(len(w.B))
	inits := []onnxTensor{
		{name: "emb", dims: []int64{v, h}, f32: w.Emb},
		{name: "head_w", dims: []int64{h, k}, f32: w.W},
		{name: "head_b", dims: []int64{k}, f32: w.B},
		{name: "axis1", dims: []int64{1}, i64: []int64{1}},
		{name: "axis2", dims: []int64{1}, i64: []int64{2}},
	}
	nodes := []onnxNode{{op: "Gather", in: []string{"emb", "input_ids"}, out: []string{"h0"}}}
	for l := range w.W1 {
		p := func(s string) string { return fmt.Sprintf("l%d_%s", l, s) }
		inits = append(inits,
			onnxTensor{name: p("w1"), dims: []int64{h, f}, f32: w.W1[l]},
			onnxTensor{name: p("b1"), dims: []int64{f}, f32: w.B1[l]},
			onnxTensor{name: p("w2"), dims: []int64{f, h}, f32: w.W2[l]})
		in, out := fmt.Sprintf("h%d", l), fmt.Sprintf("h%d", l+1)
		nodes = append(nodes,
			onnxNode{op: "MatMul", in: []string{in, p("w1")}, out: []string{p("up")}},
			onnxNode{op: "Add", in: []string{p("up"), p("b1")}, out: []string{p("pre")}},
			onnxNode{op: "Relu", in: []string{p("pre")}, out: []string{p("act")}},
			onnxNode{op: "MatMul", in: []string{p("act"), p("w2")}, out: []string{p("down")}},
			onnxNode{op: "Add", in: []string{in, p("down")}, out: []string{out}})
	}
	nodes = slices.Concat(nodes, meanPool(fmt.Sprintf("h%d", len(w.W1))), linearHead)
	inputs := []onnxValue{
		{"input_ids", onnxInt64, []any{"batch", "sequence"}},
		{"attention_mask", onnxInt64, []any{"batch", "sequence"}},
	}
	return onnxModel("encoder_sized", nodes, inits, inputs, []onnxValue{{"logits", onnxFloat, []any{"batch", k}}})
}

// Forward computes the model in Go, in float64.
func (w EncoderWeights) Forward(ids, mask [][]int64) [][]float32 {
	h, f, k := w.Hidden, w.FF, len(w.B)
	out := make([][]float32, len(ids))
	for b := range ids {
		sum := make([]float64, h)
		var n float64
		for s, id := range ids[b] {
			x := make([]float64, h)
			for d := range h {
				x[d] = float64(w.Emb[int(id)*h+d])
			}
			for l := range w.W1 {
				act := make([]float64, f)
				for j := range f {
					a := float64(w.B1[l][j])
					for d := range h {
						a += x[d] * float64(w.W1[l][d*f+j])
					}
					act[j] = max(a, 0)
				}
				for d := range h {
					for j := range f {
						x[d] += act[j] * float64(w.W2[l][j*h+d])
					}
				}
			}
			m := float64(mask[b][s])
			for d := range h {
				sum[d] += x[d] * m
			}
			n += m
		}
		out[b] = make([]float32, k)
		for j := range k {
			acc := float64(w.B[j])
			for d := range h {
				acc += sum[d] / n * float64(w.W[d*k+j])
			}
			out[b][j] = float32(acc)
		}
	}
	return out
}
