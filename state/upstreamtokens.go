package state

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// UpstreamTokens keeps users' tokens at the identity provider for
// backends that call the provider's API as the user: one record per
// login, sealed (see Sealer) under the record's key, so that a copy of the
// store yields no token without the key. It keeps nothing until Keep is
// called with a key.
type UpstreamTokens struct {
	store   storage.Store
	sealer  *Sealer
	revoked func(*UpstreamToken)
}

// UpstreamToken is a user's token at the identity provider.
type UpstreamToken struct {
	// ID is the record's id, which grants and access tokens name.
	ID           string `json:"-"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	// Expiry is when the access token expires (Unix seconds); zero if
	// the provider did not say.
	Expiry int64 `json:"expiry,omitempty"`
	// Obtained is when the provider issued AccessToken (Unix seconds).
	Obtained int64    `json:"obtained"`
	Scopes   []string `json:"scopes,omitempty"`
	// Until is when the record goes (Unix seconds): the end of the login
	// or grant it serves.
	Until int64 `json:"until"`

	// stored is the sealed value the token was read from, which Replace
	// swaps; oldKey says an old key sealed it.
	stored []byte
	oldKey bool
}

// SealedWithOldKey reports whether the token was read sealed with a key
// other than the current one: Replace seals it again with the current.
func (t *UpstreamToken) SealedWithOldKey() bool { return t.oldKey }

// ErrNoUpstreamTokens is returned when no sealing key is configured.
var ErrNoUpstreamTokens = errors.New("state: upstream tokens are not kept")

// Keep makes the store keep upstream tokens sealed by sealer; revoked, if
// set, is called with each token whose record revocation removes, to
// revoke it at the provider too. It is called once, before use.
func (u *UpstreamTokens) Keep(sealer *Sealer, revoked func(*UpstreamToken)) {
	u.sealer, u.revoked = sealer, revoked
}

// Kept reports whether upstream tokens are kept.
func (u *UpstreamTokens) Kept() bool { return u.sealer != nil }

func upstreamTokenKey(id string) string { return keyUpstreamToken + id }

// Save stores tok under tok.ID until tok.Until.
func (u *UpstreamTokens) Save(ctx context.Context, tok *UpstreamToken) error {
	sealed, ttl, err := u.seal(tok)
	if err != nil {
		return err
	}
	return u.store.Put(ctx, upstreamTokenKey(tok.ID), sealed, ttl)
}

func (u *UpstreamTokens) seal(tok *UpstreamToken) ([]byte, time.Duration, error) {
	if u.sealer == nil {
		return nil, 0, ErrNoUpstreamTokens
	}
	ttl, live := ttlUntil(tok.Until)
	if !live {
		return nil, 0, ErrGrantEnded
	}
	plain, err := json.Marshal(tok)
	if err != nil {
		return nil, 0, err
	}
	return u.sealer.Seal(plain, []byte(upstreamTokenKey(tok.ID))), ttl, nil
}

// Get returns the token stored under id: storage.ErrNotFound if there is
// none, ErrUnsealable if no configured key opens it.
func (u *UpstreamTokens) Get(ctx context.Context, id string) (*UpstreamToken, error) {
	if u.sealer == nil {
		return nil, ErrNoUpstreamTokens
	}
	raw, err := u.store.Get(ctx, upstreamTokenKey(id))
	if err != nil {
		return nil, err
	}
	return u.open(id, raw)
}

func (u *UpstreamTokens) open(id string, raw []byte) (*UpstreamToken, error) {
	plain, current, err := u.sealer.Open(raw, []byte(upstreamTokenKey(id)))
	if err != nil {
		return nil, err
	}
	tok := &UpstreamToken{ID: id, stored: raw, oldKey: !current}
	if err := json.Unmarshal(plain, tok); err != nil {
		return nil, ErrUnsealable
	}
	return tok, nil
}

// Replace stores next, sealed with the current key, in place of current
// as Get read it: storage.ErrConflict if it changed meanwhile,
// storage.ErrNotFound if it is gone.
func (u *UpstreamTokens) Replace(ctx context.Context, current, next *UpstreamToken) error {
	next.ID = current.ID
	sealed, ttl, err := u.seal(next)
	if err != nil {
		return err
	}
	if err := u.store.Swap(ctx, upstreamTokenKey(current.ID), current.stored, sealed, ttl); err != nil {
		return err
	}
	next.stored = sealed
	return nil
}

// Exists reports whether the token id is still stored; never for "".
func (u *UpstreamTokens) Exists(ctx context.Context, id string) (bool, error) {
	if id == "" {
		return false, nil
	}
	return exists(ctx, u.store, upstreamTokenKey(id))
}

// Remove deletes the token id, and hands it to the revoked function given
// to Keep when it could be read.
func (u *UpstreamTokens) Remove(ctx context.Context, id string) error {
	raw, err := u.store.Take(ctx, upstreamTokenKey(id))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil
	case err != nil:
		return err
	}
	if u.sealer == nil || u.revoked == nil {
		return nil
	}
	if tok, err := u.open(id, raw); err == nil {
		u.revoked(tok)
	}
	return nil
}

// Lock takes the lock on refreshing the token id for ttl, across every
// instance sharing the store, and reports whether it got it.
func (u *UpstreamTokens) Lock(ctx context.Context, id string, ttl time.Duration) (bool, error) {
	switch err := u.store.Create(ctx, keyUpstreamRefreshLock+id, nil, ttl); {
	case err == nil:
		return true, nil
	case errors.Is(err, storage.ErrConflict):
		return false, nil
	default:
		return false, err
	}
}

// Unlock releases the lock Lock took.
func (u *UpstreamTokens) Unlock(ctx context.Context, id string) {
	_ = u.store.Delete(ctx, keyUpstreamRefreshLock+id)
}
