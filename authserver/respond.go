package authserver

import (
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// maxBodyBytes caps every request body the authorization server reads.
const maxBodyBytes = 64 << 10

// redirectWithParams sends the browser to uri with params added to its
// query, keeping any query the registered URI already has (OAuth 2.1
// section 2.3.1). Every authorization response carries iss (RFC 9207).
func (s *Site) redirectWithParams(w http.ResponseWriter, r *http.Request, uri string, params url.Values) {
	w.Header().Set("Cache-Control", "no-store")
	// After a form POST (consent, login), 303 makes sure the browser does
	// not resend the form to the client (OAuth 2.1 section 7.5.3).
	status := http.StatusFound
	if r.Method == http.MethodPost {
		status = http.StatusSeeOther
	}
	http.Redirect(w, r, s.responseURL(uri, params), status)
}

// responseURL is uri with the authorization response params added.
func (s *Site) responseURL(uri string, params url.Values) string {
	params.Set("iss", s.Issuer)
	return clients.ResponseURL(uri, params)
}

// redirectError ends an authorization request with e at the client's
// validated redirect URI (OAuth 2.1 section 4.1.2.1); e's status is not sent.
func (s *Site) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *oauth.Error) {
	s.redirectWithParams(w, r, redirectURI, e.RedirectParams(state))
}

// randomToken returns 256 random bits, base64url-encoded: codes, refresh
// tokens, states and CSRF tokens.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// singleValues parses a form or query, refusing repeated parameters
// (OAuth 2.1 section 3.1, 3.2) other than those in repeatable, even when
// all but one of the values are empty: a parser that takes the first value
// must never read another request than this one. Empty values count as
// absent.
func singleValues(values url.Values, repeatable ...string) (map[string]string, []string, *oauth.Error) {
	out := make(map[string]string, len(values))
	var repeated []string
	for k, vs := range values {
		if slices.Contains(repeatable, k) {
			for _, v := range vs {
				if v != "" {
					repeated = append(repeated, v)
				}
			}
			continue
		}
		if len(vs) > 1 {
			return nil, nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "parameter "+safeName(k)+" is repeated")
		}
		if vs[0] != "" {
			out[k] = vs[0]
		}
	}
	return out, repeated, nil
}

// safeName keeps a parameter name printable for an error description.
func safeName(s string) string {
	if len(s) > 40 {
		s = s[:40]
	}
	return strings.Map(func(r rune) rune {
		if r < 0x21 || r > 0x7e || r == '"' || r == '\\' {
			return '?'
		}
		return r
	}, s)
}
