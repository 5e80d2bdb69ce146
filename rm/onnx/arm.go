package onnx

import (
	"context"
	"fmt"
	"sync"

	"github.com/steergate/steergate/backend"
	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// ARM is an autoregressive reward model: a causal model whose output is
// [batch, sequence, vocabulary] logits. The log-probability of a
// candidate continuation is the sum, over its tokens, of the log-softmax
// at the position before each one.
type ARM struct {
	cfg  Config
	sess *session
	enc  *encoder
	mu   sync.Mutex // one run at a time: candidates of a call are one batch
	once sync.Once
}

var _ rm.TokenRewarder = (*ARM)(nil)

// NewARM loads an autoregressive reward model.
func NewARM(c Config) (*ARM, error) {
	enc, sess, err := load(&c)
	if err != nil {
		return nil, err
	}
	if len(sess.output.Dimensions) != 3 {
		sess.s.Destroy()
		return nil, fmt.Errorf("model %s: output %s has shape %v; an autoregressive reward model's is [batch, sequence, vocabulary]", c.Model, sess.output.Name, sess.output.Dimensions)
	}
	return &ARM{cfg: c, sess: sess, enc: enc}, nil
}

// Close releases the session; safe to call more than once.
func (a *ARM) Close() { a.once.Do(func() { _ = a.sess.s.Destroy() }) }

// LogProbs returns, for each candidate next piece of text, its
// log-probability after the conversation and the partial response.
func (a *ARM) LogProbs(ctx context.Context, prefix []backend.Message, partial string, next []string) ([]float32, error) {
	if len(next) == 0 {
		return nil, nil
	}
	ctxText, _, err := a.enc.format.Render(rm.Sample{Messages: prefix, Response: partial})
	if err != nil {
		return nil, fmt.Errorf("%w: %w", fault.ErrReward, err)
	}
	base := a.enc.tok.Encode(ctxText)
	rows := make([][]int, len(next))
	nextLen := make([]int, len(next))
	for i, n := range next {
		cont := a.enc.tok.Encode(ctxText + n)
		// The candidate's tokens are what encoding with it adds; a
		// candidate that changes the context's last token is scored from
		// the first token that differs.
		common := 0
		for common < len(base) && common < len(cont) && base[common] == cont[common] {
			common++
		}
		if common == 0 || len(cont) > a.enc.max {
			return nil, fmt.Errorf("%w: candidate %d does not fit the model's context", fault.ErrReward, i)
		}
		rows[i], nextLen[i] = cont, len(cont)-common
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	a.mu.Lock()
	outs, err := a.sess.run(pad(rows, nil, a.cfg.PadID))
	a.mu.Unlock()
	if err != nil {
		return nil, err
	}
	data, shape := outs[0].data, outs[0].shape
	cols, vocab := int(shape[1]), int(shape[2])
	out := make([]float32, len(next))
	for i, row := range rows {
		var lp float64
		for t := len(row) - nextLen[i]; t < len(row); t++ {
			logits := data[(i*cols+t-1)*vocab : (i*cols+t)*vocab]
			lp += float64(logits[row[t]]) - rm.LogNormalizer(logits)
		}
		out[i] = float32(lp)
	}
	return out, nil
}
