package authserver

import (
	"context"
	"fmt"
	"mime"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
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

// readForm reads the POSTed form of the token, revocation and
// introspection endpoints, answering malformed requests itself. Only
// resource may repeat (RFC 8707). Parameters in the URL are refused: they
// would be read by parsers that merge query and body, and credentials must
// not travel there (OAuth 2.1 section 2.4.1).
func readForm(w http.ResponseWriter, r *http.Request) (map[string]string, []string, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		oauth.WriteError(w, nil, oauth.NewError(http.StatusMethodNotAllowed, oauth.InvalidRequest, "this endpoint only accepts POST"))
		return nil, nil, false
	}
	if r.URL.RawQuery != "" {
		oauth.WriteError(w, nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "parameters must be sent in the body, not the URL"))
		return nil, nil, false
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		oauth.WriteError(w, nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "the body must be application/x-www-form-urlencoded"))
		return nil, nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	if err := r.ParseForm(); err != nil {
		oauth.WriteError(w, nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "the body could not be read"))
		return nil, nil, false
	}
	params, resources, oerr := singleValues(r.PostForm, "resource")
	if oerr != nil {
		oauth.WriteError(w, nil, oerr)
		return nil, nil, false
	}
	return params, resources, true
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

// exchangeCode redeems an authorization code (OAuth 2.1 section 4.1.3).
// Everything that a retry could fix is checked before the code is used up;
// the code is then taken atomically, so it is redeemed at most once.
func (s *Site) exchangeCode(ctx context.Context, client *authenticatedClient, params map[string]string, resources []string) (*tokenResponse, *oauth.Error) {
	invalidGrant := oauth.NewError(http.StatusBadRequest, oauth.InvalidGrant, "the authorization code is invalid, expired or already used")
	code, verifier := params["code"], params["code_verifier"]
	if code == "" {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "code is required")
	}
	ac, redeemed, err := s.AS.State.Codes.Find(ctx, code)
	if err != nil {
		if redeemed != nil {
			s.punishReplay(ctx, client, redeemed, verifier)
		}
		return nil, invalidGrant
	}
	req := ac.Request
	if req.ClientID != client.ClientID {
		return nil, invalidGrant
	}
	if uri := params["redirect_uri"]; uri != "" && uri != req.RedirectURI {
		return nil, invalidGrant
	}
	res, oerr := s.resolveResource(resources, s.resourceByURL(req.Resource))
	if oerr != nil {
		return nil, oerr
	}
	if res.URL != req.Resource {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidTarget, "the resource differs from the one authorized")
	}
	if verifier == "" {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "code_verifier is required")
	}
	if !tokens.ValidVerifier(verifier) {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "code_verifier is malformed")
	}
	if err := s.AS.State.Codes.Redeem(ctx, code); err != nil {
		return nil, invalidGrant // redeemed concurrently
	}
	if !tokens.VerifyS256(verifier, req.CodeChallenge) {
		return nil, invalidGrant
	}
	// As at every refresh: the rules may have changed since the login.
	scopes, allowed := s.AS.admit(&ac.User, req.Scopes)
	if !allowed {
		return nil, invalidGrant
	}
	req.Scopes = scopes
	unavailable := oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the server could not issue tokens")
	resp, at, err := s.mintAccessToken(ctx, client.Client, ac.User, res, req.Scopes)
	used := state.Redemption{ClientID: client.ClientID, CodeChallenge: req.CodeChallenge, AccessToken: at}
	if err == nil && client.AllowsGrant(clients.GrantRefreshToken) {
		used.GrantID, resp.RefreshToken, err = s.newGrant(ctx, client, ac.User, res, req.Scopes, at)
	}
	if err == nil {
		resp.IDToken, err = s.idToken(client.ClientID, ac.User, req.Scopes, req.Nonce)
	}
	if err != nil {
		return nil, unavailable.WithCause(fmt.Errorf("issuing tokens: %w", err))
	}
	// Checked after everything is stored, so that a revocation listing
	// the user's or client's tokens meanwhile either found them or is seen
	// here (see state.Revocations.RevokedSince).
	revoked, markErr := s.AS.State.Revocations.RevokedSince(ctx, ac.User.Subject, client.ClientID, ac.IssuedAt)
	if markErr != nil || revoked {
		if err := s.AS.revokeIssued(ctx, &used); err != nil {
			s.AS.Logger.Error("taking back tokens issued during a revocation", zap.Error(err))
		}
		if markErr != nil {
			return nil, unavailable.WithCause(markErr)
		}
		s.audit(ctx, "authorization code of a revoked user or client redeemed; nothing issued", zap.String("client_id", client.ClientID), zap.String("sub", ac.User.Subject))
		return nil, invalidGrant
	}
	if err := s.AS.State.Codes.RememberRedemption(ctx, code, &used); err != nil {
		s.AS.Logger.Warn("remembering a used code failed", zap.Error(err))
	}
	s.tokensIssued("authorization_code", client.ClientID, ac.User.Subject)
	return resp, nil
}

// tokensIssued counts issued tokens.
func (s *Site) tokensIssued(grantType, clientID, sub string) {
	if s.AS.Observer != nil {
		s.AS.Observer.TokensIssued(grantType)
	}
	s.logDebug("tokens issued", zap.String("grant_type", grantType), zap.String("client_id", clientID), zap.String("sub", sub))
}

// punishReplay revokes what a code issued when the code is presented again
// by its client with the right verifier: the code was stolen, or the
// client is broken (OAuth 2.1 section 4.1.3). A replay with a wrong
// verifier changes nothing, so nobody can revoke another's tokens.
func (s *Site) punishReplay(ctx context.Context, client *authenticatedClient, used *state.Redemption, verifier string) {
	if used.ClientID != client.ClientID || !tokens.VerifyS256(verifier, used.CodeChallenge) {
		return
	}
	if err := s.AS.revokeIssued(ctx, used); err != nil {
		s.AS.Logger.Error("revoking the tokens of a replayed code", zap.Error(err))
	}
	s.audit(ctx, "authorization code replayed; its tokens were revoked", zap.String("client_id", client.ClientID))
}

// revokeIssued revokes what one code redemption issued: its grant, if
// any, and its access token.
func (a *AuthServer) revokeIssued(ctx context.Context, used *state.Redemption) error {
	if used.GrantID != "" {
		if _, err := a.State.Grants.Revoke(ctx, used.GrantID); err != nil {
			return err
		}
	}
	return a.State.Revocations.DenyAccessToken(ctx, used.AccessToken.ID, used.AccessToken.ExpiresAt)
}

// mintAccessToken mints an access token for res and indexes it by user and
// by client, so that revoking either reaches it.
func (s *Site) mintAccessToken(ctx context.Context, client *clients.Client, user state.User, res *gate.Resource, scopes []string) (*tokenResponse, state.TokenID, error) {
	scope := strings.Join(scopes, " ")
	lifetime := s.AS.AccessTokenLifetime
	now := time.Now()
	id := state.TokenID{ID: tokens.NewID(), ExpiresAt: now.Add(lifetime).Unix()}
	// A token that revocation could not find is not issued.
	if err := s.AS.State.Revocations.IndexAccessToken(ctx, user.Subject, client.ClientID, id); err != nil {
		return nil, state.TokenID{}, err
	}
	// Sign, not MintAccessToken: that draws a fresh jti, and the one
	// recorded in id must be the token's for revocation to deny it.
	at, err := s.Ring.Sign(tokens.AccessTokenType, tokens.AccessClaims{
		Issuer:   s.Issuer,
		Subject:  user.Subject,
		Audience: tokens.Audience{res.URL},
		JWTID:    id.ID,
		ClientID: client.ClientID,
		Scope:    scope,
		Email:    user.Email,
		Username: user.Username,
		IssuedAt: now.Unix(),
		Expiry:   id.ExpiresAt,
	})
	if err != nil {
		return nil, state.TokenID{}, err
	}
	return &tokenResponse{AccessToken: at, TokenType: "Bearer", ExpiresIn: int64(lifetime / time.Second), Scope: scope}, id, nil
}

// newGrant starts a refresh-token family and returns its id and first
// refresh token. The grant remembers how its client authenticated.
func (s *Site) newGrant(ctx context.Context, client *authenticatedClient, user state.User, res *gate.Resource, scopes []string, at state.TokenID) (string, string, error) {
	rt, now := randomToken(), time.Now()
	g := &state.Grant{
		ID: tokens.NewID(), ClientID: client.ClientID, ClientAuth: client.Method, User: user, Resource: res.URL, Scopes: scopes,
		RefreshHash: state.Hash(rt), AccessTokenIDs: []state.TokenID{at},
		CreatedAt: now.Unix(), ExpiresAt: now.Add(s.AS.RefreshTokenLifetime).Unix(),
	}
	if err := s.AS.State.Grants.Create(ctx, g, s.AS.RefreshTokenLifetime, s.AS.RefreshTokenIdle); err != nil {
		return "", "", err
	}
	return g.ID, rt, nil
}

// resourceByURL returns the resource with the canonical URL u.
func (s *Site) resourceByURL(u string) *gate.Resource {
	for _, r := range s.Resources {
		if r.URL == u {
			return r
		}
	}
	return nil
}
