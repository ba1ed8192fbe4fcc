package gate

import (
	"net/http"
	"slices"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// Headers a browser MCP client sends and must be allowed to send, and the
// response headers it must be able to read (the MCP transports' and RFC
// 9728's), listed once for every endpoint.
const (
	corsAllowHeaders  = "Authorization, DPoP, Content-Type, Accept, Mcp-Protocol-Version, Mcp-Session-Id, Mcp-Method, Mcp-Name, Last-Event-ID"
	corsExposeHeaders = "WWW-Authenticate, DPoP-Nonce, Mcp-Session-Id, Mcp-Protocol-Version"
	corsAllowMethods  = "GET, POST, DELETE, OPTIONS"
)

// CORS decides which browser origins may call the site, its protected
// resources and its authorization server's endpoints alike: the MCP
// transports require refusing unknown origins (DNS rebinding).
type CORS struct {
	// AllowedOrigins limits the browser origins that may call the site;
	// empty allows any origin.
	AllowedOrigins []string
	// Navigated, if set, reports the paths of pages that browsers navigate
	// to rather than scripts read (the authorization server's), which get
	// no CORS headers and are never refused for their origin.
	Navigated func(path string) bool
}

// IsPreflight reports whether r is a CORS preflight request.
func IsPreflight(r *http.Request) bool {
	return r.Method == http.MethodOptions && r.Header.Get("Origin") != "" &&
		r.Header.Get("Access-Control-Request-Method") != ""
}

// Allow adds the CORS response headers for r's origin. It reports false if
// the origin is not allowed, in which case the caller answers 403.
func (c *CORS) Allow(w http.ResponseWriter, r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true // not a browser request
	}
	if c.Navigated != nil && c.Navigated(r.URL.Path) {
		// The authorization pages are navigated to, never read by scripts
		// (OAuth 2.1 section 3.1: no CORS at the authorization endpoint),
		// and their forms post from this server's own origin.
		return true
	}
	if len(c.AllowedOrigins) > 0 && !slices.Contains(c.AllowedOrigins, origin) {
		return false
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", origin)
	h.Add("Vary", "Origin")
	h.Set("Access-Control-Expose-Headers", corsExposeHeaders)
	return true
}

// ServePreflight answers a CORS preflight without asking for a token:
// browsers never send credentials on a preflight.
func (c *CORS) ServePreflight(w http.ResponseWriter, r *http.Request) {
	if !c.Allow(w, r) {
		oauth.WriteError(w, nil, oauth.NewError(http.StatusForbidden, oauth.InvalidRequest, "origin not allowed"))
		return
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Methods", corsAllowMethods)
	h.Set("Access-Control-Allow-Headers", corsAllowHeaders)
	h.Set("Access-Control-Max-Age", "600")
	w.WriteHeader(http.StatusNoContent)
}
