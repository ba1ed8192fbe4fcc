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

// clientCredentialsGrant issues tokens to configured machine clients.
type clientCredentialsGrant struct {
	machines  map[string]*machineClient
	resources *resourceSet
	policy    *policy
	mint      *minter
	log       *events
}

// grant handles grant_type=client_credentials (OAuth 2.1 section 4.2,
// RFC 6749 section 4.4) for a configured client that authenticated. The
// access token's sub and client_id are the client's id, its aud the
// resource (RFC 8707: the indicated one, else the client's first, else the
// site's default), and its scopes those requested that the client may
// have (all of them when none are requested). No refresh token is issued
// (RFC 6749 section 4.4.3): the client just asks again.
func (h *clientCredentialsGrant) grant(ctx context.Context, client *authenticatedClient, params map[string]string, resources []string) (*tokenResponse, *oauth.Error) {
	m := h.machines[client.ClientID]
	if m == nil || !client.Configured {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.UnauthorizedClient, "only configured clients may use client_credentials")
	}
	res, oerr := h.resources.resolve(resources, m.defaultResource())
	if oerr != nil {
		return nil, oerr
	}
	if !m.mayUse(res) {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidTarget, "the client may not get tokens for this resource")
	}
	offered := m.offered(res)
	asked := askedScopes(params["scope"])
	scopes := offered
	if len(asked) > 0 {
		// Scopes the client may not have are dropped, as at /authorize;
		// a request for none it may have is refused.
		scopes = slices.DeleteFunc(slices.Clone(offered), func(sc string) bool { return !slices.Contains(asked, sc) })
	}
	scopes, allowed := h.policy.admitClient(client.ClientID, scopes)
	switch {
	case !allowed:
		h.log.record(ctx, "client credentials refused: the allow rules do not name the client", zap.String("client_id", client.ClientID))
		return nil, oauth.NewError(http.StatusBadRequest, oauth.UnauthorizedClient, "the client is not allowed to use this server")
	case len(asked) > 0 && len(scopes) == 0:
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidScope, "the client may not have any of the requested scopes")
	}
	mint := *h.mint
	if m.lifetime > 0 {
		mint.accessLifetime = m.lifetime
	}
	resp, _, err := mint.accessToken(ctx, client.Client, state.User{Subject: client.ClientID}, res, scopes, "")
	if err != nil {
		return nil, oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the server could not issue tokens").
			WithCause(fmt.Errorf("issuing tokens: %w", err))
	}
	h.log.tokensIssued("client_credentials", client.ClientID, client.ClientID)
	return resp, nil
}
