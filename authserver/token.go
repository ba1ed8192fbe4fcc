package authserver

import (
	"net/http"
	"slices"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
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

// serveToken handles POST /token.
func (s *Site) serveToken(w http.ResponseWriter, r *http.Request) {
	params, resources, ok := readForm(w, r)
	if !ok {
		return
	}
	client, oerr := s.authenticateClient(r, params)
	if oerr != nil {
		oauth.WriteError(w, s.AS.Logger, s.clientError(r, oerr))
		return
	}
	if grantType := params["grant_type"]; grantType != "" && !slices.Contains(client.GrantTypes, grantType) &&
		slices.Contains([]string{"authorization_code", "refresh_token"}, grantType) {
		oauth.WriteError(w, s.AS.Logger, oauth.NewError(http.StatusBadRequest, oauth.UnauthorizedClient, "the client did not register this grant type"))
		return
	}
	var resp *tokenResponse
	switch params["grant_type"] {
	case "authorization_code":
		resp, oerr = s.exchangeCode(r.Context(), client, params, resources)
	case "refresh_token":
		resp, oerr = s.refresh(r.Context(), client, params, resources)
	case "":
		oerr = oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "grant_type is required")
	default:
		oerr = oauth.NewError(http.StatusBadRequest, oauth.UnsupportedGrantType, "supported grant types are authorization_code and refresh_token")
	}
	if oerr != nil {
		s.logDebug("token request refused", zap.String("client_id", client.ClientID), zap.String("error", string(oerr.Code)), zap.String("reason", oerr.Description))
		oauth.WriteError(w, s.AS.Logger, oerr)
		return
	}
	if err := s.AS.State.Clients.MarkUsed(r.Context(), client.Client); err != nil {
		s.AS.Logger.Warn("marking client used failed", zap.Error(err))
	}
	oauth.WriteJSON(w, http.StatusOK, resp)
}
