package steering

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/steergate/steergate/backend"
)

// Strategy names.
const (
	None     = "none"
	BestOfN  = "best_of_n"
	Adaptive = "adaptive"
)

// Params are a request's steering parameters: the route's defaults with the
// request's "steering" field laid over them.
type Params struct {
	Strategy string             `json:"strategy,omitempty"`
	Reward   string             `json:"reward,omitempty"`
	Weights  map[string]float64 `json:"weights,omitempty"`
	// LengthPenalty is subtracted from the utility per completion token
	// beyond LengthFree (length-bias control).
	LengthPenalty float64 `json:"length_penalty,omitempty"`
	LengthFree    int     `json:"length_free,omitempty"`
	MinSuccess    int     `json:"min_success,omitempty"`
	// OnRewardError is what to do when the reward model fails: "fail"
	// (502, the default) or "first" (answer with the first sample,
	// unscored, and say so in the report).
	OnRewardError string `json:"on_reward_error,omitempty"`
	// Cache controls the response cache for this request.
	Cache *CacheParams `json:"cache,omitempty"`

	// best_of_n
	N int `json:"n,omitempty"`

	// adaptive
	Initial     int      `json:"initial,omitempty"`
	Step        int      `json:"step,omitempty"`
	MaxSamples  int      `json:"max_samples,omitempty"`
	Threshold   *float64 `json:"threshold,omitempty"`
	Delta       float64  `json:"delta,omitempty"`
	PMin        float64  `json:"p_min,omitempty"`
	PruneTokens int      `json:"prune_tokens,omitempty"`
	Keep        float64  `json:"keep,omitempty"`
}

// Decode lays raw (a JSON object) over p. Unknown fields are an error, so
// that a misspelt parameter is not silently ignored.
func (p *Params) Decode(raw []byte, param string) error {
	if len(bytes.TrimSpace(raw)) == 0 || string(bytes.TrimSpace(raw)) == "null" {
		return nil
	}
	var over Params
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&over); err != nil {
		return backend.Invalid(param, "invalid %s: %v", param, err)
	}
	// Overlay: fields present in raw win; weights merge key by key. The
	// route's map is shared, so it is never written to.
	weights := p.Weights
	p.Weights = nil
	if err := json.Unmarshal(raw, p); err != nil {
		return backend.Invalid(param, "invalid %s: %v", param, err)
	}
	switch {
	case over.Weights == nil:
		p.Weights = weights
	case weights != nil:
		merged := make(map[string]float64, len(weights)+len(over.Weights))
		for k, v := range weights {
			merged[k] = v
		}
		for k, v := range over.Weights {
			merged[k] = v
		}
		p.Weights = merged
	}
	return nil
}

// Limits cap what one request may spend.
type Limits struct {
	MaxSamples int // most samples per request
}

// defaults fills unset parameters and checks ranges; k is the number of
// answers the client asked for (n).
func (p *Params) defaults(k int, l Limits) error {
	bad := func(name, format string, args ...any) error {
		return backend.Invalid("steering."+name, format, args...)
	}
	if p.MinSuccess == 0 {
		p.MinSuccess = k
	}
	if p.MinSuccess < k {
		return bad("min_success", "min_success must be at least n (%d)", k)
	}
	switch p.OnRewardError {
	case "", "fail", "first":
	default:
		return bad("on_reward_error", "on_reward_error must be fail or first")
	}
	if p.LengthPenalty < 0 || p.LengthFree < 0 {
		return bad("length_penalty", "length_penalty and length_free must not be negative")
	}
	switch p.Strategy {
	case None:
	case BestOfN:
		if p.N == 0 {
			p.N = 4
		}
		if p.N < k || p.N > l.MaxSamples {
			return bad("n", "n must be between the request's n (%d) and %d", k, l.MaxSamples)
		}
		if p.MinSuccess > p.N {
			return bad("min_success", "min_success must be at most n")
		}
	case Adaptive:
		if p.Initial == 0 {
			p.Initial = max(2, k)
		}
		if p.Step == 0 {
			p.Step = 2
		}
		if p.MaxSamples == 0 {
			p.MaxSamples = min(16, l.MaxSamples)
		}
		if p.PMin == 0 {
			p.PMin = 0.1
		}
		switch {
		case p.Initial < k:
			return bad("initial", "initial must be at least the request's n (%d)", k)
		case p.Step < 1:
			return bad("step", "step must be at least 1")
		case p.MaxSamples < p.Initial || p.MaxSamples > l.MaxSamples:
			return bad("max_samples", "max_samples must be between initial (%d) and %d", p.Initial, l.MaxSamples)
		case p.Delta < 0:
			return bad("delta", "delta must not be negative")
		case p.PMin <= 0 || p.PMin >= 1:
			return bad("p_min", "p_min must be in (0, 1)")
		case p.PruneTokens < 0:
			return bad("prune_tokens", "prune_tokens must not be negative")
		case p.PruneTokens > 0 && (p.Keep <= 0 || p.Keep >= 1):
			return bad("keep", "keep must be in (0, 1) when prune_tokens is set")
		}
	default:
		return bad("strategy", "unknown strategy %q: use none, best_of_n or adaptive", p.Strategy)
	}
	return nil
}

func (p Params) String() string {
	b, _ := json.Marshal(p)
	return fmt.Sprint(string(b))
}

func (p *Params) checkCache() error {
	if p.Cache == nil {
		return nil
	}
	switch p.Cache.Mode {
	case CacheAuto, CacheOn, CacheOff, CacheReadOnly, CacheWriteOnly:
	default:
		return backend.Invalid("steering.cache.mode", "cache mode must be on, off, read_only or write_only")
	}
	if p.Cache.TTLS < 0 || p.Cache.MaxAgeS < 0 {
		return backend.Invalid("steering.cache", "ttl_s and max_age_s must not be negative")
	}
	return nil
}
