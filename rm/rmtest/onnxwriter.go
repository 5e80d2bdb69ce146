package rmtest

import (
	"encoding/binary"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// A minimal ONNX protobuf writer: just the messages and fields the test
// models use (ModelProto, GraphProto, NodeProto, AttributeProto,
// TensorProto, ValueInfoProto), encoded with protowire so no generated code
// is needed. Field numbers are those of onnx.proto.

// ONNX element types.
const (
	onnxFloat = 1
	onnxInt64 = 7
)

type onnxTensor struct {
	name string
	dims []int64
	f32  []float32
	i64  []int64
}

type onnxAttr struct {
	name string
	i    *int64
	ints []int64
}

type onnxNode struct {
	op      string
	in, out []string
	attrs   []onnxAttr
}

// onnxValue describes a graph input or output; a dim is an int64 (fixed)
// or a string (symbolic, e.g. "batch").
type onnxValue struct {
	name string
	elem int32
	dims []any
}

func bytesField(b []byte, num protowire.Number, v []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, v)
}

func stringField(b []byte, num protowire.Number, s string) []byte {
	return bytesField(b, num, []byte(s))
}

func varintField(b []byte, num protowire.Number, v uint64) []byte {
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func (t onnxTensor) encode() []byte {
	var b []byte
	for _, d := range t.dims {
		b = varintField(b, 1, uint64(d))
	}
	var raw []byte
	if t.f32 != nil {
		b = varintField(b, 2, onnxFloat)
		for _, f := range t.f32 {
			raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(f))
		}
	} else {
		b = varintField(b, 2, onnxInt64)
		for _, v := range t.i64 {
			raw = binary.LittleEndian.AppendUint64(raw, uint64(v))
		}
	}
	b = stringField(b, 8, t.name)
	return bytesField(b, 9, raw)
}

func (a onnxAttr) encode() []byte {
	b := stringField(nil, 1, a.name)
	if a.i != nil {
		b = varintField(b, 3, uint64(*a.i))
		return varintField(b, 20, 2) // INT
	}
	for _, v := range a.ints {
		b = varintField(b, 8, uint64(v))
	}
	return varintField(b, 20, 7) // INTS
}

func (n onnxNode) encode() []byte {
	var b []byte
	for _, s := range n.in {
		b = stringField(b, 1, s)
	}
	for _, s := range n.out {
		b = stringField(b, 2, s)
	}
	b = stringField(b, 3, n.out[0]+"_node")
	b = stringField(b, 4, n.op)
	for _, a := range n.attrs {
		b = bytesField(b, 5, a.encode())
	}
	return b
}

func (v onnxValue) encode() []byte {
	var shape []byte
	for _, d := range v.dims {
		var dim []byte
		switch x := d.(type) {
		case int64:
			dim = varintField(nil, 1, uint64(x))
		case string:
			dim = stringField(nil, 2, x)
		}
		shape = bytesField(shape, 1, dim)
	}
	tensorType := varintField(nil, 1, uint64(v.elem))
	tensorType = bytesField(tensorType, 2, shape)
	typ := bytesField(nil, 1, tensorType)
	b := stringField(nil, 1, v.name)
	return bytesField(b, 2, typ)
}

// onnxModel encodes a whole model with one graph at opset 13.
func onnxModel(name string, nodes []onnxNode, inits []onnxTensor, inputs, outputs []onnxValue) []byte {
	var g []byte
	for _, n := range nodes {
		g = bytesField(g, 1, n.encode())
	}
	g = stringField(g, 2, name)
	for _, t := range inits {
		g = bytesField(g, 5, t.encode())
	}
	for _, v := range inputs {
		g = bytesField(g, 11, v.encode())
	}
	for _, v := range outputs {
		g = bytesField(g, 12, v.encode())
	}
	m := varintField(nil, 1, 8) // ir_version
	m = stringField(m, 2, "steergate-rmtest")
	m = bytesField(m, 7, g)
	opset := stringField(nil, 1, "")
	opset = varintField(opset, 2, 13)
	return bytesField(m, 8, opset)
}

func i64(v int64) *int64 { return &v }
