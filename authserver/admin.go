package authserver

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Admin is what operators can do to one authorization server's state:
// list, delete and block clients, list and revoke users' grants and
// tokens. It reads and writes only through the state stores; it lives
// with the endpoints because its rules are theirs: a blocked client is
// refused by the same client lookup (clientDirectory), and a client's
// tokens are revoked before its record goes, as a revocation at the
// endpoints would.
type Admin struct {
	// Issuer is the authorization server's issuer; State its records,
	// the same stores its endpoints use (Config.State).
	Issuer string
	State  *state.Stores
	// MachineClients are the clients the site's config names
	// (Config.MachineClients); they are listed, never stored.
	MachineClients []MachineClient
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
	// Configured marks a machine client of the config, with the scopes
	// and resource paths it may have (none listed: all).
	Configured bool     `json:"configured,omitempty"`
	Scopes     []string `json:"scopes,omitempty"`
	Resources  []string `json:"resources,omitempty"`
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

// Clients lists the configured machine clients, then the registered ones.
func (a *Admin) Clients(ctx context.Context) ([]ClientInfo, error) {
	registered, err := a.State.Clients.List(ctx)
	out := make([]ClientInfo, 0, len(a.MachineClients)+len(registered))
	for _, mc := range a.MachineClients {
		out = append(out, ClientInfo{Issuer: a.Issuer, ClientID: mc.ID, RedirectURIs: []string{}, AuthMethod: mc.authMethod(),
			GrantTypes: []string{clients.GrantClientCredentials}, Configured: true, Scopes: mc.Scopes, Resources: mc.Resources})
	}
	for _, c := range registered {
		out = append(out, ClientInfo{Issuer: a.Issuer, ClientID: c.ClientID, ClientName: c.ClientName, RedirectURIs: c.RedirectURIs,
			AuthMethod: c.TokenEndpointAuthMethod, GrantTypes: c.GrantTypes, IssuedAt: c.IssuedAt, Used: c.Used})
	}
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
	var err error
	if d.Deleted, err = a.State.Clients.Exists(ctx, clientID); err != nil {
		return nil, err
	}
	// Blocked first, so that no new token request gets through while the
	// old grants are revoked.
	if clients.IsMetadataURL(clientID) {
		if err := a.State.Clients.Block(ctx, clientID, time.Now()); err != nil {
			return nil, err
		}
		d.Blocked = true
	}
	if d.Revoked, err = a.State.RevokeClient(ctx, clientID); err != nil {
		return nil, err
	}
	if d.Deleted {
		if err := a.State.Clients.Delete(ctx, clientID); err != nil {
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
	blocked, err := a.State.Clients.Blocked(ctx)
	out := make([]BlockedClient, 0, len(blocked))
	for _, b := range blocked {
		out = append(out, BlockedClient{Issuer: a.Issuer, ClientID: b.ClientID, BlockedAt: b.BlockedAt})
	}
	return out, err
}

// UnblockClient lets a blocked client back in; its grants stay revoked.
func (a *Admin) UnblockClient(ctx context.Context, clientID string) error {
	if err := a.State.Clients.Unblock(ctx, clientID); err != nil {
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
	live, err := a.State.Grants.List(ctx, func(g *state.Grant) bool { return !g.Revoked && (sub == "" || g.User.Subject == sub) })
	out := make([]GrantInfo, 0, len(live))
	for _, g := range live {
		out = append(out, GrantInfo{Issuer: a.Issuer, ID: g.ID, ClientID: g.ClientID, Subject: g.User.Subject, Username: g.User.Username,
			Email: g.User.Email, Resource: g.Resource, Scopes: g.Scopes, CreatedAt: g.CreatedAt, ExpiresAt: g.ExpiresAt})
	}
	return out, err
}

// RevokeGrant revokes one grant: its refresh tokens and access tokens stop working.
func (a *Admin) RevokeGrant(ctx context.Context, id string) error {
	g, err := a.State.Grants.Revoke(ctx, id)
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
	return a.State.RevokeUser(ctx, sub)
}
