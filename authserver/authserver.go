// Package authserver is the OAuth 2.1 authorization server of a site:
// discovery, registration, the authorization flow with consent and
// upstream login, and the token, revocation, introspection and userinfo
// endpoints. routes.go lists every endpoint; each has a file of its own
// and holds only what it uses. The bearer gate is package gate; the root
// package adapts both to Caddy, and nothing here knows about Caddy.
package authserver

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// Config is what New builds an authorization server from.
type Config struct {
	// Issuer is the issuer identifier; every URL the server publishes is
	// built from it.
	Issuer string
	// Realm is the realm of the userinfo endpoint's bearer challenges.
	Realm string
	// Resources are the protected resources tokens are issued for; the
	// first is the default.
	Resources gate.Resources
	// StepUpScopes are the scopes the gate's rules (require_scope,
	// tool_scope) may ask a token for besides its resource's own. A
	// client refused for lack of one asks for it, so they are granted for
	// every resource like the resource's own, within the ScopeGrants.
	StepUpScopes []string
	// ScopeDescriptions are what the consent page says of scopes, by
	// scope; a scope without one is shown as its name.
	ScopeDescriptions map[string]string
	// UpstreamAccess, when the site hands users' tokens at the identity
	// provider to its backends, is what the consent page says of them.
	UpstreamAccess *UpstreamAccess
	// Ring signs tokens; Verifier checks the access tokens presented back
	// (the gate's, so both share one cache).
	Ring     *tokens.KeyRing
	Verifier gate.Verifier
	// State holds this authorization server's records and nobody else's:
	// a key space of its own (see state.Open), so that a client, code,
	// login or grant of one site is unknown at every other.
	State *state.Stores
	// Upstream logs users in by redirection; Passwords by the built-in
	// login page. Exactly one is set.
	Upstream  upstream.Redirector
	Passwords upstream.PasswordChecker
	// UpstreamIdentity names the provider instance (kind and issuer) users
	// log in with; grants made with another are refused.
	UpstreamIdentity string
	// Allow decides who may finish a login.
	Allow AllowList
	// ScopeGrants, when any are set, decide which resource scopes each
	// user may be granted; a scope no grant names is granted to nobody.
	ScopeGrants []ScopeGrant
	// EnterpriseIdPs are the enterprise identity providers whose identity
	// assertion grants (ID-JAG) the token endpoint redeems; users they
	// assert go through Allow and ScopeGrants like users who log in.
	EnterpriseIdPs []EnterpriseIdP
	// Metadata fetches Client ID Metadata Documents; nil disables them.
	Metadata *clients.Fetcher
	// MachineClients are the clients configured for the client credentials
	// grant.
	MachineClients []MachineClient
	// Keys fetches the key sets of private_key_jwt clients: set when
	// Metadata is or a machine client has keys; nil refuses assertions.
	Keys *clients.Fetcher
	// AssertionOptional names the metadata-document clients (client_id
	// URLs, or hosts of client_ids) that declare private_key_jwt but may
	// leave out their assertion, and are then treated as public clients.
	AssertionOptional []string

	AccessTokenLifetime  time.Duration
	RefreshTokenLifetime time.Duration
	// RefreshTokenIdle is how long a refresh token stays valid unused.
	RefreshTokenIdle time.Duration
	// UnusedClientLifetime is how long a registered client that never
	// obtained a token is kept.
	UnusedClientLifetime time.Duration
	// RegistrationToken, when set, is the initial access token that
	// POST /register requires (RFC 7591 section 3).
	RegistrationToken string
	// RegistrationLimit limits registrations per source (see SourceBucket).
	RegistrationLimit *RateLimiter
	// RegistrationsPerHour caps registrations from all sources together,
	// counted in the store so that it holds across instances; zero means
	// no cap.
	RegistrationsPerHour int
	// AuthorizeLimit limits new authorization requests per source.
	AuthorizeLimit *RateLimiter
	// SecretFailureLimit throttles failed client-secret checks per client
	// and source (see SourceBucket).
	SecretFailureLimit *RateLimiter
	// ClientIP returns a request's client address (Caddy knows trusted
	// proxies); nil uses the connection's remote address.
	ClientIP func(*http.Request) string
	// SourceIPv4Prefix is how many leading bits of an IPv4 address name
	// one source for per-source limits; IPv6 sources are /64s.
	SourceIPv4Prefix int
	// IntrospectionCredentials maps the client ids of resource servers
	// allowed to introspect any token to the SHA-256 (hex) of their secrets.
	IntrospectionCredentials map[string]string
	// DPoPNonces, if set, makes the token endpoint require server nonces
	// in DPoP proofs (RFC 9449 section 8).
	DPoPNonces *dpop.Nonces
	// RememberConsent is how long a browser's approval of a client (for
	// one redirect URI) is remembered; zero asks every time.
	RememberConsent time.Duration

	// Logger logs errors; Audit gets one entry per security event.
	Logger *zap.Logger
	Audit  *zap.Logger
	// Observer, if set, counts events for metrics.
	Observer Observer
}

// UpstreamAccess describes the access to the user's account at the
// identity provider that the backends get.
type UpstreamAccess struct {
	// Account names the provider's accounts, such as "GitHub".
	Account string
	// Scopes are those requested from the provider; Descriptions say
	// in words what the known ones allow.
	Scopes       []string
	Descriptions map[string]string
}

// Server is the authorization server of one site: its routes, each bound
// to an endpoint that holds only the dependencies it uses.
type Server struct {
	// issuerPath is the issuer's path, "" for an origin; routes are the
	// endpoints by their path on the site.
	issuerPath string
	routes     map[string]route
}

// New checks cfg and builds every endpoint of the server.
func New(cfg Config) (*Server, error) {
	issuer, err := CanonicalIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	cfg.Issuer = issuer
	machines, err := newMachineClients(cfg.MachineClients, cfg.Resources)
	if err != nil {
		return nil, err
	}
	s := &Server{issuerPath: issuerPath(issuer), routes: make(map[string]route)}
	for _, rt := range newRoutes(&cfg, s.issuerPath, machines) {
		s.routes[rt.path] = rt
	}
	return s, nil
}
