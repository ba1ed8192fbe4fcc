package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Admin is what operators can do to one authorization server's state:
// list and delete clients, list and revoke users' grants and tokens.
type Admin struct {
	// Issuer is the authorization server's issuer; Store its records,
	// the AuthServer's Store.
	Issuer string
	Store  storage.Store
}

// ClientInfo describes a registered client for operators; never a secret.
type ClientInfo struct {
	Issuer       string   `json:"issuer"`
	ClientID     string   `json:"client_id"`
	ClientName   string   `json:"client_name,omitempty"`
	RedirectURIs []string `json:"redirect_uris"`
	AuthMethod   string   `json:"token_endpoint_auth_method"`
	GrantTypes   []string `json:"grant_types"`
	IssuedAt     int64    `json:"client_id_issued_at"`
	Used         bool     `json:"used"`
}

// GrantInfo describes a grant (a login's refresh-token family).
type GrantInfo struct {
	Issuer    string   `json:"issuer"`
	ID        string   `json:"id"`
	ClientID  string   `json:"client_id"`
	Subject   string   `json:"sub"`
	Username  string   `json:"username,omitempty"`
	Email     string   `json:"email,omitempty"`
	Resource  string   `json:"resource"`
	Scopes    []string `json:"scopes,omitempty"`
	CreatedAt int64    `json:"created_at"`
	ExpiresAt int64    `json:"expires_at"`
}

// ErrNotFound is returned for an unknown client or grant.
var ErrNotFound = errors.New("not found")

// Clients lists the registered clients.
func (a *Admin) Clients(ctx context.Context) ([]ClientInfo, error) {
	out := []ClientInfo{}
	err := a.Store.List(ctx, keyClient, func(_ string, v []byte) error {
		var c clients.Client
		if json.Unmarshal(v, &c) != nil {
			return nil
		}
		out = append(out, ClientInfo{Issuer: a.Issuer, ClientID: c.ClientID, ClientName: c.ClientName, RedirectURIs: c.RedirectURIs,
			AuthMethod: c.TokenEndpointAuthMethod, GrantTypes: c.GrantTypes, IssuedAt: c.IssuedAt, Used: c.Used})
		return nil
	})
	return out, err
}

// DeleteClient deletes a registered client and revokes its grants and
// access tokens.
func (a *Admin) DeleteClient(ctx context.Context, clientID string) error {
	if _, err := a.Store.Get(ctx, keyClient+clientID); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		return err
	}
	if _, err := a.revokeWhere(ctx, func(g *grant) bool { return g.ClientID == clientID }, tokenOfClientPrefix(clientID)); err != nil {
		return err
	}
	return a.Store.Delete(ctx, keyClient+clientID)
}

// Grants lists the live grants of a user (by sub, such as github:583231),
// or of everyone when sub is empty.
func (a *Admin) Grants(ctx context.Context, sub string) ([]GrantInfo, error) {
	out := []GrantInfo{}
	err := a.Store.List(ctx, keyGrant, func(_ string, v []byte) error {
		var g grant
		if json.Unmarshal(v, &g) != nil || (sub != "" && g.User.Subject != sub) {
			return nil
		}
		out = append(out, GrantInfo{Issuer: a.Issuer, ID: g.ID, ClientID: g.ClientID, Subject: g.User.Subject, Username: g.User.Username,
			Email: g.User.Email, Resource: g.Resource, Scopes: g.Scopes, CreatedAt: g.CreatedAt, ExpiresAt: g.ExpiresAt})
		return nil
	})
	return out, err
}

// RevokeGrant revokes one grant: its refresh tokens and access tokens stop working.
func (a *Admin) RevokeGrant(ctx context.Context, id string) error {
	n, err := a.revokeWhere(ctx, func(g *grant) bool { return g.ID == id }, "")
	if err == nil && n == 0 {
		return ErrNotFound
	}
	return err
}

// RevokeUser revokes every grant and access token of a user and returns
// how many grants and access tokens outside them there were.
func (a *Admin) RevokeUser(ctx context.Context, sub string) (int, error) {
	if strings.TrimSpace(sub) == "" {
		return 0, errors.New("a user (sub) is required")
	}
	return a.revokeWhere(ctx, func(g *grant) bool { return g.User.Subject == sub }, tokenOfUserPrefix(sub))
}

// revokeWhere revokes the grants match selects and the access tokens
// indexed under tokenIndex (none if empty). It returns the number of grants
// plus that of the access tokens that belonged to none of them.
func (a *Admin) revokeWhere(ctx context.Context, match func(*grant) bool, tokenIndex string) (int, error) {
	var selected []grant
	err := a.Store.List(ctx, keyGrant, func(_ string, v []byte) error {
		var g grant
		if json.Unmarshal(v, &g) == nil && match(&g) {
			selected = append(selected, g)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	as := &AuthServer{Store: a.Store}
	ofGrants := map[string]bool{}
	for i := range selected {
		if err := as.revokeFamily(ctx, &selected[i]); err != nil {
			return i, err
		}
		for _, t := range selected[i].AccessTokenIDs {
			ofGrants[t.ID] = true
		}
	}
	if tokenIndex == "" {
		return len(selected), nil
	}
	indexed := map[string]tokenID{}
	err = a.Store.List(ctx, tokenIndex, func(key string, v []byte) error {
		var t tokenID
		if json.Unmarshal(v, &t) == nil {
			indexed[key] = t
		}
		return nil
	})
	if err != nil {
		return len(selected), err
	}
	alone := 0
	for key, t := range indexed {
		if err := as.denyAccessToken(ctx, t.ID, t.ExpiresAt); err != nil {
			return len(selected) + alone, err
		}
		// Denied for good: a second revocation need not count it again.
		if err := a.Store.Delete(ctx, key); err != nil {
			return len(selected) + alone, err
		}
		if !ofGrants[t.ID] {
			alone++
		}
	}
	return len(selected) + alone, nil
}
