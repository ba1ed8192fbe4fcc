package mcpauth

import (
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/authserver"
)

// MachineClient pre-registers a program that gets access tokens for
// itself, with no user, by the client credentials grant (the MCP
// extension io.modelcontextprotocol/oauth-client-credentials). Its tokens'
// subject is its id: the gate sets {http.auth.user.id} and
// {http.auth.client_id} to it, and {http.auth.user.email} to nothing.
// Users' ids always hold a colon (github:583231), client ids never do.
type MachineClient struct {
	// ID is the client_id: up to 64 letters, digits and . _ ~ -, never 22
	// letters, digits, - and _ alone (the form of dynamically registered
	// ids).
	ID string `json:"id"`
	// SecretHash is the hex SHA-256 of the client's secret, which it sends
	// with HTTP Basic or in the form body. Make the secret random, at least
	// 32 bytes: `openssl rand -hex 32`, then `printf %s "$SECRET" |
	// sha256sum`. bcrypt hashes are refused: a slow hash adds nothing to a
	// random secret and costs a CPU second per token request.
	SecretHash string `json:"secret_hash,omitempty"`
	// JWKSURI is the https URL of the client's JWK Set: it authenticates
	// with private_key_jwt assertions (RFC 7523) signed by one of its keys.
	JWKSURI string `json:"jwks_uri,omitempty"`
	// JWKS is the client's JWK Set itself, public keys only.
	JWKS json.RawMessage `json:"jwks,omitempty"`
	// Scopes the client may be granted. Default: every scope of the
	// resources it may use. grant_scope rules, when there are any, narrow
	// them further: a client gets only scopes granted to it by name.
	Scopes []string `json:"scopes,omitempty"`
	// Resources are the paths of the declared resources (such as /mcp) the
	// client may get tokens for; the first is the one a request without a
	// resource indicator gets. Default: every resource.
	Resources []string `json:"resources,omitempty"`
	// AccessTokenLifetime of the client's tokens. Default: the site's
	// access_token_lifetime.
	AccessTokenLifetime caddy.Duration `json:"access_token_lifetime,omitempty"`
}

// machineClients checks the configured clients against the site's
// options and converts them; the authorization server checks the rest
// against its resources.
func (h *Handler) machineClients(keyRotation caddy.Duration, allow authserver.AllowList, grants []authserver.ScopeGrant) ([]authserver.MachineClient, error) {
	var out []authserver.MachineClient
	for _, c := range h.Clients {
		if c.AccessTokenLifetime != 0 && (c.AccessTokenLifetime < caddy.Duration(time.Minute) || c.AccessTokenLifetime >= keyRotation) {
			return nil, fmt.Errorf("client %s: access_token_lifetime (%s) must be at least 1m and shorter than key_rotation (%s)",
				c.ID, time.Duration(c.AccessTokenLifetime), time.Duration(keyRotation))
		}
		out = append(out, authserver.MachineClient{
			ID: c.ID, SecretHash: c.SecretHash, JWKSURI: c.JWKSURI, JWKS: c.JWKS,
			Scopes: c.Scopes, Resources: c.Resources, AccessTokenLifetime: time.Duration(c.AccessTokenLifetime),
		})
	}
	configured := func(id string) bool {
		return slices.ContainsFunc(h.Clients, func(c MachineClient) bool { return c.ID == id })
	}
	named := slices.Clone(allow.Clients)
	for _, g := range grants {
		named = append(named, g.To.Clients...)
	}
	for _, id := range named {
		if !configured(id) {
			return nil, fmt.Errorf("clients %q: no client with this id is configured", id)
		}
	}
	return out, nil
}

// needsKeys reports whether a configured client authenticates with keys.
func (h *Handler) needsKeys() bool {
	return slices.ContainsFunc(h.Clients, func(c MachineClient) bool { return c.SecretHash == "" })
}
