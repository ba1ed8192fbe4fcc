package authserver

import (
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// introspection is an RFC 7662 introspection response.
type introspection struct {
	Active    bool   `json:"active"`
	Scope     string `json:"scope,omitempty"`
	ClientID  string `json:"client_id,omitempty"`
	Username  string `json:"username,omitempty"`
	TokenType string `json:"token_type,omitempty"`
	Exp       int64  `json:"exp,omitempty"`
	Iat       int64  `json:"iat,omitempty"`
	Sub       string `json:"sub,omitempty"`
	Aud       string `json:"aud,omitempty"`
	Iss       string `json:"iss,omitempty"`
	JTI       string `json:"jti,omitempty"`
	// Cnf is the key a token is bound to (RFC 9449 section 6.2).
	Cnf *tokens.Confirmation `json:"cnf,omitempty"`
}

// introspectionEndpoint tells resource servers and confidential clients
// about tokens.
type introspectionEndpoint struct {
	issuer string
	auth   *clientAuthenticator
	// resourceServers is Config.IntrospectionCredentials.
	resourceServers map[string]string
	lookup          *tokenLookup
	log             *events
}

// ServeHTTP handles POST /introspect (RFC 7662). The caller must
// authenticate: a resource server with a configured credential may inspect
// any token of this server, a confidential client only its own. Anything
// else, including tokens that are invalid, revoked, expired or another
// client's, is {"active": false} and nothing more (section 2.2).
func (e *introspectionEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params, _, ok := readForm(w, r)
	if !ok {
		return
	}
	owner, anyToken := "", e.resourceServerCaller(r)
	if !anyToken {
		// A caller without any credentials is not authorized: 401, not a
		// 400 for the missing client_id (RFC 7662 section 2.1, 2.3).
		var client *authenticatedClient
		oerr := oauth.NewError(http.StatusUnauthorized, oauth.InvalidClient, "introspection requires client authentication")
		if r.Header.Get("Authorization") != "" || params["client_id"] != "" || params["client_assertion"] != "" {
			client, oerr = e.auth.authenticate(r, params, e.issuer+pathIntrospect)
		}
		// Only a client that proved a secret or a key may introspect: a
		// public client, or one let through without its assertion, could
		// be anyone who knows a client_id.
		if oerr == nil && !client.provedCredential() {
			oerr = oauth.NewError(http.StatusUnauthorized, oauth.InvalidClient, "introspection requires client authentication")
		}
		if oerr != nil {
			oauth.WriteError(w, e.log.logger, e.auth.challenge(r, oerr))
			return
		}
		owner = client.ClientID
	}
	token := params["token"]
	if token == "" {
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "token is required"))
		return
	}
	resp := introspection{}
	if claims, ok := e.lookup.accessToken(r.Context(), token); ok && (anyToken || claims.ClientID == owner) {
		resp = introspection{
			Active: true, Scope: claims.Scope, ClientID: claims.ClientID, Username: claims.Username,
			TokenType: tokenType(claims.Confirmation.Thumbprint()), Cnf: claims.Confirmation, Exp: claims.Expiry, Iat: claims.IssuedAt, Sub: claims.Subject,
			Aud: strings.Join(claims.Audience, " "), Iss: claims.Issuer, JTI: claims.JWTID,
		}
	} else if g, ok := e.lookup.grant(r.Context(), token); ok && (anyToken || g.ClientID == owner) {
		resp = introspection{
			Active: true, Scope: strings.Join(g.Scopes, " "), ClientID: g.ClientID, Username: g.User.Username,
			TokenType: "refresh_token", Exp: g.ExpiresAt, Iat: g.CreatedAt, Sub: g.User.Subject,
			Aud: g.Resource, Iss: e.issuer,
		}
	}
	oauth.WriteJSON(w, http.StatusOK, resp)
}

// resourceServerCaller reports whether the request carries a configured
// resource-server credential (HTTP Basic).
func (e *introspectionEndpoint) resourceServerCaller(r *http.Request) bool {
	id, secret, ok := basicCredentials(r.Header.Get("Authorization"))
	if !ok {
		return false
	}
	want, known := e.resourceServers[id]
	return known && subtle.ConstantTimeCompare([]byte(state.Hash(secret)), []byte(want)) == 1
}
