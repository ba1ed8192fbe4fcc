package gate

import (
	"fmt"
	"net/url"
	"strings"
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

// NewIdentityTokens returns the identity tokens that the authorization
// server issuer, with the key ring and resources of its access tokens, makes
// for the backend named audience. Identity tokens are signed with the keys,
// and carry the iss, of the site's access and ID tokens, so the audience
// must not name the issuer or a resource of the site in any spelling: a
// verifier that checks only iss and aud would take such a token for an
// access token.
func NewIdentityTokens(ring *tokens.KeyRing, issuer string, resources Resources, audience string) (*IdentityTokens, error) {
	own := []string{issuer}
	for _, r := range resources {
		own = append(own, r.URL)
	}
	for _, u := range own {
		if sameResourceURL(audience, u) {
			return nil, fmt.Errorf("%q names %s of this site, and identity tokens have the issuer and keys of its access tokens: name the backend instead, such as urn:example:todo-backend", audience, u)
		}
	}
	return &IdentityTokens{Ring: ring, Issuer: issuer, Audience: audience}, nil
}

// sameResourceURL reports whether a and b may name the same URL to some
// verifier: scheme, default port, letter case, escaping, a trailing slash,
// query and fragment are ignored.
func sameResourceURL(a, b string) bool {
	key := func(raw string) string {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || u.Host == "" {
			return strings.ToLower(strings.TrimRight(strings.TrimSpace(raw), "/"))
		}
		host, port := u.Hostname(), u.Port()
		if port == "443" || port == "80" {
			port = ""
		}
		return strings.ToLower(host + ":" + port + strings.TrimRight(u.Path, "/"))
	}
	return key(a) == key(b)
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
