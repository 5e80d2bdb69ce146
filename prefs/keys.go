package prefs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Roles of an API key.
const (
	RoleUser  = "user"  // acts within its own tenant
	RoleAdmin = "admin" // may act on any tenant and force experiment arms
)

// Identity is who an API key speaks for.
type Identity struct {
	Name   string // the key's name, for logs
	Tenant string
	Role   string
	// Class is where the key came from, a bounded label for metrics:
	// "config", "redis", or "local" when no key is required.
	Class string
}

// Admin reports whether the identity may act on any tenant.
func (id Identity) Admin() bool { return id.Role == RoleAdmin }

// Hash is how keys are stored: the hex SHA-256 of the key.
func Hash(key string) string {
	h := sha256.Sum256([]byte(key))
	return hex.EncodeToString(h[:])
}

// KeyLookup finds a key's identity by its hash in a shared store; ok is
// false for an unknown key.
type KeyLookup interface {
	LookupKey(ctx context.Context, hash string) (id Identity, ok bool, err error)
}

// Keys identifies requests by their API key: the configured keys first,
// then, when set, a shared store. With neither, it is open: every request
// is the one local tenant, with the admin role.
type Keys struct {
	byHash map[string]Identity
	shared KeyLookup
}

// LocalTenant is the tenant of every request when no keys are configured.
const LocalTenant = "local"

// NewKeys returns the keys; shared may be nil.
func NewKeys(byHash map[string]Identity, shared KeyLookup) *Keys {
	return &Keys{byHash: byHash, shared: shared}
}

// Open reports whether no key is required.
func (k *Keys) Open() bool { return k == nil || len(k.byHash) == 0 && k.shared == nil }

// Identify reads an Authorization header value ("Bearer KEY").
func (k *Keys) Identify(ctx context.Context, authorization string) (Identity, error) {
	if k.Open() {
		return Identity{Name: "local", Tenant: LocalTenant, Role: RoleAdmin, Class: "local"}, nil
	}
	// The scheme is case-insensitive (RFC 9110): bearer and BEARER too.
	scheme, key, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	key = strings.TrimSpace(key)
	if !ok || !strings.EqualFold(scheme, "Bearer") || key == "" {
		return Identity{}, ErrNoKey
	}
	h := Hash(key)
	if id, ok := k.byHash[h]; ok {
		id.Class = "config"
		return id, nil
	}
	if k.shared != nil {
		id, ok, err := k.shared.LookupKey(ctx, h)
		if err != nil {
			return Identity{}, fmt.Errorf("looking up the API key: %w", err)
		}
		if ok {
			id.Class = "redis"
			return id, nil
		}
	}
	return Identity{}, ErrBadKey
}
