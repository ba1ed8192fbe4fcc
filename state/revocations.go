package state

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// DenyAccessToken makes the gate refuse an access token until it expires.
func (d *Revocations) DenyAccessToken(ctx context.Context, jti string, expiresAt int64) error {
	return d.deny(ctx, jti, TokenID{ID: jti, ExpiresAt: expiresAt}.UsableUntil().Unix())
}

// DeniedInStore reports whether the store records the access token jti
// as revoked, whatever this process has heard of yet.
func (d *Revocations) DeniedInStore(ctx context.Context, jti string) bool {
	_, err := d.store.Get(ctx, keyDenied+jti)
	return err == nil
}

// CarryOverDenials copies the access tokens that legacy, a store from
// before each site had a key space of its own, lists as revoked into site,
// for lifetime (the longest an access token issued then may still live).
func CarryOverDenials(ctx context.Context, legacy, site storage.Store, lifetime time.Duration) error {
	return legacy.List(ctx, keyDenied, func(key string, _ []byte) error {
		if err := site.Create(ctx, key, nil, lifetime+time.Minute); err != nil && !errors.Is(err, storage.ErrConflict) {
			return err
		}
		return nil
	})
}

// IndexAccessToken records an access token under its user and its client
// until it expires, so that revoking either reaches it.
func (d *Revocations) IndexAccessToken(ctx context.Context, sub, clientID string, id TokenID) error {
	raw, err := json.Marshal(id)
	if err != nil {
		return err
	}
	ttl, live := ttlUntil(id.UsableUntil().Unix())
	if !live {
		return nil // an unusable token needs no revoking
	}
	for _, key := range []string{tokenOfUserPrefix(sub), tokenOfClientPrefix(clientID)} {
		if err := d.store.Put(ctx, key+id.ID, raw, ttl); err != nil {
			return err
		}
	}
	return nil
}

// UnindexAccessToken removes an access token from the indexes of its user
// and client.
func (d *Revocations) UnindexAccessToken(ctx context.Context, sub, clientID, jti string) {
	for _, key := range []string{tokenOfUserPrefix(sub), tokenOfClientPrefix(clientID)} {
		_ = d.store.Delete(ctx, key+jti)
	}
}

// denyIndexed denies the access tokens indexed under prefix and removes
// them from the index; it returns how many of them counted names none of.
func (d *Revocations) denyIndexed(ctx context.Context, prefix string, counted map[string]bool) (int, error) {
	indexed := map[string]TokenID{}
	err := d.store.List(ctx, prefix, func(key string, v []byte) error {
		var t TokenID
		if json.Unmarshal(v, &t) == nil {
			indexed[key] = t
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	alone := 0
	for key, t := range indexed {
		if err := d.DenyAccessToken(ctx, t.ID, t.ExpiresAt); err != nil {
			return alone, err
		}
		// Denied for good: a second revocation need not count it again.
		if err := d.store.Delete(ctx, key); err != nil {
			return alone, err
		}
		if !counted[t.ID] {
			alone++
		}
	}
	return alone, nil
}

// tokenOfUserPrefix and tokenOfClientPrefix are the index prefixes of a
// user's and a client's access tokens. The ids are hashed: they may hold
// any character, and no id may be a prefix of another's entries.
func tokenOfUserPrefix(sub string) string        { return keyTokenOfUser + Hash(sub) + "/" }
func tokenOfClientPrefix(clientID string) string { return keyTokenOfClient + Hash(clientID) + "/" }

// Revoking all of a user's or a client's tokens lists them; a code
// redeemed during that listing could write its grant and token just after
// the listing passed them, and a code issued before the revocation could be
// redeemed after it. So revocation first writes a mark with its time for
// the user or client (mark), and a redemption, once it stored all it
// issues, takes it back if its user or client was revoked at or after its
// code was issued (RevokedSince). Either the redemption's writes came
// before the mark, and the listing after it finds them, or its check sees
// the mark. Refreshes need no mark: they rotate grants the listing finds,
// and Grants.Revoke settles those races. Across instances the times come
// from different clocks: a code issued within their skew before the
// revocation may survive it.

// RevocationMarkLifetime is how long a mark is kept: far longer than a
// code lives and its redemption takes, which is all the mark must outlive.
// Any other grant checked with RevokedSince must be refused once it was
// issued longer ago than this.
const RevocationMarkLifetime = time.Hour

func revocationMarkOfUser(sub string) string        { return keyRevokedUser + Hash(sub) }
func revocationMarkOfClient(clientID string) string { return keyRevokedClient + Hash(clientID) }

// mark records under key that a revocation starts now.
func (d *Revocations) mark(ctx context.Context, key string) error {
	return d.store.Put(ctx, key, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), RevocationMarkLifetime)
}

// RevokedSince reports whether the user or the client was revoked at or
// after issued (Unix nanoseconds).
func (d *Revocations) RevokedSince(ctx context.Context, sub, clientID string, issued int64) (bool, error) {
	for _, key := range []string{revocationMarkOfUser(sub), revocationMarkOfClient(clientID)} {
		mark, err := d.store.Get(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			continue
		}
		if err != nil {
			return false, err
		}
		if at, err := strconv.ParseInt(string(mark), 10, 64); err != nil || at >= issued {
			return true, nil
		}
	}
	return false, nil
}
