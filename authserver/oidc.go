package authserver

import (
	"slices"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// oidcScopes are the OpenID Connect scopes the server grants besides the
// resources' own: openid (an ID token), profile and email (claims).
var oidcScopes = []string{"openid", "profile", "email"}

// OIDCScopes returns the OpenID Connect scopes the server grants.
func OIDCScopes() []string { return slices.Clone(oidcScopes) }

// idTokenClaims are the claims of an OpenID Connect ID token.
type idTokenClaims struct {
	Issuer   string `json:"iss"`
	Subject  string `json:"sub"`
	Audience string `json:"aud"`
	Expiry   int64  `json:"exp"`
	IssuedAt int64  `json:"iat"`
	AuthTime int64  `json:"auth_time,omitempty"`
	Nonce    string `json:"nonce,omitempty"`
	profileClaims
}

// profileClaims are the user claims that the profile and email scopes allow.
type profileClaims struct {
	Email             string `json:"email,omitempty"`
	EmailVerified     bool   `json:"email_verified,omitempty"`
	Name              string `json:"name,omitempty"`
	PreferredUsername string `json:"preferred_username,omitempty"`
	Picture           string `json:"picture,omitempty"`
}

// profileFor returns the claims user's scopes allow.
func profileFor(user state.User, scopes []string) profileClaims {
	var p profileClaims
	if slices.Contains(scopes, "email") && user.Email != "" {
		p.Email, p.EmailVerified = user.Email, true // only verified addresses are kept
	}
	if slices.Contains(scopes, "profile") {
		p.Name, p.PreferredUsername, p.Picture = user.Name, user.Username, user.Picture
	}
	return p
}

// idToken signs an ID token for client when openid was granted; its typ
// is JWT, so the gate never takes it for an access token.
func (m *minter) idToken(clientID string, user state.User, scopes []string, nonce string) (string, error) {
	if !slices.Contains(scopes, "openid") {
		return "", nil
	}
	now := time.Now()
	return m.ring.Sign("JWT", idTokenClaims{
		Issuer: m.issuer, Subject: user.Subject, Audience: clientID,
		IssuedAt: now.Unix(), Expiry: now.Add(m.accessLifetime).Unix(),
		AuthTime: user.AuthTime, Nonce: nonce, profileClaims: profileFor(user, scopes),
	})
}
