package onnx

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"google.golang.org/protobuf/encoding/protowire"
)

// Graph is what a model file says of its inputs and outputs: their names,
// and each output's dimensions where the file gives them (−1 for a
// named, dynamic one).
type Graph struct {
	Inputs, Outputs []string
	OutputDims      map[string][]int64
}

// ScoreColumns is how many columns the output a reward model reads has
// (the named one, else as the model picks it): 1 for [batch], K for
// [batch, K]; 0 where the file does not say (a dynamic K, no shape).
func (g Graph) ScoreColumns(name string) (string, int, error) {
	i := pickName(g.Outputs, name)
	if i < 0 && name == "" && len(g.Outputs) > 0 {
		i = 0
	}
	if i < 0 {
		return "", 0, nil
	}
	out := g.Outputs[i]
	dims, ok := g.OutputDims[out]
	switch {
	case !ok:
		return out, 0, nil
	case len(dims) == 1:
		return out, 1, nil
	case len(dims) == 2 && dims[1] > 0:
		return out, int(dims[1]), nil
	case len(dims) == 2:
		return out, 0, nil
	}
	return out, 0, fmt.Errorf("output %s has shape %v; a reward model's is [batch] or [batch, K]", out, dims)
}

// Inspect reads a model's input and output names from its file without
// ONNX Runtime, so that check-config can name a model that lacks an output
// its config names. It streams the protobuf and skips the weights.
func Inspect(path string) (Graph, error) {
	f, err := os.Open(path)
	if err != nil {
		return Graph{}, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var g Graph
	found := false
	err = fields(r, -1, func(num protowire.Number, n uint64) error {
		if num != 7 { // ModelProto.graph
			return skip(r, n)
		}
		found = true
		return fields(r, int64(n), func(num protowire.Number, n uint64) error {
			if num != 11 && num != 12 { // GraphProto.input, GraphProto.output
				return skip(r, n)
			}
			if n > 1<<20 {
				return fmt.Errorf("a value info of %d bytes", n)
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(r, b); err != nil {
				return err
			}
			name := valueName(b)
			if num == 11 {
				g.Inputs = append(g.Inputs, name)
			} else {
				g.Outputs = append(g.Outputs, name)
				if dims, ok := valueDims(b); ok {
					if g.OutputDims == nil {
						g.OutputDims = map[string][]int64{}
					}
					g.OutputDims[name] = dims
				}
			}
			return nil
		})
	})
	if err == nil && !found {
		err = errors.New("no graph")
	}
	if err != nil {
		return Graph{}, fmt.Errorf("model %s is not a readable ONNX model: %w", path, err)
	}
	return g, nil
}

// fields calls fn for every length-delimited field among the next limit
// bytes (−1: to the end), fn consuming its n bytes; other fields are
// skipped.
func fields(r *bufio.Reader, limit int64, fn func(num protowire.Number, n uint64) error) error {
	for limit != 0 {
		tag, tagLen, err := uvarint(r)
		if err == io.EOF && limit < 0 {
			return nil
		}
		if err != nil {
			return err
		}
		num, typ := protowire.Number(tag>>3), protowire.Type(tag&7)
		used := int64(tagLen)
		switch typ {
		case protowire.VarintType:
			_, l, err := uvarint(r)
			if err != nil {
				return err
			}
			used += int64(l)
		case protowire.Fixed64Type:
			err, used = skip(r, 8), used+8
		case protowire.Fixed32Type:
			err, used = skip(r, 4), used+4
		case protowire.BytesType:
			n, l, err2 := uvarint(r)
			if err2 != nil {
				return err2
			}
			err, used = fn(num, n), used+int64(l)+int64(n)
		default:
			return fmt.Errorf("unexpected wire type %d", typ)
		}
		if err != nil {
			return err
		}
		if limit > 0 {
			if used > limit {
				return errors.New("a field runs past its message")
			}
			limit -= used
		}
	}
	return nil
}

// uvarint reads a varint and says how many bytes it took.
func uvarint(r *bufio.Reader) (uint64, int, error) {
	n := 0
	v, err := binary.ReadUvarint(byteCounter{r, &n})
	if err == io.EOF && n > 0 {
		err = io.ErrUnexpectedEOF
	}
	return v, n, err
}

type byteCounter struct {
	r *bufio.Reader
	n *int
}

func (b byteCounter) ReadByte() (byte, error) {
	c, err := b.r.ReadByte()
	if err == nil {
		*b.n++
	}
	return c, err
}

func skip(r *bufio.Reader, n uint64) error {
	if _, err := r.Discard(int(n)); err != nil {
		if err == io.EOF {
			return io.ErrUnexpectedEOF
		}
		return err
	}
	return nil
}

// valueName reads ValueInfoProto.name.
func valueName(b []byte) string {
	v, _ := sub(b, 1)
	return string(v)
}

// valueDims reads a ValueInfoProto's tensor shape (type 2 → tensor_type 1
// → shape 2 → dim 1, each dim_value 1 or dim_param 2); false when it has
// none.
func valueDims(b []byte) ([]int64, bool) {
	typ, ok := sub(b, 2)
	if !ok {
		return nil, false
	}
	tensor, ok := sub(typ, 1)
	if !ok {
		return nil, false
	}
	shape, ok := sub(tensor, 2)
	if !ok {
		return nil, false
	}
	dims := []int64{}
	ok = eachField(shape, func(num protowire.Number, typ protowire.Type, d []byte) bool {
		if num == 1 && typ == protowire.BytesType {
			v := int64(-1) // a dim_param: named, dynamic
			if raw, ok := first(d, 1, protowire.VarintType); ok {
				if val, n := protowire.ConsumeVarint(raw); n >= 0 {
					v = int64(val)
				}
			}
			dims = append(dims, v)
		}
		return true
	})
	return dims, ok
}

// sub is the bytes of the first length-delimited field num of b.
func sub(b []byte, num protowire.Number) ([]byte, bool) {
	return first(b, num, protowire.BytesType)
}

// first is the value of the first field num of wire type typ in b: a
// length-delimited field's content, else its encoded value.
func first(b []byte, num protowire.Number, typ protowire.Type) (v []byte, found bool) {
	eachField(b, func(n protowire.Number, t protowire.Type, val []byte) bool {
		if n == num && t == typ {
			v, found = val, true
		}
		return !found
	})
	return v, found
}

// eachField calls fn with every field of the message b, until fn returns
// false: its number, wire type and value (a length-delimited field's
// content, else its encoded value). It reports whether b was well formed.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) bool) bool {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return false
		}
		b = b[n:]
		m := protowire.ConsumeFieldValue(num, typ, b)
		if m < 0 {
			return false
		}
		v := b[:m]
		if typ == protowire.BytesType {
			v, _ = protowire.ConsumeBytes(b)
		}
		b = b[m:]
		if !fn(num, typ, v) {
			return true
		}
	}
	return true
}
