package state

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Lifetimes of a code and of its memory once redeemed.
const (
	codeLifetime = 60 * time.Second
	// redemptionMemory is how long a redeemed code is remembered, to
	// detect and punish its replay (OAuth 2.1 section 4.1.3).
	redemptionMemory = 10 * time.Minute
)

// Codes stores authorization codes, by their hash, and what each
// redemption issued.
type Codes struct {
	store storage.Store
}

// Code is what an authorization code stands for.
type Code struct {
	Request Request `json:"request"`
	User    User    `json:"user"`
	// IssuedAt (Unix nanoseconds) tells a code issued before a revocation
	// of its user or client from one issued after (see Revocations).
	IssuedAt int64 `json:"issued_at"`
	// UpstreamToken is the id of the user's token at the identity
	// provider kept from the login (see UpstreamTokens), if any.
	UpstreamToken string `json:"upstream_token,omitempty"`
}

// Redemption remembers what a redeemed code issued, to revoke it on replay.
type Redemption struct {
	ClientID      string  `json:"client_id"`
	CodeChallenge string  `json:"code_challenge"`
	GrantID       string  `json:"grant_id,omitempty"`
	AccessToken   TokenID `json:"access_token"`
}

// ErrCodeRedeemed is what Find returns for a code that was redeemed
// already and whose Redemption is still remembered.
var ErrCodeRedeemed = errors.New("state: the authorization code was already redeemed")

// Issue stores a new code for its lifetime.
func (c *Codes) Issue(ctx context.Context, code string, rec *Code) error {
	return putJSON(ctx, c.store, KindCode.Key(code), rec, codeLifetime)
}

// Find returns the record of a code that can still be redeemed. For a code
// already redeemed it returns ErrCodeRedeemed with the Redemption, so that
// the caller can tell a replay and revoke what the code issued; for a code
// it does not know (expired, never issued, forgotten) an error wrapping
// storage.ErrNotFound.
func (c *Codes) Find(ctx context.Context, code string) (*Code, *Redemption, error) {
	var rec Code
	err := getJSON(ctx, c.store, KindCode.Key(code), &rec)
	if err == nil {
		return &rec, nil, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return nil, nil, err
	}
	var used Redemption
	if getJSON(ctx, c.store, redemptionKey(code), &used) != nil {
		return nil, nil, err
	}
	return nil, &used, ErrCodeRedeemed
}

// Redeem uses up a code found by Find. Among concurrent redemptions of a
// code exactly one succeeds; the others get an error.
func (c *Codes) Redeem(ctx context.Context, code string) error {
	_, err := c.store.Take(ctx, KindCode.Key(code))
	return err
}

// RememberRedemption keeps what the redemption of code issued, for Find to
// return on its replay.
func (c *Codes) RememberRedemption(ctx context.Context, code string, r *Redemption) error {
	return putJSON(ctx, c.store, redemptionKey(code), r, redemptionMemory)
}

// redemptionKey is where the Redemption of code is remembered.
func redemptionKey(code string) string { return keyUsedCode + Hash(code) }
