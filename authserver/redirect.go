package authserver

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// redirectWithParams sends the browser to uri with params added to its
// query, keeping any query the registered URI already has (OAuth 2.1
// section 2.3.1). Every authorization response carries iss (RFC 9207).
func redirectWithParams(w http.ResponseWriter, r *http.Request, issuer, uri string, params url.Values) {
	w.Header().Set("Cache-Control", "no-store")
	// After a form POST (consent, login), 303 makes sure the browser does
	// not resend the form to the client (OAuth 2.1 section 7.5.3).
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, responseURL(issuer, uri, params), status)
}

// responseURL is uri with the authorization response params added.
func responseURL(issuer, uri string, params url.Values) string {
	params.Set("iss", issuer)
	return clients.ResponseURL(uri, params)
}

// redirectError ends an authorization request with e at the client's
// validated redirect URI (OAuth 2.1 section 4.1.2.1); e's status is not sent.
func redirectError(w http.ResponseWriter, r *http.Request, issuer, redirectURI, state string, e *oauth.Error) {
	redirectWithParams(w, r, issuer, redirectURI, e.RedirectParams(state))
}

// randomToken returns 256 random bits, base64url-encoded: codes, refresh
// tokens, states and CSRF tokens.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}
