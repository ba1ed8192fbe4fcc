package authserver

import (
	"context"
	"net/http"
	"slices"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// readTokenForm reads the form of the revocation and introspection
// endpoints and authenticates the client; it answers errors itself.
func (s *Site) readTokenForm(w http.ResponseWriter, r *http.Request) (*authenticatedClient, map[string]string, bool) {
	params, _, ok := readForm(w, r)
	if !ok {
		return nil, nil, false
	}
	client, oerr := s.authenticateClient(r, params)
	if oerr != nil {
		oauth.WriteError(w, s.AS.Logger, s.clientError(r, oerr))
		return nil, nil, false
	}
	if params["token"] == "" {
		oauth.WriteError(w, s.AS.Logger, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "token is required"))
		return nil, nil, false
	}
	return client, params, true
}

// serveRevoke handles POST /revoke (RFC 7009). Revoking a refresh token
// ends its grant and the access tokens issued from it; revoking an access
// token puts it on the deny list the gate checks. Tokens that are unknown,
// already dead or another client's are answered 200 all the same, so the
// endpoint reveals nothing (section 2.2).
func (s *Site) serveRevoke(w http.ResponseWriter, r *http.Request) {
	client, params, ok := s.readTokenForm(w, r)
	if !ok {
		return
	}
	token := params["token"]
	// token_type_hint only orders the lookups (section 2.1).
	lookups := []func(context.Context, *authenticatedClient, string) bool{s.revokeRefreshToken, s.revokeAccessToken}
	if params["token_type_hint"] == "access_token" {
		slices.Reverse(lookups)
	}
	for _, revoke := range lookups {
		if revoke(r.Context(), client, token) {
			break
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// revokeRefreshToken reports whether token is a refresh token of client's,
// revoking its grant if so. Like a refresh, revoking needs the client
// authentication the grant was made with: a stolen refresh token alone
// cannot end the grant of a client that signs its requests.
func (s *Site) revokeRefreshToken(ctx context.Context, client *authenticatedClient, token string) bool {
	g, ok := s.AS.grantOf(ctx, token)
	if !ok || g.ClientID != client.ClientID || authStrength(client.Method) < authStrength(g.ClientAuth) {
		return false
	}
	if _, err := s.AS.State.Grants.Revoke(ctx, g.ID); err != nil {
		s.AS.Logger.Error("revoking a grant", zap.Error(err))
	}
	s.audit(ctx, "grant revoked", zap.String("client_id", client.ClientID), zap.String("sub", g.User.Subject))
	return true
}

// revokeAccessToken reports whether token is an access token issued to
// client by this server, denying it if so.
func (s *Site) revokeAccessToken(ctx context.Context, client *authenticatedClient, token string) bool {
	claims, ok := s.accessTokenClaims(ctx, token)
	if !ok || claims.ClientID != client.ClientID {
		return false
	}
	if err := s.AS.State.Revocations.DenyAccessToken(ctx, claims.JWTID, claims.Expiry); err != nil {
		s.AS.Logger.Error("denying access token", zap.Error(err))
	}
	s.audit(ctx, "access token revoked", zap.String("client_id", client.ClientID), zap.String("sub", claims.Subject))
	return true
}
