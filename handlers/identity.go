package handlers

import (
	"sync"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// IdentityTokenType is the JOSE typ of identity tokens, so that neither the
// gate nor a backend can take one for an access token.
const IdentityTokenType = "identity+jwt"

// identityLifetime bounds an identity token's life; it never outlives the
// access token it was made from.
const identityLifetime = 5 * time.Minute

// IdentityTokens signs short-lived identity tokens for the backend: JWTs
// whose audience is the backend, so it can trust who is calling without
// ever seeing the client's access token. Tokens are reused per access
// token until shortly before they expire.
type IdentityTokens struct {
	Ring     *tokens.KeyRing
	Issuer   string
	Audience string

	mu    sync.Mutex
	cache map[string]cachedIdentity
}

type cachedIdentity struct {
	token string
	exp   time.Time
}

type identityClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
	ClientID string `json:"client_id"`
	Scope    string `json:"scope,omitempty"`
	Email    string `json:"email,omitempty"`
	Username string `json:"preferred_username,omitempty"`
}

// For returns the identity token for the holder of an access token.
func (it *IdentityTokens) For(at *tokens.AccessClaims) (string, error) {
	now := time.Now()
	it.mu.Lock()
	c, ok := it.cache[at.JWTID]
	it.mu.Unlock()
	if ok && now.Add(30*time.Second).Before(c.exp) {
		return c.token, nil
	}
	exp := now.Add(identityLifetime)
	if atExp := time.Unix(at.Expiry, 0); atExp.Before(exp) {
		exp = atExp
	}
	tok, err := it.Ring.Sign(IdentityTokenType, identityClaims{
		Issuer: it.Issuer, Subject: at.Subject, Audience: it.Audience, IssuedAt: now.Unix(), Expiry: exp.Unix(),
		ClientID: at.ClientID, Scope: at.Scope, Email: at.Email, Username: at.Username,
	})
	if err != nil {
		return "", err
	}
	it.mu.Lock()
	if it.cache == nil || len(it.cache) > 10000 {
		it.cache = make(map[string]cachedIdentity)
	}
	it.cache[at.JWTID] = cachedIdentity{token: tok, exp: exp}
	it.mu.Unlock()
	return tok, nil
}
