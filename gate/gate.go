package gate

import (
	"errors"
	"net/http"
	"path"
	"slices"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Decision is the gate's verdict on one request.
type Decision struct {
	// Claims are the verified token's claims; nil when the request is refused.
	Claims *tokens.AccessClaims
	// Resource is the protected resource the request was matched to; nil
	// when its path addresses none (ResourceFor).
	Resource *Resource
	// Status is the HTTP status of a refusal: 400, 401, 403, 404, 413, 415,
	// or 503
	// when the token could not be checked; 0 when allowed.
	Status int
	// Challenge is the WWW-Authenticate value of a refusal.
	Challenge string
	// Reason says why the request was refused, for logs; never a secret.
	Reason string
	// SessionID is the request's MCP session id (Mcp-Session-Id), checked
	// for syntax; "" for none.
	SessionID string
}

var errAmbiguousResource = errors.New("the request path is outside every resource and as close to several of them")

// Authorize decides whether r may reach the protected backend. Only the
// Authorization header is considered: a token in the query string is never
// accepted (OAuth 2.1 section 5.1), so such a request counts as anonymous.
func (s *Site) Authorize(r *http.Request) Decision {
	reqPath, err := gatePath(r.URL)
	if err != nil {
		// Named in the challenge: the resource Caddy's matchers see.
		res := s.ResourceFor(strings.ToLower(path.Clean("/" + r.URL.Path)))
		if res == nil {
			res = s.Resources[0]
		}
		return Decision{Resource: res, Status: http.StatusBadRequest, Reason: err.Error(),
			Challenge: s.challenge(res, oauth.InvalidRequest, err.Error(), nil)}
	}
	res := s.ResourceFor(reqPath)
	if res == nil {
		// Nothing is there to authorize: no token is the right one.
		return Decision{Status: http.StatusNotFound, Reason: errAmbiguousResource.Error()}
	}
	need := s.requiredScopes(reqPath)
	d := Decision{Resource: res}

	refuse := func(status int, code oauth.ErrorCode, description string, scopes []string) Decision {
		d.Status, d.Reason = status, description
		d.Challenge = s.challenge(res, code, description, scopes)
		return d
	}
	challengeScopes := need
	if len(challengeScopes) == 0 {
		challengeScopes = res.Scopes
	}

	if d.SessionID, err = sessionID(r.Header); err != nil {
		return refuse(http.StatusBadRequest, oauth.InvalidRequest, err.Error(), nil)
	}
	values := r.Header.Values("Authorization")
	if len(values) > 1 {
		return refuse(http.StatusBadRequest, oauth.InvalidRequest, "more than one Authorization header", nil)
	}
	token, ok := "", false
	if len(values) == 1 {
		token, ok = bearerToken(values[0])
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
	claims, err := s.Verifier.Verify(r.Context(), token, res.URL)
	if err != nil {
		var invalid *tokens.InvalidTokenError
		if !errors.As(err, &invalid) {
			// The authorization server could not be asked: not the client's fault.
			d.Status, d.Reason = http.StatusServiceUnavailable, "token could not be verified: "+err.Error()
			return d
		}
		return refuse(http.StatusUnauthorized, oauth.InvalidToken, invalid.Reason, challengeScopes)
	}
	if s.AS != nil {
		switch revoked, err := s.AS.State.Revocations.Revoked(claims.JWTID); {
		case err != nil:
			// Fail closed: a revoked token must not pass because the store is out of reach.
			d.Status, d.Reason = http.StatusServiceUnavailable, "checking revocations: "+err.Error()
			return d
		case revoked:
			return refuse(http.StatusUnauthorized, oauth.InvalidToken, "token has been revoked", challengeScopes)
		}
	}
	have := s.effectiveScopes(claims.Scopes())
	if missing := missingScopes(have, need); len(missing) > 0 {
		return refuse(http.StatusForbidden, oauth.InsufficientScope, "token lacks a required scope", need)
	}
	toolNeed, err := s.toolScopesNeeded(r)
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
		return refuse(http.StatusForbidden, oauth.InsufficientScope, "the tool needs a scope the token lacks", union(need, toolNeed))
	}
	d.Claims = claims
	return d
}

// bearerToken extracts the token of a "Bearer" Authorization header; the
// scheme is case-insensitive (RFC 9110 section 11.1).
func bearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// isToken68 reports whether s has the b64token syntax of RFC 6750 section 2.1.
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" || len(s) > tokens.MaxTokenLength {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("-._~+/", c) >= 0) {
			return false
		}
	}
	return true
}

func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// effectiveScopes adds to granted every scope a granted one includes,
// following ScopeIncludes transitively.
func (s *Site) effectiveScopes(granted []string) []string {
	if len(s.ScopeIncludes) == 0 {
		return granted
	}
	have := slices.Clone(granted)
	for i := 0; i < len(have); i++ { // have grows while it is walked
		for _, implied := range s.ScopeIncludes[have[i]] {
			if !slices.Contains(have, implied) {
				have = append(have, implied)
			}
		}
	}
	return have
}

func missingScopes(have, need []string) []string {
	var missing []string
	for _, sc := range need {
		if !slices.Contains(have, sc) {
			missing = append(missing, sc)
		}
	}
	return missing
}

// challenge is the Bearer challenge of a refusal at res (RFC 6750 section
// 3, RFC 9728 section 5.1). A request without credentials gets no error
// code, as RFC 6750 asks.
func (s *Site) challenge(res *Resource, code oauth.ErrorCode, description string, scopes []string) string {
	return oauth.BearerChallenge{
		Realm: s.Realm, Code: code, Description: description,
		ResourceMetadata: res.MetadataURL, Scopes: scopes,
	}.String()
}
