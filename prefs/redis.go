package prefs

import (
	"context"
	"encoding/json"
	"errors"
	"hash/maphash"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/steergate/steergate/fault"
)

// Redis is a Store (and a KeyLookup) in Redis, shared by every replica:
// preferences as one hash per user (a field per reward, its value JSON)
// without expiry, responses with the log's TTL,
// feedback ids with SET NX, keys as hashes key:HASH {tenant, role, name}.
type Redis struct {
	c      redis.UniversalClient
	prefix string
	// turns lets one update of a user's preferences at a time in this
	// process go to Redis: the WATCH transaction then races only other
	// replicas, not a burst of this one's own requests.
	turns [64]chan struct{}
}

// NewRedis uses c with every key under prefix.
func NewRedis(c redis.UniversalClient, prefix string) *Redis {
	r := &Redis{c: c, prefix: prefix}
	for i := range r.turns {
		r.turns[i] = make(chan struct{}, 1)
	}
	return r
}

// errContended is the answer when other replicas kept winning the race
// for one user's preferences: a 503 to retry, nothing written.
var errContended = &fault.ParamError{Msg: "the user's preferences are being updated by too many requests at once; try again shortly", Err: fault.ErrOverloaded}

func (r *Redis) prefKey(tenant, user string) string {
	return r.prefix + "prefs:" + quote(tenant) + ":" + quote(user)
}

// quote keeps a colon in a name from forging another key.
func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

func (r *Redis) Get(ctx context.Context, tenant, user, reward string) (*Preferences, error) {
	b, err := r.c.HGet(ctx, r.prefKey(tenant, user), reward).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var p Preferences
	if err := json.Unmarshal(b, &p); err != nil {
		return nil, err
	}
	return &p, nil
}

func (r *Redis) Put(ctx context.Context, tenant, user, reward string, p *Preferences) error {
	b, err := json.Marshal(p)
	if err != nil {
		return err
	}
	return r.c.HSet(ctx, r.prefKey(tenant, user), reward, b).Err()
}

func (r *Redis) Delete(ctx context.Context, tenant, user, reward string) (bool, error) {
	n, err := r.c.HDel(ctx, r.prefKey(tenant, user), reward).Result()
	return n > 0, err
}

// Update reads, applies fn and writes in a WATCH transaction, retried when
// another replica wrote in between.
func (r *Redis) Update(ctx context.Context, tenant, user, reward string, fn func(*Preferences) (*Preferences, error)) (*Preferences, error) {
	k := r.prefKey(tenant, user)
	turn := r.turns[maphash.String(turnSeed, k)%uint64(len(r.turns))]
	select {
	case turn <- struct{}{}:
		defer func() { <-turn }()
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	var out *Preferences
	for attempt := range 64 {
		if attempt > 0 { // another replica won the race: wait a little, then read again
			t := time.NewTimer(time.Duration(rand.IntN(attempt*200)+50) * time.Microsecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, ctx.Err()
			case <-t.C:
			}
		}
		err := r.c.Watch(ctx, func(tx *redis.Tx) error {
			var cur *Preferences
			b, err := tx.HGet(ctx, k, reward).Bytes()
			switch {
			case errors.Is(err, redis.Nil):
			case err != nil:
				return err
			default:
				cur = &Preferences{}
				if err := json.Unmarshal(b, cur); err != nil {
					return err
				}
			}
			next, err := fn(cur)
			if err != nil {
				return err
			}
			nb, err := json.Marshal(next)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
				p.HSet(ctx, k, reward, nb)
				return nil
			})
			out = next
			return err
		}, k)
		if !errors.Is(err, redis.TxFailedErr) {
			return out, err
		}
	}
	return nil, errContended
}

var turnSeed = maphash.MakeSeed()

func (r *Redis) LogResponse(ctx context.Context, resp *Response, ttl time.Duration) error {
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	return r.c.Set(ctx, r.prefix+"resp:"+quote(resp.ID), b, ttl).Err()
}

func (r *Redis) Response(ctx context.Context, id string) (*Response, error) {
	b, err := r.c.Get(ctx, r.prefix+"resp:"+quote(id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var resp Response
	if err := json.Unmarshal(b, &resp); err != nil {
		return nil, err
	}
	return &resp, nil
}

func (r *Redis) FirstFeedback(ctx context.Context, tenant, id string, ttl time.Duration) (bool, error) {
	return r.c.SetNX(ctx, r.feedbackKey(tenant, id), 1, ttl).Result()
}

// A claim's value says its feedback is being stored; any other (a settled
// one, or one FirstFeedback wrote) that it was.
const pendingMark = "pending"

func (r *Redis) ClaimFeedback(ctx context.Context, tenant, id string) (Claim, error) {
	k := r.feedbackKey(tenant, id)
	for range 2 { // a mark that expires between the two commands: claim again
		ok, err := r.c.SetNX(ctx, k, pendingMark, ClaimTTL).Result()
		if err != nil || ok {
			return ClaimFirst, err
		}
		v, err := r.c.Get(ctx, k).Result()
		switch {
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return ClaimFirst, err
		case v == pendingMark:
			return ClaimPending, nil
		}
		return ClaimStored, nil
	}
	return ClaimPending, nil
}

func (r *Redis) SettleFeedback(ctx context.Context, tenant, id string, ttl time.Duration) error {
	return r.c.Set(ctx, r.feedbackKey(tenant, id), 1, ttl).Err()
}

func (r *Redis) ForgetFeedback(ctx context.Context, tenant, id string) error {
	return r.c.Del(ctx, r.feedbackKey(tenant, id)).Err()
}

func (r *Redis) feedbackKey(tenant, id string) string {
	return r.prefix + "feedback:" + quote(tenant) + ":" + quote(id)
}

// LookupKey reads key:HASH.
func (r *Redis) LookupKey(ctx context.Context, hash string) (Identity, bool, error) {
	m, err := r.c.HGetAll(ctx, r.prefix+"key:"+hash).Result()
	if err != nil && strings.HasPrefix(err.Error(), "WRONGTYPE") {
		// An operator's mistake, not an outage: the key is refused, with
		// why, rather than answered "try again" for ever.
		return Identity{}, false, fault.New(fault.ErrUnauthorized, "", "this API key's record in Redis is not a hash (fields tenant, role, name)")
	}
	if err != nil {
		return Identity{}, false, err
	}
	if m["tenant"] == "" {
		return Identity{}, false, nil
	}
	role := m["role"]
	switch role {
	case "":
		role = RoleUser
	case RoleUser, RoleAdmin:
	default:
		return Identity{}, false, fault.New(fault.ErrUnauthorized, "", "this API key's record in Redis has role %q; roles are user and admin", fault.Clip(role, 32))
	}
	return Identity{Name: m["name"], Tenant: m["tenant"], Role: role}, true, nil
}
