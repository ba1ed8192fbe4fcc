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
