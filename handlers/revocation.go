package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// revokeGrantAttempts bounds how often revokeGrant reads a grant again
// after a refresh rotated it under its feet; each retry means a refresh
// succeeded, and refreshes of one grant cannot keep up that pace.
const revokeGrantAttempts = 10

// revokeGrant revokes the grant id with its refresh tokens and the access
// tokens issued from it, and returns the grant as revoked, or nil if there
// was none. Every revocation of a grant goes through here.
//
// The grant is first marked revoked by a Swap on the value just read, so
// a refresh racing the revocation either rotated first, and the access
// token it issued is in the value marked and denied below, or finds its
// own Swap refused and issues nothing. The access tokens are denied after
// the mark and before the grant is deleted: if that fails midway, the
// marked grant remains, refreshes nothing, and revoking it again finishes
// the job.
func (a *AuthServer) revokeGrant(ctx context.Context, id string) (*grant, error) {
	key := keyGrant + id
	for range revokeGrantAttempts {
		raw, err := a.Store.Get(ctx, key)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		var g grant
		if json.Unmarshal(raw, &g) != nil {
			// Unreadable, so it never refreshed anything either.
			return &g, a.Store.Delete(ctx, key)
		}
		if !g.Revoked {
			g.Revoked = true
			marked, err := json.Marshal(g)
			if err != nil {
				return nil, err
			}
			switch err := a.Store.Swap(ctx, key, raw, marked, max(time.Until(time.Unix(g.ExpiresAt, 0)), time.Minute)); {
			case errors.Is(err, storage.ErrConflict):
				continue // a refresh rotated it: mark what it wrote
			case errors.Is(err, storage.ErrNotFound):
				return nil, nil
			case err != nil:
				return nil, err
			}
		}
		for _, t := range g.AccessTokenIDs {
			if err := a.denyAccessToken(ctx, t.ID, t.ExpiresAt); err != nil {
				return &g, err
			}
		}
		return &g, a.Store.Delete(ctx, key)
	}
	return nil, errors.New("the grant kept changing while it was being revoked")
}

// Revoking all of a user's or a client's tokens lists them; a code
// redeemed during that listing could write its grant and token just after
// the listing passed them, and a code issued before the revocation could be
// redeemed after it. So revocation first writes a mark with its time for
// the user or client (revokeMark), and a redemption, once it stored all it
// issues, takes it back if its user or client was revoked at or after its
// code was issued (revokedSince). Either the redemption's writes came
// before the mark, and the listing after it finds them, or its check sees
// the mark. Refreshes need no mark: they rotate grants the listing finds,
// and revokeGrant settles those races. Across instances the times come
// from different clocks: a code issued within their skew before the
// revocation may survive it.

// revocationMarkLifetime is how long a mark is kept: far longer than a
// code lives and its redemption takes, which is all the mark must outlive.
const revocationMarkLifetime = time.Hour

func revocationMarkOfUser(sub string) string        { return keyRevokedUser + hashKey(sub) }
func revocationMarkOfClient(clientID string) string { return keyRevokedClient + hashKey(clientID) }

// revokeMark records under key that a revocation starts now.
func (a *AuthServer) revokeMark(ctx context.Context, key string) error {
	return a.Store.Put(ctx, key, []byte(strconv.FormatInt(time.Now().UnixNano(), 10)), revocationMarkLifetime)
}

// revokedSince reports whether the user or the client was revoked at or
// after issued (Unix nanoseconds).
func (a *AuthServer) revokedSince(ctx context.Context, sub, clientID string, issued int64) (bool, error) {
	for _, key := range []string{revocationMarkOfUser(sub), revocationMarkOfClient(clientID)} {
		mark, err := a.Store.Get(ctx, key)
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
