package state

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// revokeAttempts bounds how often Revoke reads a grant again after a
// refresh rotated it under its feet; each retry means a refresh
// succeeded, and refreshes of one grant cannot keep up that pace.
const revokeAttempts = 10

// Grants stores refresh-token families, each under its id, and the
// lookup from the hash of each current refresh token to its grant.
type Grants struct {
	store          storage.Store
	revocations    *Revocations
	upstreamTokens *UpstreamTokens
}

// Grant is a refresh-token family: one user's authorization of one client
// for one resource.
type Grant struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id"`
	// ClientAuth is the method the client authenticated with when the
	// grant was made; every refresh must authenticate at least as well.
	ClientAuth string   `json:"client_auth,omitempty"`
	User       User     `json:"user"`
	Resource   string   `json:"resource"`
	Scopes     []string `json:"scopes,omitempty"`
	// RefreshHash is the Hash of the current refresh token.
	RefreshHash string `json:"refresh_hash"`
	// PreviousHash is the refresh token rotated away last; until
	// PreviousUntil (Unix nanoseconds) it yields Successor, the response
	// that rotated it, sealed with a key derived from it.
	PreviousHash  string `json:"previous_hash,omitempty"`
	PreviousUntil int64  `json:"previous_until,omitempty"`
	Successor     []byte `json:"successor,omitempty"`
	// AccessTokenIDs are the grant's access tokens that have not expired.
	AccessTokenIDs []TokenID `json:"access_tokens,omitempty"`
	CreatedAt      int64     `json:"created_at"`
	ExpiresAt      int64     `json:"expires_at"`
	// Revoked marks a grant being revoked (see Grants.Revoke): it
	// refreshes nothing any more.
	Revoked bool `json:"revoked,omitempty"`
	// DPoPJKT is the thumbprint of the DPoP key a public client's refresh
	// tokens are bound to; every refresh must prove it. Empty: unbound.
	DPoPJKT string `json:"dpop_jkt,omitempty"`
	// UpstreamToken is the id of the user's token at the identity
	// provider kept for the grant (see UpstreamTokens), if any.
	UpstreamToken string `json:"upstream_token,omitempty"`

	// stored is the value the grant was read from, which Rotate swaps.
	stored []byte
}

// TokenID identifies an issued access token, to deny it before it expires.
type TokenID struct {
	ID        string `json:"jti"`
	ExpiresAt int64  `json:"exp"`
}

// acceptedAfterExpiry is how long after its exp a verifier, allowing for
// clock skew, may still take an access token.
const acceptedAfterExpiry = time.Minute

// UsableUntil is when the token can no longer be used anywhere, so needs
// no denying: its exp, plus the clock skew verifiers allow.
func (t TokenID) UsableUntil() time.Time {
	return time.Unix(t.ExpiresAt, 0).Add(acceptedAfterExpiry)
}

// Errors of Rotate: ErrGrantRotated when a concurrent refresh rotated the
// grant first, ErrGrantEnded when it expired or was revoked meanwhile.
var (
	ErrGrantRotated = errors.New("state: the grant was rotated meanwhile")
	ErrGrantEnded   = errors.New("state: the grant expired or was revoked")
)

// Create stores a new grant for lifetime, its refresh token valid for
// idle unless used sooner.
func (g *Grants) Create(ctx context.Context, grant *Grant, lifetime, idle time.Duration) error {
	if err := putJSON(ctx, g.store, keyGrant+grant.ID, grant, lifetime); err != nil {
		return err
	}
	return g.store.Put(ctx, keyRefresh+grant.RefreshHash, []byte(grant.ID), min(idle, lifetime))
}

// ByRefreshToken returns the grant that refreshToken belongs to, as its
// current token or one rotated away still looked up. The caller checks
// which one it is, and whether the grant still refreshes.
func (g *Grants) ByRefreshToken(ctx context.Context, refreshToken string) (*Grant, error) {
	id, err := g.store.Get(ctx, KindRefresh.Key(refreshToken))
	if err != nil {
		return nil, err
	}
	raw, err := g.store.Get(ctx, keyGrant+string(id))
	if err != nil {
		return nil, err
	}
	grant := Grant{stored: raw}
	if err := json.Unmarshal(raw, &grant); err != nil {
		return nil, err
	}
	return &grant, nil
}

// Rotate replaces current, as ByRefreshToken read it, with next, whose
// refresh token then stays valid for idle unless used sooner. The new
// token's lookup exists before the grant names it; it is removed again
// when current changed meanwhile or the grant is gone.
//
// When the store fails, the rotation may or may not have happened (the
// store may have written it and lost its answer), so the new token's
// lookup stays, to expire with idle, and the error is neither
// ErrGrantRotated nor ErrGrantEnded: the grant is intact either way.
func (g *Grants) Rotate(ctx context.Context, current, next *Grant, idle time.Duration) error {
	raw, err := json.Marshal(next)
	if err != nil {
		return err
	}
	remaining, live := ttlUntil(current.ExpiresAt)
	if !live { // the grant expired while the tokens were made
		return ErrGrantEnded
	}
	if err := g.store.Put(ctx, keyRefresh+next.RefreshHash, []byte(current.ID), min(idle, remaining)); err != nil {
		return err
	}
	switch err := g.store.Swap(ctx, keyGrant+current.ID, current.stored, raw, remaining); {
	case err == nil:
		return nil
	case errors.Is(err, storage.ErrConflict):
		// A Swap the store's client sent again after losing the answer
		// to the first finds its own write: the rotation happened.
		if stored, err := g.store.Get(ctx, keyGrant+current.ID); err == nil && bytes.Equal(stored, raw) {
			return nil
		}
		_ = g.store.Delete(ctx, keyRefresh+next.RefreshHash)
		return ErrGrantRotated
	case errors.Is(err, storage.ErrNotFound):
		_ = g.store.Delete(ctx, keyRefresh+next.RefreshHash)
		return ErrGrantEnded
	default:
		return fmt.Errorf("rotating the grant: %w", err)
	}
}

// List returns the grants match selects, revoked ones included, skipping
// unreadable records.
func (g *Grants) List(ctx context.Context, match func(*Grant) bool) ([]*Grant, error) {
	var out []*Grant
	err := g.store.List(ctx, keyGrant, func(_ string, v []byte) error {
		var grant Grant
		if json.Unmarshal(v, &grant) == nil && match(&grant) {
			out = append(out, &grant)
		}
		return nil
	})
	return out, err
}

// Revoke revokes the grant id with its refresh tokens and the access
// tokens issued from it, and returns the grant as revoked, or nil if there
// was none. Every revocation of a grant goes through here.
//
// The grant is first marked revoked by a Swap on the value just read, so
// a refresh racing the revocation either rotated first, and the access
// token it issued is in the value marked and denied below, or finds its
// own Swap refused and issues nothing. The access tokens are denied after
// the mark and before the grant is deleted, as is the user's token at the
// identity provider kept for it: if that fails midway, the
// marked grant remains, refreshes nothing, and revoking it again finishes
// the job.
func (g *Grants) Revoke(ctx context.Context, id string) (*Grant, error) {
	key := keyGrant + id
	for range revokeAttempts {
		raw, err := g.store.Get(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var grant Grant
		if json.Unmarshal(raw, &grant) != nil {
			// Unreadable, so it never refreshed anything either.
			return &grant, g.store.Delete(ctx, key)
		}
		if !grant.Revoked {
			grant.Revoked = true
			marked, err := json.Marshal(grant)
			if err != nil {
				return nil, err
			}
			switch err := g.store.Swap(ctx, key, raw, marked, max(time.Until(time.Unix(grant.ExpiresAt, 0)), time.Minute)); {
			case errors.Is(err, storage.ErrConflict):
				continue // a refresh rotated it: mark what it wrote
			case errors.Is(err, storage.ErrNotFound):
				return nil, nil
			case err != nil:
				return nil, err
			}
		}
		for _, t := range grant.AccessTokenIDs {
			if err := g.revocations.DenyAccessToken(ctx, t.ID, t.ExpiresAt); err != nil {
				return &grant, err
			}
		}
		if grant.UpstreamToken != "" {
			if err := g.upstreamTokens.Remove(ctx, grant.UpstreamToken); err != nil {
				return &grant, err
			}
		}
		return &grant, g.store.Delete(ctx, key)
	}
	return nil, errors.New("the grant kept changing while it was being revoked")
}
