package rm

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math"
	"time"

	"github.com/steergate/steergate/cache"
	"github.com/steergate/steergate/metrics"
)

// scoreFormat versions the cached encoding of scores.
const scoreFormat = "v1"

// Cached puts a score cache in front of a rewarder. Keys hash the reward's
// id (model and version, and its config), the objective names and the exact
// sample; only the samples that miss are scored, in one batch.
type Cached struct {
	Rewarder
	id    string
	cache cache.Cache
	ttl   time.Duration
}

// NewCached wraps r; id must change whenever r's scores could.
func NewCached(r Rewarder, id string, c cache.Cache, ttl time.Duration) *Cached {
	return &Cached{Rewarder: r, id: id, cache: c, ttl: ttl}
}

func (c *Cached) ID() string { return c.id }

func (c *Cached) key(s Sample) string {
	h := sha256.New()
	b, _ := json.Marshal(struct {
		F, ID string
		O     []string
		S     Sample
	}{scoreFormat, c.id, c.Rewarder.Objectives(), s})
	h.Write(b)
	return "rm:" + hex.EncodeToString(h.Sum(nil))
}

func (c *Cached) Score(ctx context.Context, samples []Sample) ([][]float32, error) {
	out := make([][]float32, len(samples))
	keys := make([]string, len(samples))
	var missIdx []int
	var miss []Sample
	n := len(c.Rewarder.Objectives())
	for i, s := range samples {
		keys[i] = c.key(s)
		if b, ok, err := c.cache.Get(ctx, keys[i]); err == nil && ok && len(b) == 4*n {
			out[i] = decodeScores(b)
			metrics.Cache.WithLabelValues("score", "get", "hit").Inc()
			continue
		}
		metrics.Cache.WithLabelValues("score", "get", "miss").Inc()
		missIdx = append(missIdx, i)
		miss = append(miss, s)
	}
	if len(miss) == 0 {
		return out, nil
	}
	scored, err := c.Rewarder.Score(ctx, miss)
	if err != nil {
		return nil, err
	}
	for j, i := range missIdx {
		out[i] = scored[j]
		_ = c.cache.Set(ctx, keys[i], encodeScores(scored[j]), c.ttl) // a failed write is only a future miss
	}
	return out, nil
}

func encodeScores(v []float32) []byte {
	b := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
	}
	return b
}

func decodeScores(b []byte) []float32 {
	v := make([]float32, len(b)/4)
	for i := range v {
		v[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return v
}
