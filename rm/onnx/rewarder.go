package onnx

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/steergate/steergate/fault"
	"github.com/steergate/steergate/rm"
)

// Rewarder scores samples with a sequence reward model.
type Rewarder struct {
	cfg  Config
	sess *session
	enc  *encoder
	k    int
	jobs chan *job
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the batcher has exited
	once sync.Once
	// Runs and Batched count model runs and the samples they carried, for
	// tests and metrics.
	mu      sync.Mutex
	runs    int
	batched int
}

var (
	_ rm.Rewarder   = (*Rewarder)(nil)
	_ rm.Identified = (*Rewarder)(nil)
)

type job struct {
	ctx   context.Context
	ids   [][]int
	types [][]int
	out   [][]float32
	err   error
	done  chan struct{}
}

// NewRewarder loads the model and starts its batcher; Close stops it.
func NewRewarder(c Config) (*Rewarder, error) {
	enc, sess, err := load(&c)
	if err != nil {
		return nil, err
	}
	dims := sess.output.Dimensions
	k := 1
	switch {
	case len(dims) == 1:
	case len(dims) == 2 && dims[1] > 0:
		k = int(dims[1])
	case len(dims) == 2:
		k = len(c.Objectives) // dynamic: checked on every run
	default:
		sess.s.Destroy()
		return nil, fmt.Errorf("model %s: output %s has shape %v; a reward model's is [batch] or [batch, K]", c.Model, sess.output.Name, dims)
	}
	if len(c.Objectives) != k {
		sess.s.Destroy()
		return nil, fmt.Errorf("model %s: output %s has %d columns but %d objectives are named (%v)", c.Model, sess.output.Name, k, len(c.Objectives), c.Objectives)
	}
	r := &Rewarder{cfg: c, sess: sess, enc: enc, k: k, jobs: make(chan *job, 4*c.MaxBatch), stop: make(chan struct{}), done: make(chan struct{})}
	go r.batcher()
	return r, nil
}

func (r *Rewarder) Objectives() []string { return r.cfg.Objectives }

// ID names the model file and its input handling.
func (r *Rewarder) ID() string {
	return fmt.Sprintf("onnx:%s:%s:%s:%d:%s", r.cfg.Name, r.cfg.Model, r.enc.format.Name, r.cfg.MaxLength, r.cfg.Truncation)
}

// Provider reports where the model runs: cpu or cuda.
func (r *Rewarder) Provider() string { return r.sess.provider }

// Stats returns how many model runs there were and how many samples they
// carried.
func (r *Rewarder) Stats() (runs, samples int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.runs, r.batched
}

// Close stops the batcher and releases the session. Scores waiting or
// arriving later fail with a reward error. Safe to call concurrently and
// more than once.
func (r *Rewarder) Close() {
	r.once.Do(func() {
		close(r.stop)
		<-r.done
		r.sess.s.Destroy()
	})
}

// Score tokenizes the samples and hands them to the batcher, which runs
// them together with other callers' samples.
func (r *Rewarder) Score(ctx context.Context, samples []rm.Sample) ([][]float32, error) {
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

// batcher runs queued jobs together: all that are waiting (up to
// max_batch samples), plus, with max_wait, those that arrive within it.
// One job larger than max_batch runs in several calls.
func (r *Rewarder) batcher() {
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
func (r *Rewarder) refuseQueued() {
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

func (r *Rewarder) runJobs(jobs []*job) {
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
	var results [][]float32
	for start := 0; start < len(ids); start += r.cfg.MaxBatch {
		end := min(start+r.cfg.MaxBatch, len(ids))
		var tt [][]int
		if r.sess.hasTypes {
			tt = types[start:end]
		}
		rows, err := r.scoreBatch(pad(ids[start:end], tt, r.cfg.PadID))
		if err != nil {
			for _, j := range jobs {
				if j.err == nil {
					j.err = err
				}
			}
			return
		}
		results = append(results, rows...)
	}
	for i, row := range results {
		owners[i].out = append(owners[i].out, row)
	}
}

func (r *Rewarder) scoreBatch(b *batch) ([][]float32, error) {
	data, shape, err := r.sess.run(b)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.runs++
	r.batched += b.rows
	r.mu.Unlock()
	r.cfg.Metrics.RewardBatch(r.cfg.Name, b.rows)
	if int(shape.FlattenedSize()) != b.rows*r.k || shape[0] != int64(b.rows) {
		return nil, fmt.Errorf("%w: output shape %v for %d samples and %d objectives", fault.ErrReward, shape, b.rows, r.k)
	}
	out := make([][]float32, b.rows)
	for i := range out {
		out[i] = data[i*r.k : (i+1)*r.k]
	}
	return out, nil
}
