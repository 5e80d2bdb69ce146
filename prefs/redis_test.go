package prefs

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/steergate/steergate/cache/cachetest"
	"github.com/steergate/steergate/fault"
)

// The Redis store: concurrent updates from two clients (two replicas) lose
// none; responses expire; feedback ids are first once; keys are found by
// their hash.
func TestRedisStore(t *testing.T) {
	srv := cachetest.StartRedis(t)
	ctx := context.Background()
	var stores []*Redis
	for range 2 {
		stores = append(stores, NewRedis(srv.Client(), "t:"))
	}
	// A burst of updates of one user on each replica (16 requests at once
	// each) is learned whole: none gives up on the race.
	var wg sync.WaitGroup
	for i := range 256 {
		s := stores[i%2]
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				_, err := s.Update(ctx, "ten:ant", "u", "r", func(p *Preferences) (*Preferences, error) {
					if p == nil {
						p = &Preferences{Weights: map[string]float64{}}
					}
					p.Updates++
					p.Weights["a"] += 1
					return p, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	p, err := stores[1].Get(ctx, "ten:ant", "u", "r")
	if err != nil || p.Updates != 1280 || p.Weights["a"] != 1280 {
		t.Fatalf("after 640 concurrent updates: %+v %v", p, err)
	}
	// One hash per user, a field per reward, never expiring.
	if k := `t:prefs:"ten:ant":"u"`; stores[0].c.Type(ctx, k).Val() != "hash" || stores[0].c.TTL(ctx, k).Val() != -1 {
		t.Errorf("%s: type %s, ttl %v", k, stores[0].c.Type(ctx, k).Val(), stores[0].c.TTL(ctx, k).Val())
	}
	// A colon in a name cannot reach another tenant's key.
	if p, _ := stores[0].Get(ctx, "ten", "ant:u", "r"); p != nil {
		t.Error("tenant ten:ant and tenant ten share keys")
	}
	if ok, err := stores[0].Delete(ctx, "ten:ant", "u", "r"); !ok || err != nil {
		t.Errorf("delete %v %v", ok, err)
	}
	_ = stores[0].LogResponse(ctx, &Response{ID: "x", Tenant: "t", User: "u"}, time.Second)
	if r, _ := stores[1].Response(ctx, "x"); r == nil || r.User != "u" {
		t.Errorf("response %+v", r)
	}
	if ttl := stores[0].c.TTL(ctx, `t:resp:"x"`).Val(); ttl <= 0 || ttl > time.Second {
		t.Errorf("response ttl %v", ttl)
	}
	first, _ := stores[0].FirstFeedback(ctx, "t", "f", time.Minute)
	second, _ := stores[1].FirstFeedback(ctx, "t", "f", time.Minute)
	if !first || second {
		t.Errorf("feedback id: first %v, second %v", first, second)
	}
	if err := stores[1].ForgetFeedback(ctx, "t", "f"); err != nil {
		t.Fatal(err)
	}
	if again, _ := stores[0].FirstFeedback(ctx, "t", "f", time.Minute); !again {
		t.Error("a forgotten feedback id is still seen")
	}
	// A claim is pending until settled, for ClaimTTL at most; settled, a
	// repeat; an id FirstFeedback wrote is one stored.
	c1, _ := stores[0].ClaimFeedback(ctx, "t", "c")
	c2, _ := stores[1].ClaimFeedback(ctx, "t", "c")
	if ttl := stores[0].c.TTL(ctx, `t:feedback:"t":"c"`).Val(); c1 != ClaimFirst || c2 != ClaimPending || ttl <= 0 || ttl > ClaimTTL {
		t.Errorf("claims %v %v, ttl %v", c1, c2, ttl)
	}
	if err := stores[0].SettleFeedback(ctx, "t", "c", time.Hour); err != nil {
		t.Fatal(err)
	}
	c3, _ := stores[1].ClaimFeedback(ctx, "t", "c")
	c4, _ := stores[1].ClaimFeedback(ctx, "t", "f")
	if ttl := stores[0].c.TTL(ctx, `t:feedback:"t":"c"`).Val(); c3 != ClaimStored || c4 != ClaimStored || ttl <= ClaimTTL {
		t.Errorf("after settling: %v, FirstFeedback's: %v, ttl %v", c3, c4, ttl)
	}
	stores[0].c.HSet(ctx, "t:key:"+Hash("sk-x"), "tenant", "acme", "role", "admin", "name", "ops")
	k := NewKeys(nil, stores[1])
	if id, err := k.Identify(ctx, "Bearer sk-x"); err != nil || id.Tenant != "acme" || !id.Admin() || id.Class != "redis" {
		t.Errorf("key from Redis: %+v %v", id, err)
	}
	if _, err := k.Identify(ctx, "Bearer sk-y"); err != ErrBadKey {
		t.Errorf("unknown key: %v", err)
	}
	// A record with no role is a user's; one with a role that is neither,
	// or that is no hash, is refused with why, not read as a user's or
	// answered "try again".
	stores[0].c.HSet(ctx, "t:key:"+Hash("sk-u"), "tenant", "acme")
	if id, err := k.Identify(ctx, "Bearer sk-u"); err != nil || id.Role != RoleUser {
		t.Errorf("no role: %+v %v", id, err)
	}
	stores[0].c.HSet(ctx, "t:key:"+Hash("sk-z"), "tenant", "acme", "role", "ADMIN")
	stores[0].c.Set(ctx, "t:key:"+Hash("sk-s"), "acme", 0)
	for key, want := range map[string]string{"sk-z": `has role "ADMIN"`, "sk-s": "is not a hash"} {
		if _, err := k.Identify(ctx, "Bearer "+key); !errors.Is(err, fault.ErrUnauthorized) || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: %v", key, err)
		}
	}
}
