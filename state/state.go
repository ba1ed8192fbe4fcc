// Package state is the one home of what an authorization server stores:
// the record types, the keys they are stored under and the typed stores
// that read and write them over a storage.Store. Stores holds those of one
// site's key space; Sessions, the MCP session bindings every site keeps in
// the shared store. Only the signing keys (tokens.KeyRing) and the store's
// own schema record are stored by other packages.
//
// The bytes stored are the layout of storage.SchemaVersion: a change to a
// key or to a record's JSON that an older build would misread must raise
// that version.
package state

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Stores are the typed stores of one authorization server's key space
// (see storage.Prefixed): a record of one site is unknown at every other.
type Stores struct {
	Clients     *Clients
	Codes       *Codes
	Grants      *Grants
	Revocations *Revocations
	Logins      *Logins
	Users       *Users
	// UpstreamTokens keeps users' tokens at the identity provider, when
	// configured to.
	UpstreamTokens *UpstreamTokens
	// Proofs remembers the DPoP proofs used at the token endpoint.
	Proofs *Proofs
}

// Open returns the stores of an authorization server's key space, with
// its revoked access tokens read into memory and kept current until ctx
// is done (see Revocations). bound is zero when only this process uses
// the store, else the staleness after which revocation checks fail;
// tokenLifetime is the longest an access token lives.
func Open(ctx context.Context, store storage.Store, bound, tokenLifetime time.Duration, logger *zap.Logger) (*Stores, error) {
	revocations, err := newRevocations(ctx, store, bound, tokenLifetime, logger)
	if err != nil {
		return nil, err
	}
	upstreamTokens := &UpstreamTokens{store: store}
	return &Stores{
		Clients:        &Clients{store: store},
		Codes:          &Codes{store: store},
		Grants:         &Grants{store: store, revocations: revocations, upstreamTokens: upstreamTokens},
		Revocations:    revocations,
		Logins:         &Logins{store: store},
		Users:          &Users{store: store},
		UpstreamTokens: upstreamTokens,
		Proofs:         &Proofs{store: store},
	}, nil
}

// Hash is the stored form of a secret value (a code, a token, a state):
// only its SHA-256 is ever stored, so a copy of the database yields no
// usable secret.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// ttlUntil is the ttl of a record that must be gone at the Unix time
// deadline, and false once the deadline has passed: such a record is not
// written at all, since a store keeps one with a ttl of zero forever.
func ttlUntil(deadline int64) (time.Duration, bool) {
	ttl := time.Until(time.Unix(deadline, 0))
	return ttl, ttl > 0
}

// exists reports whether store holds key.
func exists(ctx context.Context, store storage.Store, key string) (bool, error) {
	switch _, err := store.Get(ctx, key); {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

func getJSON(ctx context.Context, store storage.Store, key string, v any) error {
	buf, err := store.Get(ctx, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(buf, v)
}

func putJSON(ctx context.Context, store storage.Store, key string, v any, ttl time.Duration) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return store.Put(ctx, key, buf, ttl)
}

func takeJSON(ctx context.Context, store storage.Store, key string, v any) error {
	buf, err := store.Take(ctx, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(buf, v)
}
