// Package clients models OAuth clients of the authorization server: those
// registered dynamically (RFC 7591) and those identified by a Client ID
// Metadata Document, an https URL whose document describes the client.
package clients

import (
	"slices"
	"time"
)

// Token endpoint authentication methods (RFC 7591 section 2, RFC 7523).
const (
	AuthMethodNone              = "none"
	AuthMethodClientSecretBasic = "client_secret_basic"
	AuthMethodClientSecretPost  = "client_secret_post"
	AuthMethodPrivateKeyJWT     = "private_key_jwt"
)

// Application types a client may register (OpenID Connect Registration
// section 2).
const (
	ApplicationWeb    = "web"
	ApplicationNative = "native"
)

// Grant and response types a client may register.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	// GrantClientCredentials is only for configured clients (see
	// CheckConfiguredID): nobody may register it.
	GrantClientCredentials = "client_credentials"
	ResponseTypeCode       = "code"
)

// Client is an OAuth client as the authorization server knows it.
type Client struct {
	ClientID string `json:"client_id"`
	// SecretHash is the hex SHA-256 of the client secret; empty for public clients.
	SecretHash              string   `json:"secret_hash,omitempty"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	TOSURI                  string   `json:"tos_uri,omitempty"`
	PolicyURI               string   `json:"policy_uri,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	// ApplicationType is "web" or "native" (OpenID Connect Registration
	// section 2, MCP SEP-837); records stored before it was kept have "".
	ApplicationType string `json:"application_type,omitempty"`
	Scope           string `json:"scope,omitempty"`
	// SoftwareID and SoftwareVersion are self-asserted (RFC 7591 section
	// 2); kept only to tell client software apart in logs.
	SoftwareID      string `json:"software_id,omitempty"`
	SoftwareVersion string `json:"software_version,omitempty"`
	// JWKSURI and JWKS hold the keys of a private_key_jwt client. JWKS is
	// the raw JSON of an inline JWK Set ({"keys":[…]}), public keys only.
	JWKSURI string `json:"jwks_uri,omitempty"`
	JWKS    []byte `json:"jwks,omitempty"`
	// IssuedAt and SecretExpiresAt are Unix times (0: the secret never expires).
	IssuedAt        int64 `json:"client_id_issued_at"`
	SecretExpiresAt int64 `json:"client_secret_expires_at"`
	// Metadata is true for a client identified by a metadata document (CIMD).
	Metadata bool `json:"metadata_document,omitempty"`
	// Used is true once the client obtained a token; unused dynamically
	// registered clients expire.
	Used bool `json:"used,omitempty"`
	// Configured is true for a client the operator configured rather than
	// one that registered; such clients live in the config, never in the
	// store.
	Configured bool `json:"-"`
}

// IsPublic reports whether the client has no credentials of its own and
// authenticates only by client_id (plus PKCE).
func (c *Client) IsPublic() bool { return c.TokenEndpointAuthMethod == AuthMethodNone }

// AllowsGrant reports whether the client registered grantType.
func (c *Client) AllowsGrant(grantType string) bool { return slices.Contains(c.GrantTypes, grantType) }

// SecretExpired reports whether the client's secret has expired at now.
// A client without an expiry (0) never expires.
func (c *Client) SecretExpired(now time.Time) bool {
	return c.SecretExpiresAt != 0 && now.Unix() >= c.SecretExpiresAt
}

// Clone returns a deep copy of c, so that a cached client can be handed out
// without callers changing the cache.
func (c *Client) Clone() *Client {
	cp := *c
	cp.RedirectURIs = slices.Clone(c.RedirectURIs)
	cp.GrantTypes = slices.Clone(c.GrantTypes)
	cp.ResponseTypes = slices.Clone(c.ResponseTypes)
	cp.JWKS = slices.Clone(c.JWKS)
	return &cp
}
