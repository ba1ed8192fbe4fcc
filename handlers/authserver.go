package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// Endpoint paths, relative to the issuer.
const (
	pathJWKS       = "/jwks"
	pathRegister   = "/register"
	pathAuthorize  = "/authorize"
	pathConsent    = "/authorize/consent"
	pathLogin      = "/authorize/login"
	pathCallback   = "/authorize/callback"
	pathToken      = "/token"
	pathRevoke     = "/revoke"
	pathIntrospect = "/introspect"
	pathUserinfo   = "/userinfo"
)

// Lifetimes of the short-lived records of a login.
const (
	codeLifetime    = 60 * time.Second
	requestLifetime = 10 * time.Minute
	// usedCodeMemory is how long a redeemed code is remembered, to detect
	// and punish its replay (OAuth 2.1 section 4.1.3).
	usedCodeMemory = 10 * time.Minute
)

// AuthServer is the authorization server of a Site: registration, the
// authorization flow with consent and upstream login, and the token
// endpoint.
type AuthServer struct {
	// Store holds this authorization server's records and nobody else's:
	// a key space of its own (see storage.Prefixed), so that a client,
	// code, login or grant of one site is unknown at every other.
	Store storage.Store
	// Denied holds the revoked access tokens of Store, for the gate.
	Denied *DeniedTokens
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

// pendingRequest is a validated authorization request waiting for consent
// and login.
type pendingRequest struct {
	ClientID      string   `json:"client_id"`
	RedirectURI   string   `json:"redirect_uri"`
	State         string   `json:"state,omitempty"`
	CodeChallenge string   `json:"code_challenge"`
	Nonce         string   `json:"nonce,omitempty"`
	Resource      string   `json:"resource"`
	Scopes        []string `json:"scopes,omitempty"`
	// Browser is the hash of the browser cookie the request is bound to.
	Browser string `json:"browser"`
	CSRF    string `json:"csrf"`
}

// upstreamLogin is one login at the upstream provider, keyed by its state.
type upstreamLogin struct {
	Request  pendingRequest `json:"request"`
	Verifier string         `json:"verifier,omitempty"`
	Nonce    string         `json:"nonce,omitempty"`
}

// authorizationCode is what an authorization code stands for.
type authorizationCode struct {
	Request pendingRequest `json:"request"`
	User    userInfo       `json:"user"`
	// IssuedAt (Unix nanoseconds) tells a code issued before a revocation
	// of its user or client from one issued after (see revokeMark).
	IssuedAt int64 `json:"issued_at"`
}

// userInfo is the identity a grant carries, namespaced by upstream: what
// the tokens say about the user, and what the allow and grant_scope rules
// look at, as of the login, so that every refresh can apply the rules
// again.
type userInfo struct {
	// Subject is "<provider>:<the provider's stable id>".
	Subject  string `json:"sub"`
	Username string `json:"username,omitempty"`
	// Email is set only when the provider vouches for it.
	Email   string `json:"email,omitempty"`
	Name    string `json:"name,omitempty"`
	Picture string `json:"picture,omitempty"`
	// AuthTime is when the user logged in (Unix seconds).
	AuthTime int64 `json:"auth_time,omitempty"`
	// HostedDomain is the Google Workspace domain of the account.
	HostedDomain string `json:"hd,omitempty"`
	// Orgs are the user's GitHub organizations.
	Orgs []string `json:"orgs,omitempty"`
	// LoginPinned says the GitHub login Username is bound to this
	// Subject (see AuthServer.pinLogin), so rules naming it may match.
	LoginPinned bool `json:"login_pinned,omitempty"`
	// Upstream is the AuthServer.UpstreamIdentity that vouched for the user.
	Upstream string `json:"upstream,omitempty"`
}

// usedCode remembers what a redeemed code issued, to revoke it on replay.
type usedCode struct {
	ClientID      string  `json:"client_id"`
	CodeChallenge string  `json:"code_challenge"`
	GrantID       string  `json:"grant_id,omitempty"`
	AccessToken   tokenID `json:"access_token"`
}

// tokenID identifies an issued access token, to deny it before it expires.
type tokenID struct {
	ID        string `json:"jti"`
	ExpiresAt int64  `json:"exp"`
}

// grant is a refresh-token family: one user's authorization of one client
// for one resource.
type grant struct {
	ID       string `json:"id"`
	ClientID string `json:"client_id"`
	// ClientAuth is the method the client authenticated with when the
	// grant was made; every refresh must authenticate at least as well.
	ClientAuth string   `json:"client_auth,omitempty"`
	User       userInfo `json:"user"`
	Resource   string   `json:"resource"`
	Scopes     []string `json:"scopes,omitempty"`
	// RefreshHash is the SHA-256 of the current refresh token.
	RefreshHash string `json:"refresh_hash"`
	// PreviousHash is the refresh token rotated away last; until
	// PreviousUntil (Unix nanoseconds) it yields Successor, the response
	// that rotated it, sealed with a key derived from it.
	PreviousHash  string `json:"previous_hash,omitempty"`
	PreviousUntil int64  `json:"previous_until,omitempty"`
	Successor     []byte `json:"successor,omitempty"`
	// AccessTokenIDs are the grant's access tokens that have not expired.
	AccessTokenIDs []tokenID `json:"access_tokens,omitempty"`
	CreatedAt      int64     `json:"created_at"`
	ExpiresAt      int64     `json:"expires_at"`
	// Revoked marks a grant being revoked (see revokeGrant): it refreshes
	// nothing any more.
	Revoked bool `json:"revoked,omitempty"`
}

// Storage key prefixes.
const (
	keyClient   = "client/"
	keyRequest  = "request/"
	keyLogin    = "login/"
	keyCode     = "code/"
	keyUsedCode = "used-code/"
	keyGrant    = "grant/"
	keyRefresh  = "refresh/"
	keyDenied   = "denied-jti/"
	keyConsent  = "consent/"
	// keyRegistrations counts registrations per hour, from all sources.
	keyRegistrations = "registrations/"
	// Every live access token is indexed by its user and by its client,
	// so that revoking either finds the tokens no grant records.
	keyTokenOfUser   = "token-of-user/"
	keyTokenOfClient = "token-of-client/"
	// A revocation of all of a user's or client's tokens leaves a mark
	// that code redemptions running meanwhile notice (see revokeMark).
	keyRevokedUser   = "revoked-user/"
	keyRevokedClient = "revoked-client/"
	// keyBlockedClient holds the clients an operator blocked, by the hash
	// of their client_id; metadata-document clients have no record to
	// delete, so they are kept out this way. It never expires.
	keyBlockedClient = "blocked-client/"
	// keyLoginPin binds a GitHub login (lowercased) to the subject that
	// first logged in with it; it never expires.
	keyLoginPin = "login-pin/github/"
)

// ttlUntil is the ttl of a record that must be gone at the Unix time
// deadline, and false once the deadline has passed: such a record is not
// written at all, since a store keeps one with a ttl of zero forever.
func ttlUntil(deadline int64) (time.Duration, bool) {
	ttl := time.Until(time.Unix(deadline, 0))
	return ttl, ttl > 0
}

func (a *AuthServer) getJSON(ctx context.Context, key string, v any) error {
	buf, err := a.Store.Get(ctx, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(buf, v)
}

func (a *AuthServer) putJSON(ctx context.Context, key string, v any, ttl time.Duration) error {
	buf, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return a.Store.Put(ctx, key, buf, ttl)
}

func (a *AuthServer) takeJSON(ctx context.Context, key string, v any) error {
	buf, err := a.Store.Take(ctx, key)
	if err != nil {
		return err
	}
	return json.Unmarshal(buf, v)
}

// errUnknownClient is returned for a client_id that names no client;
// errBlockedClient, which is one, for a client an operator blocked.
var (
	errUnknownClient = errors.New("unknown client")
	errBlockedClient = fmt.Errorf("%w: blocked by the operator", errUnknownClient)
)

// client returns a registered client, or the client described by the
// metadata document its client_id points to, unless an operator blocked
// it (see Admin.DeleteClient).
func (a *AuthServer) client(ctx context.Context, clientID string) (*clients.Client, error) {
	if clientID == "" || len(clientID) > 2048 {
		return nil, errUnknownClient
	}
	switch _, err := a.Store.Get(ctx, blockedClientKey(clientID)); {
	case err == nil:
		return nil, errBlockedClient
	case !errors.Is(err, storage.ErrNotFound):
		return nil, err
	}
	if clients.IsMetadataURL(clientID) {
		if a.Metadata == nil {
			return nil, errUnknownClient
		}
		c, err := a.Metadata.Client(ctx, clientID)
		if err != nil {
			return nil, fmt.Errorf("client metadata document: %w", err)
		}
		return c, nil
	}
	var c clients.Client
	if err := a.getJSON(ctx, keyClient+clientID, &c); err != nil {
		if errors.Is(err, storage.ErrNotFound) {
			return nil, errUnknownClient
		}
		return nil, err
	}
	return &c, nil
}

// markClientUsed keeps a registered client for good once it obtained a
// token: clients that never finish a login expire, used ones never do.
func (a *AuthServer) markClientUsed(ctx context.Context, c *clients.Client) error {
	if c.Used || c.Metadata {
		return nil
	}
	c.Used = true
	return a.putJSON(ctx, keyClient+c.ClientID, c, 0)
}
