package onnx

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/steergate/steergate/configs"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/metrics"
	"github.com/steergate/steergate/rm"
	"github.com/steergate/steergate/rm/tokenizer"
	ort "github.com/yalue/onnxruntime_go"
)

// Config describes one ONNX reward model.
type Config struct {
	Name       string
	Library    string // ONNX Runtime library; see LibraryPath
	Model      string // .onnx file
	Tokenizer  string // tokenizer.json
	Format     string // rm.Format preset or template
	Objectives []string
	Output     string // the scores' output; empty: logits, rewards or score, else the first
	GateOutput string // a gated model's coefficients output ([batch, K]); empty: not gated
	MaxLength  int    // tokens per sample, special tokens included
	Truncation string // "left" keeps the end (the response), "right" the start
	PadID      int
	MaxBatch   int           // samples per run
	MaxWait    time.Duration // how long a run waits for more samples
	Provider   string        // cpu or cuda
	DeviceID   int
	MemLimit   int64  // bytes, cuda
	Fallback   string // "cpu": run on CPU when CUDA cannot load
	Threads    int    // intra-op threads; 0: ONNX Runtime's default
	Log        *slog.Logger
	Metrics    *metrics.Metrics
	// past accepts past key/value inputs (past_key_values.*) with their
	// present.* outputs: an autoregressive model that can reuse them.
	past bool
}

func (c *Config) defaults() {
	m := configs.ONNXModel{MaxLength: c.MaxLength, Truncation: c.Truncation, MaxBatch: c.MaxBatch, Provider: c.Provider, Format: c.Format}
	m.Fill()
	c.MaxLength, c.Truncation, c.MaxBatch, c.Provider, c.Format = m.MaxLength, m.Truncation, m.MaxBatch, m.Provider, m.Format
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// session is a loaded model with its discovered inputs and outputs.
type session struct {
	s        *ort.DynamicAdvancedSession
	inputs   []string
	hasTypes bool
	output   ort.InputOutputInfo  // the scores
	gate     *ort.InputOutputInfo // a gated model's coefficients
	provider string               // what it really runs on
	// past and present name a decoder's key/value cache inputs and the
	// outputs that extend them, pairwise; pastDims their shapes (the
	// sequence is the dimension that is −1 apart from the batch).
	past, present []string
	pastDims      [][]int64
}

// load applies defaults, then reads the tokenizer and opens the model:
// what every ONNX reward model needs first.
func load(c *Config) (*encoder, *session, error) {
	c.defaults()
	enc, err := newEncoder(c)
	if err != nil {
		return nil, nil, err
	}
	sess, err := open(c)
	if err != nil {
		return nil, nil, err
	}
	return enc, sess, nil
}

// ErrCUDA is wrapped when the CUDA execution provider cannot be used.
var ErrCUDA = errors.New("CUDA execution provider unavailable")

// open loads the runtime and the model, checks its inputs and picks the
// execution provider.
func open(c *Config) (*session, error) {
	if err := Init(LibraryPath(c.Library)); err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.Model); err != nil {
		return nil, fmt.Errorf("model file %s: %w", c.Model, errors.Unwrap(err))
	}
	ins, outs, err := ort.GetInputOutputInfo(c.Model)
	if err != nil {
		return nil, fmt.Errorf("model %s is not a readable ONNX model: %w", c.Model, err)
	}
	s := &session{}
	have := map[string]bool{}
	for _, in := range ins {
		have[in.Name] = true
	}
	if !have["input_ids"] || !have["attention_mask"] {
		return nil, fmt.Errorf("model %s has inputs %v; a reward model needs input_ids and attention_mask (and optionally token_type_ids)", c.Model, names(ins))
	}
	s.inputs = []string{"input_ids", "attention_mask"}
	if have["token_type_ids"] {
		s.inputs, s.hasTypes = append(s.inputs, "token_type_ids"), true
	}
	outNamed := map[string]bool{}
	for _, o := range outs {
		outNamed[o.Name] = true
	}
	for _, in := range ins {
		rest, ok := strings.CutPrefix(in.Name, "past_key_values.")
		if !ok || !c.past {
			continue
		}
		if !outNamed["present."+rest] || in.DataType != ort.TensorElementDataTypeFloat {
			return nil, fmt.Errorf("model %s: input %s has no float32 output present.%s to extend it", c.Model, in.Name, rest)
		}
		s.past, s.present = append(s.past, in.Name), append(s.present, "present."+rest)
		s.pastDims = append(s.pastDims, in.Dimensions)
	}
	if len(ins) != len(s.inputs)+len(s.past) {
		return nil, fmt.Errorf("model %s has inputs %v; only input_ids, attention_mask, token_type_ids (and, for an autoregressive model, past_key_values.*) can be fed", c.Model, names(ins))
	}
	for _, in := range ins {
		if in.DataType != ort.TensorElementDataTypeInt64 && !strings.HasPrefix(in.Name, "past_key_values.") {
			return nil, fmt.Errorf("model %s: input %s is %s; want int64", c.Model, in.Name, in.DataType)
		}
	}
	if s.output, err = pickOutput(c.Model, outs, c.Output, "onnx.output"); err != nil {
		return nil, err
	}
	outNames := []string{s.output.Name}
	if c.GateOutput != "" {
		g, err := pickOutput(c.Model, outs, c.GateOutput, "onnx.gate_output")
		if err != nil {
			return nil, err
		}
		s.gate, outNames = &g, append(outNames, g.Name)
	}
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer opts.Destroy()
	if c.Threads > 0 {
		_ = opts.SetIntraOpNumThreads(c.Threads)
	}
	s.provider = "cpu"
	if c.Provider == "cuda" {
		if err := appendCUDA(opts, c); err != nil {
			if c.Fallback != "cpu" {
				return nil, fmt.Errorf("model %s: %w: %v (set fallback: cpu to run on the CPU instead; `make ort-cuda` fetches a CUDA build of ONNX Runtime)", c.Model, ErrCUDA, err)
			}
			c.Log.Warn("CUDA unavailable; running the reward model on the CPU", "model", c.Model, "err", err)
			opts.Destroy()
			if opts, err = ort.NewSessionOptions(); err != nil {
				return nil, err
			}
		} else {
			s.provider = "cuda"
		}
	}
	s.s, err = ort.NewDynamicAdvancedSession(c.Model, append(slices.Clone(s.inputs), s.past...), append(outNames, s.present...), opts)
	if err != nil && s.provider == "cuda" && c.Fallback == "cpu" {
		c.Log.Warn("CUDA session failed; running the reward model on the CPU", "model", c.Model, "err", err)
		s.provider = "cpu"
		s.s, err = ort.NewDynamicAdvancedSession(c.Model, append(slices.Clone(s.inputs), s.past...), append(outNames, s.present...), nil)
	}
	if err != nil {
		if s.provider == "cuda" {
			return nil, fmt.Errorf("model %s: %w: %v (set fallback: cpu to run on the CPU instead; `make ort-cuda` fetches a CUDA build of ONNX Runtime)", c.Model, ErrCUDA, err)
		}
		return nil, fmt.Errorf("model %s: %w", c.Model, err)
	}
	return s, nil
}

// pickName is the index of the output named name, or, with no name, of
// the one called logits, rewards or score; −1 for none.
func pickName(outs []string, name string) int {
	pick := -1
	for i, o := range outs {
		if o == name || name == "" && pick < 0 && (o == "logits" || o == "rewards" || o == "score") {
			pick = i
		}
	}
	return pick
}

// pickOutput finds the named float32 output (key names the config key
// that named it), or, unnamed, the one called logits, rewards or score,
// else the first.
func pickOutput(model string, outs []ort.InputOutputInfo, name, key string) (ort.InputOutputInfo, error) {
	if len(outs) == 0 {
		return ort.InputOutputInfo{}, fmt.Errorf("model %s has no outputs", model)
	}
	pick := pickName(names(outs), name)
	switch {
	case pick < 0 && name != "":
		return ort.InputOutputInfo{}, fmt.Errorf("model %s has no output %q (%s); its outputs are %v", model, name, key, names(outs))
	case pick < 0:
		pick = 0
	}
	o := outs[pick]
	if o.DataType != ort.TensorElementDataTypeFloat {
		return o, fmt.Errorf("model %s: output %s is %s; want float32", model, o.Name, o.DataType)
	}
	return o, nil
}

func appendCUDA(opts *ort.SessionOptions, c *Config) error {
	cuda, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return err
	}
	defer cuda.Destroy()
	settings := map[string]string{"device_id": strconv.Itoa(c.DeviceID)}
	if c.MemLimit > 0 {
		settings["gpu_mem_limit"] = strconv.FormatInt(c.MemLimit, 10)
	}
	if err := cuda.Update(settings); err != nil {
		return err
	}
	return opts.AppendExecutionProviderCUDA(cuda)
}

func names(infos []ort.InputOutputInfo) []string {
	out := make([]string, len(infos))
	for i, in := range infos {
		out[i] = in.Name
	}
	return out
}

// batch is a padded batch of encoded samples.
type batch struct {
	ids, mask, types []int64
	rows, cols       int
	lens             []int // real tokens per row
}

// pad builds a right-padded batch of the longest row's length.
func pad(rows [][]int, types [][]int, padID int) *batch {
	b := &batch{rows: len(rows)}
	for _, r := range rows {
		b.cols = max(b.cols, len(r))
	}
	n := b.rows * b.cols
	b.ids, b.mask, b.types = make([]int64, n), make([]int64, n), make([]int64, n)
	for i, r := range rows {
		b.lens = append(b.lens, len(r))
		for j := range b.cols {
			k := i*b.cols + j
			if j < len(r) {
				b.ids[k], b.mask[k] = int64(r[j]), 1
				if types != nil {
					b.types[k] = int64(types[i][j])
				}
			} else {
				b.ids[k] = int64(padID)
			}
		}
	}
	return b
}

// output is one output tensor's data and shape.
type output struct {
	data  []float32
	shape ort.Shape
}

// run feeds a batch and returns the outputs: the scores, then the gates
// of a gated model. A decoder with a key/value cache gets an empty past.
func (s *session) run(b *batch) ([]output, error) {
	if len(s.past) > 0 {
		if b.rows != 1 {
			return nil, fmt.Errorf("%w: a decoder with a key/value cache runs one row at a time", fault.ErrReward)
		}
		logits, _, err := s.runPast(b.ids, s.emptyPast())
		return []output{logits}, err
	}
	shape := ort.NewShape(int64(b.rows), int64(b.cols))
	var inputs []ort.Value
	defer func() {
		for _, v := range inputs {
			v.Destroy()
		}
	}()
	for _, data := range [][]int64{b.ids, b.mask, b.types}[:len(s.inputs)] {
		t, err := ort.NewTensor(shape, data)
		if err != nil {
			return nil, err
		}
		inputs = append(inputs, t)
	}
	outputs := make([]ort.Value, 1, 2)
	if s.gate != nil {
		outputs = append(outputs, nil)
	}
	if err := s.s.Run(inputs, outputs); err != nil {
		return nil, fmt.Errorf("%w: onnx run: %w", fault.ErrReward, err)
	}
	out := make([]output, len(outputs))
	for i, v := range outputs {
		defer v.Destroy()
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return nil, fmt.Errorf("%w: output %d is not a float32 tensor", fault.ErrReward, i)
		}
		// onnxruntime_go copies what ONNX Runtime returns into Go memory,
		// which outlives Destroy: no second copy.
		out[i] = output{data: t.GetData(), shape: t.GetShape()}
	}
	return out, nil
}

// emptyPast is a key/value cache of no tokens.
func (s *session) emptyPast() []output {
	out := make([]output, len(s.past))
	for i, dims := range s.pastDims {
		shape := make(ort.Shape, len(dims))
		for j, d := range dims {
			shape[j] = max(d, 1)
		}
		shape[seqAxis(dims)] = 0
		out[i] = output{shape: shape}
	}
	return out
}

// seqAxis is the sequence dimension of a past key/value input: the last
// dynamic one ([batch, heads, sequence, head_dim]).
func seqAxis(dims []int64) int {
	for j := len(dims) - 1; j > 0; j-- {
		if dims[j] < 0 {
			return j
		}
	}
	return len(dims) - 2
}

// runPast feeds one row of new token ids after a key/value cache and
// returns the logits of the new positions and the extended cache.
func (s *session) runPast(ids []int64, past []output) (output, []output, error) {
	pastLen := past[0].shape[seqAxis(s.pastDims[0])]
	mask := make([]int64, int(pastLen)+len(ids))
	for i := range mask {
		mask[i] = 1
	}
	var inputs []ort.Value
	defer func() {
		for _, v := range inputs {
			v.Destroy()
		}
	}()
	add := func(v ort.Value, err error) error {
		if err == nil {
			inputs = append(inputs, v)
		}
		return err
	}
	if err := add(ort.NewTensor(ort.NewShape(1, int64(len(ids))), ids)); err != nil {
		return output{}, nil, err
	}
	if err := add(ort.NewTensor(ort.NewShape(1, int64(len(mask))), mask)); err != nil {
		return output{}, nil, err
	}
	if s.hasTypes {
		if err := add(ort.NewTensor(ort.NewShape(1, int64(len(ids))), make([]int64, len(ids)))); err != nil {
			return output{}, nil, err
		}
	}
	for _, p := range past {
		data := p.data
		if data == nil {
			data = []float32{}
		}
		if err := add(ort.NewTensor(p.shape, data)); err != nil {
			return output{}, nil, err
		}
	}
	outputs := make([]ort.Value, 1+len(s.present))
	if err := s.s.Run(inputs, outputs); err != nil {
		return output{}, nil, fmt.Errorf("%w: onnx run: %w", fault.ErrReward, err)
	}
	var read []output
	for i, v := range outputs {
		defer v.Destroy()
		t, ok := v.(*ort.Tensor[float32])
		if !ok {
			return output{}, nil, fmt.Errorf("%w: output %d is not a float32 tensor", fault.ErrReward, i)
		}
		read = append(read, output{data: t.GetData(), shape: t.GetShape()}) // Go memory, as in run
	}
	return read[0], read[1:], nil
}

// encoder tokenizes samples in the model's input format.
type encoder struct {
	tok    *tokenizer.Tokenizer
	format *rm.Format
	max    int
	left   bool
}

func newEncoder(c *Config) (*encoder, error) {
	tok, err := tokenizer.Load(c.Tokenizer)
	if err != nil {
		return nil, err
	}
	f, err := rm.NewFormat(c.Format)
	if err != nil {
		return nil, err
	}
	if c.Truncation != "left" && c.Truncation != "right" {
		return nil, fmt.Errorf("truncation must be left or right, not %q", c.Truncation)
	}
	return &encoder{tok: tok, format: f, max: c.MaxLength, left: c.Truncation == "left"}, nil
}

// encode returns the ids (with the post-processor's special tokens) and
// token types of a sample, truncated to max tokens.
func (e *encoder) encode(s rm.Sample) ([]int, []int, error) {
	a, b, err := e.format.Render(s)
	if err != nil {
		return nil, nil, err
	}
	var second *string
	if e.format.Pair {
		second = &b
	}
	ids, types := e.tok.EncodeSpecial(a, second)
	if len(ids) > e.max {
		if e.left {
			ids, types = ids[len(ids)-e.max:], types[len(types)-e.max:]
		} else {
			ids, types = ids[:e.max], types[:e.max]
		}
	}
	return ids, types, nil
}
