package authserver

import (
	"net/http"
	"slices"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// tokenResponse is a successful token response (OAuth 2.1 section 3.2.3).
type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int64  `json:"expires_in"`
	Scope        string `json:"scope"`
	RefreshToken string `json:"refresh_token,omitempty"`
	IDToken      string `json:"id_token,omitempty"`
}

// tokenEndpoint authenticates the client and hands the request to the
// handler of its grant type. A request with a DPoP proof gets tokens
// bound to the proof's key, whatever its grant.
type tokenEndpoint struct {
	issuer  string
	auth    *clientAuthenticator
	proofs  *tokenProofs
	grants  map[string]grantHandler
	clients *state.Clients
	log     *events
}

// ServeHTTP handles POST /token (OAuth 2.1 section 3.2): the grant type's
// handler answers, once the client has authenticated and registered it.
func (e *tokenEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	params, resources, ok := readForm(w, r)
	if !ok {
		return
	}
	// The proof first: a client told to use a nonce sends the request
	// again, and its client assertion must not be used up by then.
	ctx, oerr := e.proofs.check(w, r)
	if oerr != nil {
		oauth.WriteError(w, e.log.logger, oerr)
		return
	}
	client, oerr := e.auth.authenticate(r, params, e.issuer+pathToken)
	if oerr != nil {
		oauth.WriteError(w, e.log.logger, e.auth.challenge(r, oerr))
		return
	}
	grantType := params["grant_type"]
	handler, supported := e.grants[grantType]
	if supported && !slices.Contains(client.GrantTypes, grantType) {
		oauth.WriteError(w, e.log.logger, oauth.NewError(http.StatusBadRequest, oauth.UnauthorizedClient, "the client did not register this grant type"))
		return
	}
	var resp *tokenResponse
	switch {
	case supported:
		resp, oerr = handler.grant(ctx, client, params, resources)
	case grantType == "":
		oerr = oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "grant_type is required")
	default:
		oerr = oauth.NewError(http.StatusBadRequest, oauth.UnsupportedGrantType, "the server does not support this grant type")
	}
	if oerr != nil {
		e.log.debug("token request refused", zap.String("client_id", client.ClientID), zap.String("error", string(oerr.Code)), zap.String("reason", oerr.Description))
		oauth.WriteError(w, e.log.logger, oerr)
		return
	}
	if err := e.clients.MarkUsed(r.Context(), client.Client); err != nil {
		e.log.logger.Warn("marking client used failed", zap.Error(err))
	}
	oauth.WriteJSON(w, http.StatusOK, resp)
}
