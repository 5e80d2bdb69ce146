package onnx

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// Rewarder scores samples with a sequence reward model: K objective
// scores a sample, and for a gated model K gate coefficients after them.
type Rewarder struct {
	*batcher
	k int
}

var (
	_ rm.Rewarder   = (*Rewarder)(nil)
	_ rm.Identified = (*Rewarder)(nil)
)

// NewRewarder loads the model and starts its batcher; Close stops it.
func NewRewarder(c Config) (*Rewarder, error) {
	enc, sess, err := load(&c)
	if err != nil {
		return nil, err
	}
	k, err := columns(c, sess)
	if err != nil {
		sess.s.Destroy()
		return nil, err
	}
	r := &Rewarder{k: k}
	width := k
	if sess.gate != nil {
		width = 2 * k
	}
	r.batcher = newBatcher(c, sess, enc, func(outs []output, b *batch) ([][]float32, error) {
		rows := make([][]float32, b.rows)
		for n, o := range outs {
			if int(o.shape.FlattenedSize()) != b.rows*k || o.shape[0] != int64(b.rows) {
				return nil, fmt.Errorf("%w: output %d has shape %v for %d samples and %d objectives", fault.ErrReward, n, o.shape, b.rows, k)
			}
			for i := range rows {
				if rows[i] == nil {
					rows[i] = make([]float32, 0, width)
				}
				rows[i] = append(rows[i], o.data[i*k:(i+1)*k]...)
			}
		}
		return rows, nil
	})
	return r, nil
}

// columns checks the model's score (and gate) output against the named
// objectives and returns K.
func columns(c Config, sess *session) (int, error) {
	width := func(name string, dims []int64) (int, error) {
		switch {
		case len(dims) == 1:
			return 1, nil
		case len(dims) == 2 && dims[1] > 0:
			return int(dims[1]), nil
		case len(dims) == 2:
			return len(c.Objectives), nil // dynamic: checked on every run
		}
		return 0, fmt.Errorf("model %s: output %s has shape %v; a reward model's is [batch] or [batch, K]", c.Model, name, dims)
	}
	k, err := width(sess.output.Name, sess.output.Dimensions)
	if err != nil {
		return 0, err
	}
	if len(c.Objectives) != k {
		return 0, fmt.Errorf("model %s: output %s has %d columns but %d objectives are named (%v)", c.Model, sess.output.Name, k, len(c.Objectives), c.Objectives)
	}
	if sess.gate != nil {
		g, err := width(sess.gate.Name, sess.gate.Dimensions)
		if err != nil {
			return 0, err
		}
		if g != k {
			return 0, fmt.Errorf("model %s: gate output %s has %d columns for %d objectives", c.Model, sess.gate.Name, g, k)
		}
	}
	return k, nil
}

// Objectives are the named objectives, then, for a gated model, their
// gate columns.
func (r *Rewarder) Objectives() []string {
	if r.sess.gate == nil {
		return r.cfg.Objectives
	}
	out := slices.Clone(r.cfg.Objectives)
	for _, o := range r.cfg.Objectives {
		out = append(out, rm.GateColumn(o))
	}
	return out
}

// Gated is what a gated model's utility needs: its objectives apart from
// its gates. Only gated models have it (see GatedObjectives).
type Gated struct{ *Rewarder }

// GatedObjectives are the objectives the gates weigh.
func (g Gated) GatedObjectives() []string { return g.cfg.Objectives }

// AsReward returns r as the rewarder the gateway uses: a gated model
// exposes its gating.
func (r *Rewarder) AsReward() rm.Rewarder {
	if r.sess.gate != nil {
		return Gated{r}
	}
	return r
}

// ID names the model file and its input handling.
func (r *Rewarder) ID() string {
	return fmt.Sprintf("onnx:%s:%s:%s:%d:%s:%s:%s", r.cfg.Name, r.cfg.Model, r.enc.format.Name, r.cfg.MaxLength, r.cfg.Truncation, r.sess.output.Name, r.cfg.GateOutput)
}

// Score tokenizes the samples and hands them to the batcher, which runs
// them together with other callers' samples.
func (r *Rewarder) Score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
	return r.score(ctx, samples)
}

// batcher runs a model on the samples of concurrent callers together, and
// read turns each run's outputs into one row of numbers a sample.
type batcher struct {
	cfg  Config
	sess *session
	enc  *encoder
	read func(outs []output, b *batch) ([][]float32, error)
	jobs chan *job
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the batcher has exited
	once sync.Once
	// runs and batched count model runs and the samples they carried, for
	// tests and metrics.
	mu      sync.Mutex
	runs    int
	batched int
	costs   runCosts // what runs take, to plan them (plan.go)
}

type job struct {
	ctx   context.Context
	ids   [][]int
	types [][]int
	out   [][]float32
	err   error
	done  chan struct{}
}

func newBatcher(c Config, sess *session, enc *encoder, read func([]output, *batch) ([][]float32, error)) *batcher {
	b := &batcher{cfg: c, sess: sess, enc: enc, read: read, jobs: make(chan *job, 4*c.MaxBatch), stop: make(chan struct{}), done: make(chan struct{})}
	go b.loop()
	return b
}

// Provider reports where the model runs: cpu or cuda.
func (r *batcher) Provider() string { return r.sess.provider }

// Stats returns how many model runs there were and how many samples they
// carried.
func (r *batcher) Stats() (runs, samples int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs, r.batched
}

// Close stops the batcher and releases the session. Scores waiting or
// arriving later fail with a reward error. Safe to call concurrently and
// more than once.
func (r *batcher) Close() {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		r.sess.s.Destroy()
	})
}

// score encodes the samples and waits for their rows.
func (r *batcher) score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
	j := &job{ctx: ctx, done: make(chan struct{})}
	for i, s := range samples {
		ids, types, err := r.enc.encode(s)
		if err != nil {
			return nil, fmt.Errorf("%w: sample %d: %w", fault.ErrReward, i, err)
		}
		j.ids, j.types = append(j.ids, ids), append(j.types, types)
	}
	closed := fmt.Errorf("%w: reward model %s is closed", fault.ErrReward, r.cfg.Name)
	select {
	case <-r.stop:
		return nil, closed
	default:
	}
	select {
	case r.jobs <- j:
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-r.stop:
		return nil, closed
	}
	select {
	case <-j.done: // the batcher finishes every job it takes
		return j.out, j.err
	case <-r.done:
		select {
		case <-j.done:
			return j.out, j.err
		default:
			return nil, closed // queued after the batcher's last look
		}
	}
}

// loop runs queued jobs together: all that are waiting (up to max_batch
// samples), plus, with max_wait, those that arrive within it. One job
// larger than max_batch runs in several calls.
func (r *batcher) loop() {
	defer close(r.done)
	for {
		var first *job
		select {
		case first = <-r.jobs:
		case <-r.stop:
			r.refuseQueued()
			return
		}
		pending := []*job{first}
		n := len(first.ids)
		// Take everything that queued while the last run was busy: under
		// load batches form by themselves, and an idle model runs at once.
	drain:
		for n < r.cfg.MaxBatch {
			select {
			case j := <-r.jobs:
				pending = append(pending, j)
				n += len(j.ids)
			default:
				break drain
			}
		}
		if r.cfg.MaxWait > 0 && n < r.cfg.MaxBatch {
			timer := time.NewTimer(r.cfg.MaxWait)
		collect:
			for n < r.cfg.MaxBatch {
				select {
				case j := <-r.jobs:
					pending = append(pending, j)
					n += len(j.ids)
				case <-timer.C:
					break collect
				}
			}
			timer.Stop()
		}
		r.runJobs(pending)
	}
}

// refuseQueued fails the jobs still queued at Close.
func (r *batcher) refuseQueued() {
	for {
		select {
		case j := <-r.jobs:
			j.err = fmt.Errorf("%w: reward model %s is closed", fault.ErrReward, r.cfg.Name)
			close(j.done)
		default:
			return
		}
	}
}

func (r *batcher) runJobs(jobs []*job) {
	defer func() {
		for _, j := range jobs {
			close(j.done)
		}
	}()
	var ids, types [][]int
	var owners []*job
	for _, j := range jobs {
		if j.ctx.Err() != nil {
			j.err = context.Cause(j.ctx) // gone before its turn: not run
			continue
		}
		ids, types = append(ids, j.ids...), append(types, j.types...)
		for range j.ids {
			owners = append(owners, j)
		}
	}
	lens := make([]int, len(ids))
	for i, row := range ids {
		lens[i] = len(row)
	}
	overhead, known, explore := r.costs.overhead()
	maxRows := r.cfg.MaxBatch
	if explore && len(ids) > 1 {
		overhead, known, maxRows = 1e12, true, min(maxRows, (len(ids)+1)/2) // two runs (or max_batch's), split by length
	}
	results := make([][]float32, len(ids))
	for _, run := range plan(lens, maxRows, overhead, known) {
		rowIDs, tt := make([][]int, len(run)), [][]int(nil)
		for k, i := range run {
			rowIDs[k] = ids[i]
			if r.sess.hasTypes {
				tt = append(tt, types[i])
			}
		}
		rows, err := r.runBatch(pad(rowIDs, tt, r.cfg.PadID))
		if err != nil {
			for _, j := range jobs {
				if j.err == nil {
					j.err = err
				}
			}
			return
		}
		for k, i := range run {
			results[i] = rows[k]
		}
	}
	for i, row := range results {
		owners[i].out = append(owners[i].out, row)
	}
}

func (r *batcher) runBatch(b *batch) ([][]float32, error) {
	start := time.Now()
	outs, err := r.sess.run(b)
	if err != nil {
		return nil, err
	}
	r.costs.add(b.rows*b.cols, time.Since(start))
	r.mu.Lock()
	r.runs++
	r.batched += b.rows
	r.mu.Unlock()
	r.cfg.Metrics.RewardBatch(r.cfg.Name, b.rows)
	return r.read(outs, b)
}
