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

// Graph is what a model file says of its inputs and outputs.
type Graph struct {
	Inputs, Outputs []string
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
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return ""
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b)
			return string(v)
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return ""
		}
		b = b[n:]
	}
	return ""
}
