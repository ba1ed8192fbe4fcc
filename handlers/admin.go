package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Admin is what operators can do to one authorization server's state:
// list, delete and block clients, list and revoke users' grants and
// tokens.
type Admin struct {
	// Issuer is the authorization server's issuer; Store its records,
	// the AuthServer's Store.
	Issuer string
	Store  storage.Store
	// Denied is the AuthServer's Denied.
	Denied *DeniedTokens
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

// ClientDeletion is what DeleteClient did at one site.
type ClientDeletion struct {
	Issuer   string `json:"issuer"`
	ClientID string `json:"client_id"`
	// Deleted says a registered client's record was deleted; Blocked that
	// a metadata-document client is now refused.
	Deleted bool `json:"deleted"`
	Blocked bool `json:"blocked"`
	// Revoked counts the grants and access tokens revoked (see RevokeUser).
	Revoked int `json:"revoked"`
}

// BlockedClient is a client an operator blocked.
type BlockedClient struct {
	Issuer    string `json:"issuer"`
	ClientID  string `json:"client_id"`
	BlockedAt int64  `json:"blocked_at"`
}

// blockedClientKey is where a client's block is recorded. The id is
// hashed: a metadata-document client_id is a URL of up to 2 KiB.
func blockedClientKey(clientID string) string { return keyBlockedClient + hashKey(clientID) }

// DeleteClient ends a client at this site: it revokes every grant and
// access token of the client, deletes its registration if it has one,
// and blocks it if it is a metadata-document client, which has no record
// to delete and would otherwise come back at its next request. It fails
// with ErrNotFound only when there was nothing to do.
func (a *Admin) DeleteClient(ctx context.Context, clientID string) (*ClientDeletion, error) {
	if strings.TrimSpace(clientID) == "" {
		return nil, errors.New("a client_id is required")
	}
	d := &ClientDeletion{Issuer: a.Issuer, ClientID: clientID}
	switch _, err := a.Store.Get(ctx, keyClient+clientID); {
	case err == nil:
		d.Deleted = true
	case !errors.Is(err, storage.ErrNotFound):
		return nil, err
	}
	// Blocked first, so that no new token request gets through while the
	// old grants are revoked.
	if clients.IsMetadataURL(clientID) {
		raw, err := json.Marshal(BlockedClient{ClientID: clientID, BlockedAt: time.Now().Unix()})
		if err != nil {
			return nil, err
		}
		if err := a.Store.Put(ctx, blockedClientKey(clientID), raw, 0); err != nil {
			return nil, err
		}
		d.Blocked = true
	}
	var err error
	if d.Revoked, err = a.revokeWhere(ctx, func(g *grant) bool { return g.ClientID == clientID }, revocationMarkOfClient(clientID), tokenOfClientPrefix(clientID)); err != nil {
		return nil, err
	}
	if d.Deleted {
		if err := a.Store.Delete(ctx, keyClient+clientID); err != nil {
			return nil, err
		}
	}
	if !d.Deleted && !d.Blocked && d.Revoked == 0 {
		return nil, ErrNotFound
	}
	return d, nil
}

// BlockedClients lists the clients an operator blocked.
func (a *Admin) BlockedClients(ctx context.Context) ([]BlockedClient, error) {
	out := []BlockedClient{}
	err := a.Store.List(ctx, keyBlockedClient, func(_ string, v []byte) error {
		var b BlockedClient
		if json.Unmarshal(v, &b) == nil {
			b.Issuer = a.Issuer
			out = append(out, b)
		}
		return nil
	})
	return out, err
}

// UnblockClient lets a blocked client back in; its grants stay revoked.
func (a *Admin) UnblockClient(ctx context.Context, clientID string) error {
	if _, err := a.Store.Take(ctx, blockedClientKey(clientID)); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return ErrNotFound
		}
		return err
	}
	return nil
}

// Grants lists the live grants of a user (by sub, such as github:583231),
// or of everyone when sub is empty.
func (a *Admin) Grants(ctx context.Context, sub string) ([]GrantInfo, error) {
	out := []GrantInfo{}
	err := a.Store.List(ctx, keyGrant, func(_ string, v []byte) error {
		var g grant
		if json.Unmarshal(v, &g) != nil || g.Revoked || (sub != "" && g.User.Subject != sub) {
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
	as := &AuthServer{Store: a.Store, Denied: a.Denied}
	g, err := as.revokeGrant(ctx, id)
	if err == nil && g == nil {
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
	return a.revokeWhere(ctx, func(g *grant) bool { return g.User.Subject == sub }, revocationMarkOfUser(sub), tokenOfUserPrefix(sub))
}

// revokeWhere revokes the grants match selects and the access tokens
// indexed under tokenIndex, after writing the revocation mark under mark,
// so that no code issued before now issues anything (see revokeMark). It
// returns the number of grants plus that of the access tokens that
// belonged to none of them.
func (a *Admin) revokeWhere(ctx context.Context, match func(*grant) bool, mark, tokenIndex string) (int, error) {
	as := &AuthServer{Store: a.Store, Denied: a.Denied}
	if err := as.revokeMark(ctx, mark); err != nil {
		return 0, err
	}
	var selected []string
	err := a.Store.List(ctx, keyGrant, func(_ string, v []byte) error {
		var g grant
		if json.Unmarshal(v, &g) == nil && match(&g) {
			selected = append(selected, g.ID)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	revoked := 0
	ofGrants := map[string]bool{}
	for _, id := range selected {
		g, err := as.revokeGrant(ctx, id)
		if err != nil {
			return revoked, err
		}
		if g == nil {
			continue // revoked meanwhile by someone else
		}
		revoked++
		for _, t := range g.AccessTokenIDs {
			ofGrants[t.ID] = true
		}
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
		return revoked, err
	}
	alone := 0
	for key, t := range indexed {
		if err := as.denyAccessToken(ctx, t.ID, t.ExpiresAt); err != nil {
			return revoked + alone, err
		}
		// Denied for good: a second revocation need not count it again.
		if err := a.Store.Delete(ctx, key); err != nil {
			return revoked + alone, err
		}
		if !ofGrants[t.ID] {
			alone++
		}
	}
	return revoked + alone, nil
}
