package authserver

import (
	"context"
	"fmt"
	"net/http"
	"slices"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// revocationEndpoint ends grants and access tokens at their client's
// request.
type revocationEndpoint struct {
	issuer      string
	auth        *clientAuthenticator
	lookup      *tokenLookup
	grants      *state.Grants
	revocations *state.Revocations
	log         *events
}

// readTokenForm reads the form of the revocation endpoint and authenticates the client; it answers errors itself.
func (e *revocationEndpoint) readTokenForm(w http.ResponseWriter, r *http.Request) (*authenticatedClient, map[string]string, bool) {
	params, _, ok := readForm(w, r)
	if !ok {
		return nil, nil, false
	}
	client, oerr := e.auth.authenticate(r, params, e.issuer+pathRevoke)
	if oerr != nil {
		oauth.WriteError(w, e.log.logger, e.auth.challenge(r, oerr))
		return nil, nil, false
	}
	if params["token"] == "" {
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "token is required"))
		return nil, nil, false
	}
	return client, params, true
}

// ServeHTTP handles POST /revoke (RFC 7009). Revoking a refresh token
// ends its grant and the access tokens issued from it; revoking an access
// token puts it on the deny list the gate checks. Tokens that are unknown,
// already dead or another client's are answered 200 all the same, so the
// endpoint reveals nothing (section 2.2).
func (e *revocationEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	client, params, ok := e.readTokenForm(w, r)
	if !ok {
		return
	}
	token := params["token"]
	// token_type_hint only orders the lookups (section 2.1).
	lookups := []func(context.Context, *authenticatedClient, string) (bool, error){e.revokeRefreshToken, e.revokeAccessToken}
	if params["token_type_hint"] == "access_token" {
		slices.Reverse(lookups)
	}
	for _, revoke := range lookups {
		found, err := revoke(r.Context(), client, token)
		if err != nil {
			// Section 2.2.1: the client keeps the token and retries.
			oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the token could not be revoked").
				WithCause(err))
			return
		}
		if found {
			break
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// revokeRefreshToken reports whether token is a refresh token of client's,
// revoking its grant if so, or why the grant could not be revoked. Like a
// refresh, revoking needs the client authentication the grant was made
// with: a stolen refresh token alone cannot end the grant of a client that
// signs its requests.
func (e *revocationEndpoint) revokeRefreshToken(ctx context.Context, client *authenticatedClient, token string) (bool, error) {
	g, ok := e.lookup.grant(ctx, token)
	if !ok || g.ClientID != client.ClientID || authStrength(client.Method) < authStrength(g.ClientAuth) {
		return false, nil
	}
	if _, err := e.grants.Revoke(ctx, g.ID); err != nil {
		return true, fmt.Errorf("revoking a grant: %w", err)
	}
	e.log.record(ctx, "grant revoked", zap.String("client_id", client.ClientID), zap.String("sub", g.User.Subject))
	return true, nil
}

// revokeAccessToken reports whether token is an access token issued to
// client by this server, denying it if so, or why it could not be denied.
func (e *revocationEndpoint) revokeAccessToken(ctx context.Context, client *authenticatedClient, token string) (bool, error) {
	claims, ok := e.lookup.accessToken(ctx, token)
	if !ok || claims.ClientID != client.ClientID {
		return false, nil
	}
	if err := e.revocations.DenyAccessToken(ctx, claims.JWTID, claims.Expiry); err != nil {
		return true, fmt.Errorf("denying an access token: %w", err)
	}
	e.log.record(ctx, "access token revoked", zap.String("client_id", client.ClientID), zap.String("sub", claims.Subject))
	return true, nil
}
