package authserver

import (
	"net/http"
	"slices"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// oidcScopes are the OpenID Connect scopes the server grants besides the
// resources' own: openid (an ID token), profile and email (claims).
var oidcScopes = []string{"openid", "profile", "email"}

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
func (s *Site) idToken(clientID string, user state.User, scopes []string, nonce string) (string, error) {
	if !slices.Contains(scopes, "openid") {
		return "", nil
	}
	now := time.Now()
	return s.Ring.Sign("JWT", idTokenClaims{
		Issuer: s.Issuer, Subject: user.Subject, Audience: clientID,
		IssuedAt: now.Unix(), Expiry: now.Add(s.AS.AccessTokenLifetime).Unix(),
		AuthTime: user.AuthTime, Nonce: nonce, profileClaims: profileFor(user, scopes),
	})
}

// serveUserinfo handles GET and POST /userinfo (OpenID Connect Core 5.3):
// with a valid access token, the user's sub and the claims its scopes allow.
func (s *Site) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		oauth.WriteError(w, s.AS.Logger, oauth.NewError(http.StatusMethodNotAllowed, oauth.InvalidRequest, "userinfo accepts GET and POST"))
		return
	}
	token, ok := gate.BearerToken(r.Header.Get("Authorization"))
	if !ok || len(r.Header.Values("Authorization")) != 1 {
		// No credentials: a challenge without an error code (RFC 6750 section 3.1).
		challenge := oauth.BearerChallenge{Realm: s.Realm}
		oauth.WriteError(w, s.AS.Logger, oauth.NewError(http.StatusUnauthorized, oauth.InvalidToken, "a bearer access token is required").
			WithChallenge(challenge.String()))
		return
	}
	claims, ok := s.accessTokenClaims(r.Context(), token)
	var user state.User
	if ok {
		if saved, err := s.AS.State.Users.Profile(r.Context(), claims.Subject); err == nil {
			user = *saved
		} else {
			user = state.User{Subject: claims.Subject, Email: claims.Email, Username: claims.Username}
		}
	}
	if !ok {
		const description = "the access token is invalid, expired or revoked"
		challenge := oauth.BearerChallenge{Realm: s.Realm, Code: oauth.InvalidToken, Description: description}
		oauth.WriteError(w, s.AS.Logger, oauth.NewError(http.StatusUnauthorized, oauth.InvalidToken, description).WithChallenge(challenge.String()))
		return
	}
	// UserInfo is an OpenID Connect endpoint: the token must carry openid
	// (OpenID Connect Core 5.3.1).
	if !slices.Contains(claims.Scopes(), "openid") {
		challenge := oauth.BearerChallenge{Realm: s.Realm, Code: oauth.InsufficientScope, Scopes: []string{"openid"}}
		oauth.WriteError(w, s.AS.Logger, oauth.NewError(http.StatusForbidden, oauth.InsufficientScope, "the access token was not granted the openid scope").
			WithChallenge(challenge.String()))
		return
	}
	oauth.WriteJSON(w, http.StatusOK, struct {
		Subject string `json:"sub"`
		profileClaims
	}{claims.Subject, profileFor(user, claims.Scopes())})
}
