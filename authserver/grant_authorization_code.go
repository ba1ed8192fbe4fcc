package authserver

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
	"go.uber.org/zap"
)

// authorizationCodeGrant redeems authorization codes.
type authorizationCodeGrant struct {
	codes       *state.Codes
	grants      *state.Grants
	revocations *state.Revocations
	// upstreamTokens keeps users' tokens at the identity provider.
	upstreamTokens *state.UpstreamTokens
	resources      *resourceSet
	policy         *policy
	mint           *minter
	log            *events
}

// grant redeems an authorization code (OAuth 2.1 section 4.1.3).
// Everything that a retry could fix is checked before the code is used up;
// the code is then taken atomically, so it is redeemed at most once.
func (h *authorizationCodeGrant) grant(ctx context.Context, client *authenticatedClient, params map[string]string, resources []string) (*tokenResponse, *oauth.Error) {
	invalidGrant := oauth.NewError(http.StatusBadRequest, oauth.InvalidGrant, "the authorization code is invalid, expired or already used")
	code, verifier := params["code"], params["code_verifier"]
	if code == "" {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "code is required")
	}
	unavailable := oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the server could not issue tokens")
	ac, redeemed, err := h.codes.Find(ctx, code)
	switch {
	case redeemed != nil:
		h.punishReplay(ctx, client, redeemed, verifier)
		return nil, invalidGrant
	case errors.Is(err, storage.ErrNotFound):
		return nil, invalidGrant
	case err != nil:
		// The code may be good: the client may retry with it.
		return nil, unavailable.WithCause(fmt.Errorf("looking up the code: %w", err))
	}
	req := ac.Request
	if req.ClientID != client.ClientID {
		return nil, invalidGrant
	}
	if uri := params["redirect_uri"]; uri != "" && uri != req.RedirectURI {
		return nil, invalidGrant
	}
	if req.DPoPJKT != "" && proofKey(ctx) != req.DPoPJKT {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidGrant, "the authorization code is bound to a DPoP key the request does not prove")
	}
	res, oerr := h.resources.resolve(resources, h.resources.byURL(req.Resource))
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
	switch err := h.codes.Redeem(ctx, code); {
	case errors.Is(err, storage.ErrNotFound):
		return nil, invalidGrant // redeemed concurrently
	case err != nil:
		return nil, unavailable.WithCause(fmt.Errorf("redeeming the code: %w", err))
	}
	if !tokens.VerifyS256(verifier, req.CodeChallenge) {
		return nil, invalidGrant
	}
	// As at every refresh: the rules may have changed since the login.
	scopes, allowed := h.policy.admit(&ac.User, req.Scopes)
	if !allowed {
		return nil, invalidGrant
	}
	req.Scopes = scopes
	resp, at, err := h.mint.accessToken(ctx, client.Client, ac.User, res, req.Scopes, ac.UpstreamToken)
	used := state.Redemption{ClientID: client.ClientID, CodeChallenge: req.CodeChallenge, AccessToken: at}
	if err == nil && client.AllowsGrant(clients.GrantRefreshToken) {
		used.GrantID, resp.RefreshToken, err = h.mint.newGrant(ctx, client, ac.User, res, req.Scopes, at, ac.UpstreamToken)
	}
	if err == nil && ac.UpstreamToken != "" {
		err = h.keepUpstreamToken(ctx, ac.UpstreamToken, used.GrantID != "", at)
	}
	if err == nil {
		resp.IDToken, err = h.mint.idToken(client.ClientID, ac.User, req.Scopes, req.Nonce)
	}
	if err != nil {
		return nil, unavailable.WithCause(fmt.Errorf("issuing tokens: %w", err))
	}
	// Checked after everything is stored, so that a revocation listing
	// the user's or client's tokens meanwhile either found them or is seen
	// here (see state.Revocations.RevokedSince).
	revoked, markErr := h.revocations.RevokedSince(ctx, ac.User.Subject, client.ClientID, ac.IssuedAt)
	if markErr != nil || revoked {
		if err := h.revokeIssued(ctx, &used); err != nil {
			h.log.logger.Error("taking back tokens issued during a revocation", zap.Error(err))
		}
		if markErr != nil {
			return nil, unavailable.WithCause(markErr)
		}
		h.log.record(ctx, "authorization code of a revoked user or client redeemed; nothing issued", zap.String("client_id", client.ClientID), zap.String("sub", ac.User.Subject))
		return nil, invalidGrant
	}
	if err := h.codes.RememberRedemption(ctx, code, &used); err != nil {
		h.log.logger.Warn("remembering a used code failed", zap.Error(err))
	}
	h.log.tokensIssued("authorization_code", client.ClientID, ac.User.Subject)
	return resp, nil
}

// keepUpstreamToken makes the user's token at the identity provider,
// kept from the login for as long as the code lives, last as long as what
// the code issued: the grant, or without one the access token.
func (h *authorizationCodeGrant) keepUpstreamToken(ctx context.Context, id string, withGrant bool, at state.TokenID) error {
	tok, err := h.upstreamTokens.Get(ctx, id)
	if err != nil {
		return fmt.Errorf("reading the upstream token: %w", err)
	}
	next := *tok
	next.Until = at.ExpiresAt
	if withGrant {
		next.Until = time.Now().Add(h.mint.refreshLifetime).Unix()
	}
	return h.upstreamTokens.Replace(ctx, tok, &next)
}

// punishReplay revokes what a code issued when the code is presented again
// by its client with the right verifier: the code was stolen, or the
// client is broken (OAuth 2.1 section 4.1.3). A replay with a wrong
// verifier changes nothing, so nobody can revoke another's tokens.
func (h *authorizationCodeGrant) punishReplay(ctx context.Context, client *authenticatedClient, used *state.Redemption, verifier string) {
	if used.ClientID != client.ClientID || !tokens.VerifyS256(verifier, used.CodeChallenge) {
		return
	}
	if err := h.revokeIssued(ctx, used); err != nil {
		h.log.logger.Error("revoking the tokens of a replayed code", zap.Error(err))
	}
	h.log.record(ctx, "authorization code replayed; its tokens were revoked", zap.String("client_id", client.ClientID))
}

// revokeIssued revokes what one code redemption issued: its grant, if
// any, and its access token.
func (h *authorizationCodeGrant) revokeIssued(ctx context.Context, used *state.Redemption) error {
	if used.GrantID != "" {
		if _, err := h.grants.Revoke(ctx, used.GrantID); err != nil {
			return err
		}
	}
	return h.revocations.DenyAccessToken(ctx, used.AccessToken.ID, used.AccessToken.ExpiresAt)
}
