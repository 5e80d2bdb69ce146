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

// scoreFormat versions the cached encoding of scores: the float32 scores,
// then the reward's detail (JSON) when it gives one.
const scoreFormat = "v3"

// Cached puts a score cache in front of a rewarder. Keys hash the reward's
// id (model and version, and its config), the objective names and the exact
// sample; one batched lookup finds the hits, only the misses are scored (in
// one batch) and they are stored in one batched write.
type Cached struct {
	Rewarder
	id      string
	cache   cache.Cache
	ttl     time.Duration
	metrics *metrics.Metrics
}

// NewCached wraps r; id must change whenever r's scores could.
func NewCached(r Rewarder, id string, c cache.Cache, ttl time.Duration, m *metrics.Metrics) *Cached {
	return &Cached{Rewarder: r, id: id, cache: c, ttl: ttl, metrics: m}
}

func (c *Cached) ID() string { return c.id }

// Unwrap returns the cached reward.
func (c *Cached) Unwrap() Rewarder { return c.Rewarder }

func (c *Cached) key(s Sample) string {
	h := sha256.New()
	// Text and Calls stay out of a Sample's JSON; a tool call and a text
	// that renders alike (Response) are different answers to a reward that
	// checks calls. A call is its type, name and arguments: its id is the
	// backend's fresh one each time, and no reward reads it.
	type call struct{ T, N, A string }
	calls := make([]call, len(s.Calls))
	for i, tc := range s.Calls {
		calls[i] = call{tc.Type, tc.Name, tc.Arguments}
	}
	b, _ := json.Marshal(struct {
		F, ID string
		O     []string
		S     Sample
		T     string
		C     []call
	}{scoreFormat, c.id, c.Rewarder.Objectives(), s, s.Text, calls})
	h.Write(b)
	return "rm:" + hex.EncodeToString(h.Sum(nil))
}

func (c *Cached) Score(ctx context.Context, samples []Sample) ([][]float32, error) {
	scores, _, err := c.Explain(ctx, samples)
	return scores, err
}

// Explain looks every sample up in one batch, scores the misses in one
// batch and stores them in one batched write, details included.
func (c *Cached) Explain(ctx context.Context, samples []Sample) ([][]float32, []json.RawMessage, error) {
	n := len(c.Rewarder.Objectives())
	keys := make([]string, len(samples))
	for i, s := range samples {
		keys[i] = c.key(s)
	}
	hits, _ := c.cache.GetMany(ctx, keys)
	out := make([][]float32, len(samples))
	var details []json.RawMessage
	setDetail := func(i int, d json.RawMessage) {
		if len(d) == 0 {
			return
		}
		if details == nil {
			details = make([]json.RawMessage, len(samples))
		}
		details[i] = d
	}
	var missIdx []int
	var miss []Sample
	for i, s := range samples {
		if i < len(hits) && len(hits[i]) >= 4*n && (len(hits[i]) == 4*n || json.Valid(hits[i][4*n:])) {
			out[i] = decodeScores(hits[i][:4*n])
			setDetail(i, hits[i][4*n:])
			c.metrics.Cache("score", "get", "hit")
			continue
		}
		c.metrics.Cache("score", "get", "miss")
		missIdx = append(missIdx, i)
		miss = append(miss, s)
	}
	if len(miss) == 0 {
		return out, details, nil
	}
	scored, why, err := ScoreExplained(ctx, c.Rewarder, miss)
	if err != nil {
		return nil, nil, err
	}
	if err := CheckShape(scored, len(miss), n); err != nil {
		return nil, nil, err
	}
	items := make([]cache.Item, 0, len(missIdx))
	for j, i := range missIdx {
		out[i] = scored[j]
		d := detailOf(why, j)
		setDetail(i, d)
		items = append(items, cache.Item{Key: keys[i], Val: append(encodeScores(scored[j]), d...)})
	}
	_ = c.cache.SetMany(context.WithoutCancel(ctx), items, c.ttl) // a failed write is only a future miss
	return out, details, nil
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

// Identity gives a reward that no cache wraps the identity a cache would
// give it (its name, config and model), so that the response cache still
// tells its versions apart.
type Identity struct {
	Rewarder
	id string
}

// NewIdentity wraps r with identity id.
func NewIdentity(r Rewarder, id string) *Identity { return &Identity{Rewarder: r, id: id} }

func (i *Identity) ID() string { return i.id }

// Unwrap returns the reward.
func (i *Identity) Unwrap() Rewarder { return i.Rewarder }

// Explain passes the reward's details on.
func (i *Identity) Explain(ctx context.Context, s []Sample) ([][]float32, []json.RawMessage, error) {
	return ScoreExplained(ctx, i.Rewarder, s)
}
