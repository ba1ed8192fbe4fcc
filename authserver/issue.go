package authserver

import (
	"context"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// minter issues tokens: access tokens, refresh-token grants and ID tokens.
type minter struct {
	issuer string
	ring   *tokens.KeyRing
	// revocations indexes access tokens, grants stores grants.
	revocations *state.Revocations
	grants      *state.Grants

	accessLifetime  time.Duration
	refreshLifetime time.Duration
	refreshIdle     time.Duration

	// now is the clock tokens and grants are dated by.
	now func() time.Time
}

// accessToken mints an access token for res and indexes it by user and
// by client, so that revoking either reaches it. A token request that
// proved a DPoP key gets a token bound to it. upstreamToken is the id of
// the user's token at the identity provider kept for the backend, if any.
func (m *minter) accessToken(ctx context.Context, client *clients.Client, user state.User, res *gate.Resource, scopes []string, upstreamToken string) (*tokenResponse, state.TokenID, error) {
	scope := strings.Join(scopes, " ")
	lifetime := m.accessLifetime
	now := m.now()
	id := state.TokenID{ID: tokens.NewID(), ExpiresAt: now.Add(lifetime).Unix()}
	// A token that revocation could not find is not issued.
	if err := m.revocations.IndexAccessToken(ctx, user.Subject, client.ClientID, id); err != nil {
		return nil, state.TokenID{}, err
	}
	// Sign, not MintAccessToken: that draws a fresh jti, and the one
	// recorded in id must be the token's for revocation to deny it.
	claims := tokens.AccessClaims{
		Issuer:   m.issuer,
		Subject:  user.Subject,
		Audience: tokens.Audience{res.URL},
		JWTID:    id.ID,
		ClientID: client.ClientID,
		Scope:    scope,
		Email:    user.Email,
		Username: user.Username,
		IssuedAt: now.Unix(),
		Expiry:   id.ExpiresAt,

		UpstreamTokenID: upstreamToken,
	}
	jkt := proofKey(ctx)
	if jkt != "" {
		claims.Confirmation = &tokens.Confirmation{JKT: jkt}
	}
	at, err := m.ring.Sign(tokens.AccessTokenType, claims)
	if err != nil {
		return nil, state.TokenID{}, err
	}
	return &tokenResponse{AccessToken: at, TokenType: tokenType(jkt), ExpiresIn: int64(lifetime / time.Second), Scope: scope}, id, nil
}

// newGrant starts a refresh-token family and returns its id and first
// refresh token. The grant remembers how its client authenticated, the
// user's token at the identity provider kept for it, if any, and,
// for a public client, the DPoP key it proved (RFC 9449 section 5): a
// confidential client's refresh token is already bound to its credentials.
func (m *minter) newGrant(ctx context.Context, client *authenticatedClient, user state.User, res *gate.Resource, scopes []string, at state.TokenID, upstreamToken string) (string, string, error) {
	rt, now := randomToken(), m.now()
	g := &state.Grant{
		ID: tokens.NewID(), ClientID: client.ClientID, ClientAuth: client.Method, User: user, Resource: res.URL, Scopes: scopes,
		RefreshHash: state.Hash(rt), AccessTokenIDs: []state.TokenID{at}, UpstreamToken: upstreamToken,
		CreatedAt: now.Unix(), ExpiresAt: now.Add(m.refreshLifetime).Unix(),
	}
	if !client.provedCredential() {
		g.DPoPJKT = proofKey(ctx)
	}
	if err := m.grants.Create(ctx, g, m.refreshLifetime, m.refreshIdle); err != nil {
		return "", "", err
	}
	return g.ID, rt, nil
}
