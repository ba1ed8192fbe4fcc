package authserver

import (
	"net/http"
	"slices"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// userinfoEndpoint tells the holder of an access token about its user.
type userinfoEndpoint struct {
	// realm is the realm of its bearer challenges.
	realm  string
	lookup *tokenLookup
	users  *state.Users
	log    *events
}

// ServeHTTP handles GET and POST /userinfo (OpenID Connect Core 5.3):
// with a valid access token, the user's sub and the claims its scopes allow.
func (e *userinfoEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusMethodNotAllowed, oauth.InvalidRequest, "userinfo accepts GET and POST"))
		return
	}
	token, ok := gate.BearerToken(r.Header.Get("Authorization"))
	if !ok || len(r.Header.Values("Authorization")) != 1 {
		// No credentials: a challenge without an error code (RFC 6750 section 3.1).
		challenge := oauth.BearerChallenge{Realm: e.realm}
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusUnauthorized, oauth.InvalidToken, "a bearer access token is required").
			WithChallenge(challenge.String()))
		return
	}
	claims, ok := e.lookup.accessToken(r.Context(), token)
	var user state.User
	if ok {
		if saved, err := e.users.Profile(r.Context(), claims.Subject); err == nil {
			user = *saved
		} else {
			user = state.User{Subject: claims.Subject, Email: claims.Email, Username: claims.Username}
		}
	}
	if !ok {
		const description = "the access token is invalid, expired or revoked"
		challenge := oauth.BearerChallenge{Realm: e.realm, Code: oauth.InvalidToken, Description: description}
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusUnauthorized, oauth.InvalidToken, description).WithChallenge(challenge.String()))
		return
	}
	// UserInfo is an OpenID Connect endpoint: the token must carry openid
	// (OpenID Connect Core 5.3.1).
	if !slices.Contains(claims.Scopes(), "openid") {
		challenge := oauth.BearerChallenge{Realm: e.realm, Code: oauth.InsufficientScope, Scopes: []string{"openid"}}
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusForbidden, oauth.InsufficientScope, "the access token was not granted the openid scope").
			WithChallenge(challenge.String()))
		return
	}
	oauth.WriteJSON(w, http.StatusOK, struct {
		Subject string `json:"sub"`
		profileClaims
	}{claims.Subject, profileFor(user, claims.Scopes())})
}
