package onnx

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// PRMConfig is what a process reward model adds to a model's Config.
type PRMConfig struct {
	Objective string // the score's name
	Separator string // text of the step-separator token, written after every step
	Delimiter string // splits an answer into steps when the strategy gave none
	Positive  int    // class whose probability is the step score, for [batch, sequence, C ≥ 2] logits
	Rule      rm.StepRule
}

// PRM is a process reward model: it reads one score per step at the
// positions of the step-separator token, from an output of shape
// [batch, sequence] (the score), [batch, sequence, 1] (the same) or
// [batch, sequence, C] (logits: the step score is the softmax probability
// of class Positive). The sample's steps are rendered with the separator
// after each, joined by the delimiter; its score is the rule's aggregate
// of its step scores, and its detail lists them.
type PRM struct {
	*batcher
	p   PRMConfig
	sep int
}

var (
	_ rm.StepScorer = (*PRM)(nil)
	_ rm.Explainer  = (*PRM)(nil)
)

// NewPRM loads a process reward model.
func NewPRM(c Config, p PRMConfig) (*PRM, error) {
	if err := p.Rule.Check(); err != nil {
		return nil, err
	}
	enc, sess, err := load(&c)
	if err != nil {
		return nil, err
	}
	sep, err := SeparatorID(enc.tok.Encode, p.Separator)
	if err != nil {
		sess.s.Destroy()
		return nil, fmt.Errorf("model %s: %w", c.Model, err)
	}
	dims := sess.output.Dimensions
	if len(dims) != 2 && len(dims) != 3 || len(dims) == 3 && dims[2] > 0 && p.Positive >= int(dims[2]) {
		sess.s.Destroy()
		return nil, fmt.Errorf("model %s: output %s has shape %v; a process reward model's is [batch, sequence] or [batch, sequence, C] with class %d", c.Model, sess.output.Name, dims, p.Positive)
	}
	m := &PRM{p: p, sep: sep}
	m.batcher = newBatcher(c, sess, enc, m.read)
	return m, nil
}

// SeparatorID is the one token id that separator text encodes to.
func SeparatorID(encode func(string) []int, separator string) (int, error) {
	if separator == "" {
		return 0, fmt.Errorf("a process reward model needs a step separator (prm.separator)")
	}
	ids := encode(separator)
	if len(ids) != 1 {
		return 0, fmt.Errorf("the step separator %q is %d tokens, not one (%v)", separator, len(ids), ids)
	}
	return ids[0], nil
}

// read returns, for every row, the step scores at the separator positions.
func (m *PRM) read(outs []output, b *batch) ([][]float32, error) {
	o := outs[0]
	classes := 1
	if len(o.shape) == 3 {
		classes = int(o.shape[2])
	}
	if len(o.shape) < 2 || o.shape[0] != int64(b.rows) || o.shape[1] != int64(b.cols) || classes < 1 || m.p.Positive >= classes && classes > 1 {
		return nil, fmt.Errorf("%w: output shape %v for a batch of %d×%d tokens", fault.ErrReward, o.shape, b.rows, b.cols)
	}
	rows := make([][]float32, b.rows)
	for i := range rows {
		rows[i] = []float32{}
		for t := range b.lens[i] {
			if b.ids[i*b.cols+t] != int64(m.sep) {
				continue
			}
			at := (i*b.cols + t) * classes
			v := o.data[at]
			if classes > 1 {
				logits := o.data[at : at+classes]
				v = float32(math.Exp(float64(logits[m.p.Positive]) - rm.LogNormalizer(logits)))
			}
			rows[i] = append(rows[i], v)
		}
	}
	return rows, nil
}

// steps are the sample's steps: the strategy's, else its answer split.
func (m *PRM) steps(s rm.Sample) []string {
	if len(s.Steps) > 0 {
		return s.Steps
	}
	return rm.SplitSteps(s.Response, m.p.Delimiter)
}

// render writes the steps with the separator after each.
func (m *PRM) render(steps []string) string {
	parts := make([]string, len(steps))
	for i, st := range steps {
		parts[i] = strings.TrimRight(st, " \t\n") + m.p.Separator
	}
	return strings.Join(parts, m.p.Delimiter)
}

func (m *PRM) Objectives() []string { return []string{m.p.Objective} }

// Rule is how step scores become one.
func (m *PRM) Rule() rm.StepRule { return m.p.Rule }

// ID names the model, its input handling and its step rule.
func (m *PRM) ID() string {
	clip := "none"
	if m.p.Rule.Clip != nil {
		clip = fmt.Sprint(*m.p.Rule.Clip)
	}
	return fmt.Sprintf("onnx_prm:%s:%s:%s:%d:%s:%q:%q:%d:%s:%s:%v", m.cfg.Name, m.cfg.Model, m.enc.format.Name, m.cfg.MaxLength, m.cfg.Truncation,
		m.p.Separator, m.p.Delimiter, m.p.Positive, m.p.Rule.Aggregate, clip, m.p.Rule.Delta)
}

// ScoreSteps returns each sample's raw step scores, one per step the
// model saw (the last ones, when truncation cut the first off).
func (m *PRM) ScoreSteps(ctx context.Context, samples []rm.Sample) ([][]float64, error) {
	// Samples without a step (an empty answer) get an empty row, and the
	// model sees only the others.
	in := make([]rm.Sample, 0, len(samples))
	at := make([]int, 0, len(samples)) // each scored sample's place in samples
	want := make([]int, 0, len(samples))
	for i, s := range samples {
		steps := m.steps(s)
		if len(steps) == 0 {
			continue
		}
		s.Response, s.Text, s.Calls = m.render(steps), "", nil
		in, at, want = append(in, s), append(at, i), append(want, len(steps))
	}
	out := make([][]float64, len(samples))
	for i := range out {
		out[i] = []float64{}
	}
	if len(in) == 0 {
		return out, nil
	}
	rows, err := m.score(ctx, in)
	if err != nil {
		return nil, err
	}
	for k, row := range rows {
		if len(row) > want[k] { // the prompt holds the separator too: the answer's are the last
			row = row[len(row)-want[k]:]
		}
		if len(row) == 0 {
			return nil, fmt.Errorf("%w: sample %d: no step separator survived truncation to %d tokens", fault.ErrReward, at[k], m.cfg.MaxLength)
		}
		out[at[k]] = make([]float64, len(row))
		for j, v := range row {
			out[at[k]][j] = rm.Widen(v)
		}
	}
	return out, nil
}

func (m *PRM) Score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
	scores, _, err := m.Explain(ctx, samples)
	return scores, err
}

// Explain scores each sample by its steps and details them: the raw step
// scores, how many steps the answer had, and the rule.
func (m *PRM) Explain(ctx context.Context, samples []rm.Sample) ([][]float32, []json.RawMessage, error) {
	steps, err := m.ScoreSteps(ctx, samples)
	if err != nil {
		return nil, nil, err
	}
	scores := make([][]float32, len(steps))
	details := make([]json.RawMessage, len(steps))
	for i, st := range steps {
		scores[i] = []float32{float32(m.p.Rule.Of(st))}
		d := struct {
			Steps     []float64 `json:"steps"`
			Seen      int       `json:"steps_scored"`
			Total     int       `json:"steps_total"`
			Aggregate string    `json:"aggregate"`
		}{st, len(st), len(m.steps(samples[i])), m.p.Rule.Aggregate}
		details[i], _ = json.Marshal(d)
	}
	return scores, details, nil
}
