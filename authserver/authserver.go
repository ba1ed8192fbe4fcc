package authserver

import (
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// AuthServer is the authorization server of a Site: registration, the
// authorization flow with consent and upstream login, and the token
// endpoint.
type AuthServer struct {
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
	// Metadata fetches Client ID Metadata Documents; nil disables them.
	Metadata *clients.Fetcher
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
	// RememberConsent is how long a browser's approval of a client (for
	// one redirect URI) is remembered; zero asks every time.
	RememberConsent time.Duration

	// Logger logs errors; Audit gets one entry per security event.
	Logger *zap.Logger
	Audit  *zap.Logger
	// Observer, if set, counts events for metrics.
	Observer Observer
}
