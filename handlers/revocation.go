package handlers

import (
	"context"
	"encoding/json"
	"errors"
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

// Revoking all of a user's or a client's grants and tokens lists them; an
// authorization code redeemed during that listing could write its grant
// and token just after the listing passed them. So revocation first
// writes a fresh mark for the user or client (revokeMark), and redeeming a
// code reads the marks of its user and client before it issues anything
// and again after it stored everything (revocationMarks): if they changed,
// the redemption takes back what it issued. Either the redemption's writes
// came before the mark, and the listing after it finds them, or its second
// read sees the mark. Refreshes need no mark: they rotate grants the
// listing finds, and revokeGrant settles those races.

// revocationMarkLifetime is how long a mark is kept: far longer than a
// code redemption can take, which is all the mark must outlive.
const revocationMarkLifetime = time.Hour

func revocationMarkOfUser(sub string) string        { return keyRevokedUser + hashKey(sub) }
func revocationMarkOfClient(clientID string) string { return keyRevokedClient + hashKey(clientID) }

// revokeMark writes a fresh revocation mark under key.
func (a *AuthServer) revokeMark(ctx context.Context, key string) error {
	return a.Store.Put(ctx, key, []byte(randomToken()), revocationMarkLifetime)
}

// revocationMarks returns the current revocation marks of a user and a
// client, to compare before and after an issuance.
func (a *AuthServer) revocationMarks(ctx context.Context, sub, clientID string) (string, error) {
	var marks string
	for _, key := range []string{revocationMarkOfUser(sub), revocationMarkOfClient(clientID)} {
		mark, err := a.Store.Get(ctx, key)
		if err != nil && !errors.Is(err, storage.ErrNotFound) {
			return "", err
		}
		marks += string(mark) + "\x00"
	}
	return marks, nil
}
