package experiment

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a Store every replica shares: one hash per arm, added to with
// HINCRBY and HINCRBYFLOAT in one MULTI/EXEC, so that totals from many
// replicas are the totals of one; beside it, one hash of each unit's
// outcome count and sum (ARM:units), written after the arm's, from which
// a report computes the per-unit sums; a unit's arm under Thompson
// allocation is set once with SET NX.
type Redis struct {
	c      redis.UniversalClient
	prefix string
}

// NewRedis uses c with every key under prefix.
func NewRedis(c redis.UniversalClient, prefix string) *Redis { return &Redis{c: c, prefix: prefix} }

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func (r *Redis) key(experiment, arm string) string {
	return r.prefix + "exp:" + quote(experiment) + ":" + quote(arm)
}

func (r *Redis) Record(ctx context.Context, experiment, arm string, o Observation) error {
	k := r.key(experiment, arm)
	_, err := r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if o.Request {
			p.HIncrBy(ctx, k, "requests", 1)
			p.HIncrByFloat(ctx, k, "lat_sum", o.Latency.Seconds())
			p.HIncrBy(ctx, k, "lat:"+strconv.Itoa(bucket(o.Latency)), 1)
		}
		if o.Error {
			p.HIncrBy(ctx, k, "errors", 1)
		}
		if o.Tokens != 0 {
			p.HIncrBy(ctx, k, "tokens", int64(o.Tokens))
		}
		if o.Samples != 0 {
			p.HIncrBy(ctx, k, "samples", int64(o.Samples))
		}
		if o.Outcome != nil {
			v := *o.Outcome
			min := "m:" + strconv.FormatInt(time.Now().Unix()/60, 10)
			p.HIncrBy(ctx, k, "n", 1)
			p.HIncrByFloat(ctx, k, "sum", v)
			p.HIncrByFloat(ctx, k, "sumsq", v*v)
			p.HIncrBy(ctx, k, min+":n", 1)
			p.HIncrByFloat(ctx, k, min+":sum", v)
			p.HIncrByFloat(ctx, k, min+":sumsq", v*v)
			p.LPush(ctx, k+":recent", strconv.FormatFloat(v, 'g', -1, 64)+" "+strconv.Itoa(o.OutcomeTokens))
			p.LTrim(ctx, k+":recent", 0, MaxRecent-1)
			if o.Unit == "" { // an outcome of its own: a unit of one
				p.HIncrBy(ctx, k, "single_n", 1)
				p.HIncrByFloat(ctx, k, "single_sum", v)
				p.HIncrByFloat(ctx, k, "single_sumsq", v*v)
			}
		}
		switch {
		case o.Feedback > 0:
			p.HIncrBy(ctx, k, "wins", 1)
		case o.Feedback < 0:
			p.HIncrBy(ctx, k, "losses", 1)
		}
		return nil
	})
	if err != nil || o.Outcome == nil || o.Unit == "" {
		return err
	}
	// The unit's count and sum, after the arm's: should this write be
	// lost, the arm has an outcome its units lack, which the report
	// counts with the other unknown ones (Totals), never the reverse.
	_, err = r.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.HIncrBy(ctx, k+":units", "n:"+o.Unit, 1)
		p.HIncrByFloat(ctx, k+":units", "s:"+o.Unit, *o.Outcome)
		return nil
	})
	return err
}

func (r *Redis) Totals(ctx context.Context, experiment string, arms []string, withUnits bool) (map[string]*Totals, error) {
	cmds := make([]*redis.MapStringStringCmd, len(arms))
	recent := make([]*redis.StringSliceCmd, len(arms))
	units := make([]*redis.MapStringStringCmd, len(arms))
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, a := range arms {
			cmds[i] = p.HGetAll(ctx, r.key(experiment, a))
			recent[i] = p.LRange(ctx, r.key(experiment, a)+":recent", 0, MaxRecent-1)
			if withUnits {
				units[i] = p.HGetAll(ctx, r.key(experiment, a)+":units")
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := map[string]*Totals{}
	for i, a := range arms {
		t := &Totals{Latency: make([]int64, len(LatencyBuckets)+1), Minutes: map[int64]*Moments{}}
		ints := map[string]*int64{"requests": &t.Requests, "errors": &t.Errors, "tokens": &t.Tokens, "samples": &t.Samples,
			"n": &t.N, "wins": &t.Wins, "losses": &t.Losses}
		floats := map[string]*float64{"lat_sum": &t.LatSum, "sum": &t.Sum, "sumsq": &t.SumSq}
		var single Moments
		ints["single_n"], floats["single_sum"], floats["single_sumsq"] = &single.N, &single.Sum, &single.SumSq
		for f, v := range cmds[i].Val() {
			if p, ok := ints[f]; ok {
				*p, _ = strconv.ParseInt(v, 10, 64)
			} else if p, ok := floats[f]; ok {
				*p, _ = strconv.ParseFloat(v, 64)
			} else if b, ok := strings.CutPrefix(f, "lat:"); ok {
				if j, err := strconv.Atoi(b); err == nil && j >= 0 && j < len(t.Latency) {
					t.Latency[j], _ = strconv.ParseInt(v, 10, 64)
				}
			} else if rest, ok := strings.CutPrefix(f, "m:"); ok {
				ms, field, _ := strings.Cut(rest, ":")
				minute, err := strconv.ParseInt(ms, 10, 64)
				if err != nil {
					continue
				}
				mm := t.Minutes[minute]
				if mm == nil {
					mm = &Moments{}
					t.Minutes[minute] = mm
				}
				switch field {
				case "n":
					mm.N, _ = strconv.ParseInt(v, 10, 64)
				case "sum":
					mm.Sum, _ = strconv.ParseFloat(v, 64)
				case "sumsq":
					mm.SumSq, _ = strconv.ParseFloat(v, 64)
				}
			}
		}
		for _, e := range recent[i].Val() {
			vs, ts, _ := strings.Cut(e, " ")
			v, err1 := strconv.ParseFloat(vs, 64)
			n, err2 := strconv.Atoi(ts)
			if err1 == nil && err2 == nil {
				t.Recent = append(t.Recent, Recent{Outcome: v, Tokens: n})
			}
		}
		if withUnits {
			unitSums(t, single, units[i].Val())
		}
		out[a] = t
	}
	return out, nil
}

// unitSums fills t's per-unit figures from the units' counts and sums
// (fields n:UNIT and s:UNIT) and the outcomes of their own (single).
func unitSums(t *Totals, single Moments, fields map[string]string) {
	fillUnits(t, single, func(yield func(int64, float64)) {
		for f, v := range fields {
			unit, ok := strings.CutPrefix(f, "n:")
			if !ok {
				continue
			}
			n, err1 := strconv.ParseInt(v, 10, 64)
			s, err2 := strconv.ParseFloat(fields["s:"+unit], 64)
			if err1 == nil && err2 == nil {
				yield(n, s)
			}
		}
	})
}

func (r *Redis) Sticky(ctx context.Context, experiment, tenant, unit, arm string, ttl time.Duration) (string, error) {
	k := r.prefix + "exp:" + quote(experiment) + ":unit:" + quote(tenant) + ":" + quote(unit)
	ok, err := r.c.SetNX(ctx, k, arm, ttl).Result()
	if err != nil || ok {
		return arm, err
	}
	return r.c.Get(ctx, k).Result()
}
