package gate

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// ErrForeignSession refuses a request in an MCP session that another user
// created; it is answered 404, as if the session did not exist, so the
// client starts a new one.
var ErrForeignSession = errors.New("mcp_auth: MCP session belongs to another user")

// ApplyError is why Apply stopped a request the token allowed.
type ApplyError struct {
	// Status is the HTTP status to answer: 404 for ErrForeignSession, 401
	// for ErrUpstreamTokenGone, 503 when the session store, the signing
	// keys or the identity provider are out of reach.
	Status int
	// Err is the cause, for logs.
	Err error
	// Challenge is the WWW-Authenticate value of a 401.
	Challenge string
}

func (e *ApplyError) Error() string { return e.Err.Error() }
func (e *ApplyError) Unwrap() error { return e.Err }

// Apply prepares a request that Decide allowed (d.Claims is set) for the
// backend: it removes the client's Authorization and DPoP headers (unless
// PassAuthorization) and the StripHeaders, checks that the request's MCP
// session belongs to the token's user, and adds the identity token. It
// returns the response writer to give the backend, which binds the session
// its response creates, or claims the unbound one the request named, to
// the user. Errors are *ApplyError.
func (g *Gate) Apply(w http.ResponseWriter, r *http.Request, d Decision) (http.ResponseWriter, error) {
	if !g.cfg.PassAuthorization {
		// The proof goes with the token: it is made for this hop only.
		delete(r.Header, "Authorization")
		delete(r.Header, "Dpop")
	}
	for _, name := range g.stripHeaders {
		delete(r.Header, name)
	}
	unbound := false
	if g.cfg.Sessions != nil && d.SessionID != "" {
		owned, isUnbound, err := g.cfg.Sessions.OwnedBy(r.Context(), d.SessionID, d.Claims.Subject)
		switch {
		case err != nil:
			return nil, &ApplyError{http.StatusServiceUnavailable, fmt.Errorf("checking the MCP session: %w", err), ""}
		case !owned:
			g.countForeignSession()
			return nil, &ApplyError{http.StatusNotFound, ErrForeignSession, ""}
		}
		unbound = isUnbound
	}
	if g.cfg.Identity != nil {
		tok, err := g.cfg.Identity.For(d.Claims)
		if err != nil {
			return nil, &ApplyError{http.StatusServiceUnavailable, fmt.Errorf("signing identity token: %w", err), ""}
		}
		r.Header.Set("X-MCP-Identity", tok)
	}
	if g.cfg.Sessions != nil && (d.SessionID == "" || unbound) {
		// A new session may start, or an unbound one be claimed: bind it to
		// this user when the backend names or accepts it.
		w = &sessionBinder{ResponseWriter: w, gate: g, r: r, claim: d.SessionID, sub: d.Claims.Subject}
	}
	return w, nil
}

// UpstreamToken returns the user's token at the identity provider for
// the backend of a request Decide allowed, or "" when the site does not
// keep them. Errors are *ApplyError: 401 with an invalid_token challenge
// when the token is gone, so the client sends the user through login
// again.
func (g *Gate) UpstreamToken(r *http.Request, d Decision) (string, error) {
	if g.cfg.UpstreamTokens == nil {
		return "", nil
	}
	tok, err := g.cfg.UpstreamTokens.For(r.Context(), d.Claims)
	switch {
	case errors.Is(err, ErrUpstreamTokenGone):
		scopes := d.Resource.Scopes
		return "", &ApplyError{http.StatusUnauthorized, err, g.challenge(d.Resource, oauth.InvalidToken, "the login at the identity provider has ended; log in again", scopes, d.Claims.Confirmation.Thumbprint() != "")}
	case err != nil:
		return "", &ApplyError{http.StatusServiceUnavailable, err, ""}
	}
	return tok, nil
}

func (g *Gate) countForeignSession() {
	if g.cfg.ForeignSession != nil {
		g.cfg.ForeignSession()
	}
}
