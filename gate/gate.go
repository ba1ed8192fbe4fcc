// Package gate is the resource server: it decides whether a request may
// reach the protected MCP backend (Decide) and prepares an allowed one for
// it (Apply). It matches the request to a protected resource the way
// Caddy's path matcher reads paths, checks the bearer token with a
// Verifier, the scopes the path and the JSON-RPC body need, and that the
// MCP session belongs to the token's user. It knows nothing of Caddy and
// of how tokens are issued: the authorization server is reached only
// through the small interfaces below.
package gate

import (
	"context"
	"errors"
	"net/http"
	"path"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Verifier checks access tokens for a resource; errors for bad tokens
// are *tokens.InvalidTokenError, any other error means the token could not
// be checked.
type Verifier interface {
	Verify(ctx context.Context, token, audience string) (*tokens.AccessClaims, error)
}

// Revocations tells whether a token, by its jti, was revoked before it
// expired.
type Revocations interface {
	Revoked(jti string) (bool, error)
}

// Config is what New builds a Gate from.
type Config struct {
	// Realm is the realm of bearer challenges.
	Realm string
	// Resources are the protected resources (see NewResources).
	Resources Resources
	// AuthorizationServer is the issuer of the tokens the resources
	// accept, named in their metadata: this site's own authorization
	// server, or the external one.
	AuthorizationServer string
	// ScopeRules require scopes for request paths; every matching
	// rule's scopes are needed.
	ScopeRules []ScopeRule
	// ToolScopes maps MCP tool names to the scopes a tools/call needs.
	ToolScopes map[string][]string
	// ScopeIncludes maps a broad scope to the narrower ones it implies
	// (admin includes mcp:write), so a token with the broad scope meets
	// a requirement for a narrow one (MCP 2026-07-28 step-up rules).
	ScopeIncludes map[string][]string
	Verifier      Verifier
	// Revocations, if set, refuses revoked tokens; nil when tokens come
	// from an external authorization server.
	Revocations Revocations
	// Sessions, if set, binds MCP sessions to their users (see Apply).
	Sessions Sessions
	// Identity, if set, adds an X-MCP-Identity token to allowed requests.
	Identity *IdentityTokens
	// UpstreamTokens, if set, finds the user's token at the identity
	// provider for the backend (see Gate.UpstreamToken).
	UpstreamTokens *UpstreamTokens
	// PassAuthorization leaves the client's Authorization header on
	// allowed requests; by default it is removed (no token passthrough).
	PassAuthorization bool
	// StripHeaders are removed from allowed requests, so a client cannot
	// pass off identity headers of its own.
	StripHeaders []string
	// ForeignSession, if set, is called for each request refused because
	// its MCP session belongs to another user, for metrics.
	ForeignSession func()
	// DPoP checks the proofs of DPoP-bound tokens; nil refuses them.
	DPoP *dpop.Verifier
	// RequestScheme returns the scheme the client used for r, which a
	// proof's htu names: Caddy knows which proxies to believe; nil means
	// https with TLS, else http.
	RequestScheme func(r *http.Request) string
	// Logger reports failures to bind sessions; nil logs nothing.
	Logger *zap.Logger
}

// Gate is the resource server of one site.
type Gate struct {
	cfg        Config
	scopeRules []scopeRule
	// stripHeaders are StripHeaders in canonical form, to be deleted
	// without canonicalizing them per request.
	stripHeaders []string
}

// New checks cfg's scope rules and returns the gate. Resources must hold
// at least one resource, as NewResources returns them.
func New(cfg Config) (*Gate, error) {
	if len(cfg.Resources) == 0 {
		return nil, errors.New("gate: no protected resource")
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	g := &Gate{cfg: cfg}
	for _, name := range cfg.StripHeaders {
		g.stripHeaders = append(g.stripHeaders, http.CanonicalHeaderKey(name))
	}
	for _, rule := range cfg.ScopeRules {
		compiled, err := compileScopeRule(rule)
		if err != nil {
			return nil, err
		}
		g.scopeRules = append(g.scopeRules, compiled)
	}
	return g, nil
}

// Decision is the gate's verdict on one request.
type Decision struct {
	// Claims are the verified token's claims; nil when the request is refused.
	Claims *tokens.AccessClaims
	// Resource is the protected resource the request was matched to; nil
	// when its path addresses none (Resources.For).
	Resource *Resource
	// Status is the HTTP status of a refusal: 400, 401, 403, 404, 413, 415,
	// or 503 when the token could not be checked; 0 when allowed.
	Status int
	// Challenge is the WWW-Authenticate value of a refusal.
	Challenge string
	// Code is the error code of Challenge, "" for none.
	Code oauth.ErrorCode
	// Reason says why the request was refused, for logs; never a secret.
	Reason string
	// SessionID is the request's MCP session id (Mcp-Session-Id), checked
	// for syntax; "" for none.
	SessionID string
	// Nonce, when DPoP nonces are on, is a fresh one for the client, to be
	// sent as DPoP-Nonce.
	Nonce string
}

var errAmbiguousResource = errors.New("the request path is outside every resource and as close to several of them")

// Decide decides whether r may reach the protected backend. Only the
// Authorization header is considered: a token in the query string is never
// accepted (OAuth 2.1 section 5.1), so such a request counts as anonymous.
// It may read the body of a tools/call, and restores it for the backend.
func (g *Gate) Decide(r *http.Request) Decision {
	reqPath, err := gatePath(r.URL)
	if err != nil {
		// Named in the challenge: the resource Caddy's matchers see.
		res := g.cfg.Resources.For(strings.ToLower(path.Clean("/" + r.URL.Path)))
		if res == nil {
			res = g.cfg.Resources[0]
		}
		return Decision{Resource: res, Status: http.StatusBadRequest, Reason: err.Error(),
			Challenge: g.challenge(res, oauth.InvalidRequest, err.Error(), nil, false), Code: oauth.InvalidRequest}
	}
	res := g.cfg.Resources.For(reqPath)
	if res == nil {
		// Nothing is there to authorize: no token is the right one.
		return Decision{Status: http.StatusNotFound, Reason: errAmbiguousResource.Error()}
	}
	need := g.requiredScopes(reqPath)
	d := Decision{Resource: res}
	dpopScheme := false

	refuse := func(status int, code oauth.ErrorCode, description string, scopes []string) Decision {
		d.Status, d.Reason, d.Code = status, description, code
		d.Challenge = g.challenge(res, code, description, scopes, dpopScheme)
		return d
	}
	challengeScopes := need
	if len(challengeScopes) == 0 {
		challengeScopes = res.Scopes
	}

	if d.SessionID, err = sessionID(r.Header); err != nil {
		return refuse(http.StatusBadRequest, oauth.InvalidRequest, err.Error(), nil)
	}
	values := r.Header["Authorization"]
	if len(values) > 1 {
		return refuse(http.StatusBadRequest, oauth.InvalidRequest, "more than one Authorization header", nil)
	}
	token, ok := "", false
	if len(values) == 1 {
		if token, ok = BearerToken(values[0]); !ok {
			token, ok = DPoPToken(values[0])
			dpopScheme = ok
		}
	}
	if !ok {
		return refuse(http.StatusUnauthorized, "", "no bearer token", challengeScopes)
	}
	if r.URL.RawQuery != "" && r.URL.Query().Has("access_token") {
		return refuse(http.StatusBadRequest, oauth.InvalidRequest, "token sent in more than one way", nil)
	}
	if !isToken68(token) {
		return refuse(http.StatusUnauthorized, oauth.InvalidToken, "token is malformed", challengeScopes)
	}
	claims, err := g.cfg.Verifier.Verify(r.Context(), token, res.URL)
	if err != nil {
		var invalid *tokens.InvalidTokenError
		if !errors.As(err, &invalid) {
			// The authorization server could not be asked: not the client's fault.
			d.Status, d.Reason = http.StatusServiceUnavailable, "token could not be verified: "+err.Error()
			return d
		}
		return refuse(http.StatusUnauthorized, oauth.InvalidToken, invalid.Reason, challengeScopes)
	}
	if g.cfg.Revocations != nil {
		switch revoked, err := g.cfg.Revocations.Revoked(claims.JWTID); {
		case err != nil:
			// Fail closed: a revoked token must not pass because the store is out of reach.
			d.Status, d.Reason = http.StatusServiceUnavailable, "checking revocations: "+err.Error()
			return d
		case revoked:
			return refuse(http.StatusUnauthorized, oauth.InvalidToken, "token has been revoked", challengeScopes)
		}
	}
	if refused := g.checkBinding(r, &d, res, token, claims, dpopScheme); refused != nil {
		if refused.code == "" { // not the client's fault: no challenge
			d.Status, d.Reason = refused.status, refused.reason
			return d
		}
		return refuse(refused.status, refused.code, refused.reason, challengeScopes)
	}
	have := g.effectiveScopes(claims.Scopes())
	if missing := missingScopes(have, need); len(missing) > 0 {
		return refuse(http.StatusForbidden, oauth.InsufficientScope, "token lacks a required scope", need)
	}
	toolNeed, err := g.toolScopesNeeded(r)
	switch {
	case errors.Is(err, errBodyTooLarge):
		d.Status, d.Reason = http.StatusRequestEntityTooLarge, err.Error()
		return d
	case errors.Is(err, errUnsupportedBody):
		// RFC 9110 section 15.5.16: the media type or content coding is
		// the problem, not the token, so no challenge.
		d.Status, d.Reason = http.StatusUnsupportedMediaType, err.Error()
		return d
	case err != nil:
		return refuse(http.StatusBadRequest, oauth.InvalidRequest, err.Error(), nil)
	}
	if missing := missingScopes(have, toolNeed); len(missing) > 0 {
		// All scopes the call needs, in one challenge, so the client can step up.
		return refuse(http.StatusForbidden, oauth.InsufficientScope, "the tool needs a scope the token lacks", Union(need, toolNeed))
	}
	d.Claims = claims
	return d
}
