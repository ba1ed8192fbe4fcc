package clients

import (
	"errors"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
)

// MaxRedirectURILength bounds a registered or requested redirect URI. Real
// callbacks are well under 200 bytes; the cap keeps stored records and
// consent pages small.
const MaxRedirectURILength = 2000

// forbiddenSchemes cannot be a redirect target: they run script, read local
// data or are not navigations the authorization response can ride on.
var forbiddenSchemes = map[string]bool{
	"javascript":  true,
	"vbscript":    true,
	"data":        true,
	"file":        true,
	"about":       true,
	"blob":        true,
	"filesystem":  true,
	"view-source": true,
	"ws":          true,
	"wss":         true,
}

// ValidateRedirectURI checks a redirect URI a client registers, through DCR
// or in a metadata document (OAuth 2.1 section 2.3, RFC 8252 section 7).
// Accepted are https URIs with a host, http URIs on a loopback host
// (127.0.0.0/8, [::1], localhost) and private-use schemes such as
// cursor://… or com.example.app:/cb. The error text is safe to return to the
// client: it names the problem, never the URI.
func ValidateRedirectURI(uri string) error {
	switch {
	case uri == "":
		return errors.New("redirect URI is empty")
	case len(uri) > MaxRedirectURILength:
		return errors.New("redirect URI is too long")
	case !isURIChars(uri):
		return errors.New("redirect URI contains characters not allowed in a URI")
	case strings.Contains(uri, "#"):
		// OAuth 2.1 section 2.3.1: "MUST NOT include a fragment component".
		// Checked on the raw string: url.Parse drops an empty fragment.
		return errors.New("redirect URI must not have a fragment")
	case strings.Contains(uri, "*"):
		// Registered URIs are compared as strings; a "*" would only ever be
		// someone hoping for pattern matching.
		return errors.New("redirect URI must not contain a wildcard")
	}
	u, err := url.Parse(uri)
	if err != nil {
		return errors.New("redirect URI is not a valid URI")
	}
	if u.Scheme == "" {
		return errors.New("redirect URI must be absolute")
	}
	if forbiddenSchemes[u.Scheme] {
		return errors.New("redirect URI scheme is not allowed")
	}
	if u.User != nil {
		return errors.New("redirect URI must not contain user information")
	}
	switch u.Scheme {
	case "https":
		if u.Opaque != "" || u.Hostname() == "" {
			return errors.New("https redirect URI must have a host")
		}
	case "http":
		if u.Opaque != "" || u.Hostname() == "" {
			return errors.New("http redirect URI must have a host")
		}
		// MCP: "Redirect URIs MUST be either localhost URLs or HTTPS URLs";
		// RFC 8252 section 8.3 only exempts the loopback interface.
		if !isLoopbackHost(u.Hostname()) {
			return errors.New("http redirect URI is only allowed for loopback hosts; use https")
		}
	default:
		// Private-use scheme (RFC 8252 section 7.1). It needs a path:
		// "com.example.app:/cb" or "cursor://host/cb", never an opaque
		// URI such as "urn:ietf:wg:oauth:2.0:oob" or "mailto:…", which no
		// browser can redirect to with a code.
		if u.Opaque != "" || (u.Host == "" && u.Path == "") {
			return errors.New("redirect URI with a private-use scheme must have a path")
		}
	}
	return nil
}

// MatchRedirectURI finds the redirect URI an authorization request may use
// and returns the URI to send the response to.
//
// Matching is by simple string comparison (OAuth 2.1 section 4.1.1), with one
// exception: for a registered http URI on a loopback host, any port is
// accepted (RFC 8252 section 7.3, OAuth 2.1 section 8.4.2), since native apps
// listen on whatever port is free. Scheme, host, path and query must still be
// identical; "localhost" and "127.0.0.1" are different hosts.
//
// If requested is empty and exactly one URI is registered, that URI is used,
// as OAuth 2.1 section 4.1.1 allows.
func MatchRedirectURI(registered []string, requested string) (string, bool) {
	if requested == "" {
		if len(registered) == 1 {
			return registered[0], true
		}
		return "", false
	}
	for _, r := range registered {
		if r == requested {
			return r, true
		}
	}
	reqHost, reqPort, reqRest, ok := splitLoopback(requested)
	if !ok || !validPort(reqPort) {
		return "", false
	}
	for _, r := range registered {
		host, _, rest, ok := splitLoopback(r)
		if ok && host == reqHost && rest == reqRest {
			return requested, true
		}
	}
	return "", false
}

// ResponseURL returns the redirect URI with the authorization response
// params appended to its query. The URI is kept byte for byte, query
// included (OAuth 2.1 section 2.3.1, RFC 6749 section 3.1.2): re-encoding
// or reordering a registered query would change a URI the client compares
// as a string. Registered URIs have no fragment; a requested one that
// matched a registered one cannot have one either.
func ResponseURL(redirectURI string, params url.Values) string {
	sep := "?"
	if _, query, ok := strings.Cut(redirectURI, "?"); ok {
		sep = "&"
		if query == "" || strings.HasSuffix(query, "&") {
			sep = ""
		}
	}
	return redirectURI + sep + params.Encode()
}

// splitLoopback splits an "http://host[:port]rest" URI on a loopback host
// into its host (as written, brackets kept), port and the rest (path, query
// and fragment, verbatim). ok is false for anything else.
func splitLoopback(uri string) (host, port, rest string, ok bool) {
	const prefix = "http://"
	if !strings.HasPrefix(uri, prefix) || strings.Contains(uri, "#") {
		return "", "", "", false
	}
	authority := uri[len(prefix):]
	if i := strings.IndexAny(authority, "/?"); i >= 0 {
		authority, rest = authority[:i], authority[i:]
	}
	if strings.Contains(authority, "@") {
		return "", "", "", false
	}
	host = authority
	if i := strings.LastIndexByte(authority, ':'); i >= 0 && !strings.HasSuffix(authority, "]") {
		host, port = authority[:i], authority[i+1:]
		if port == "" {
			return "", "", "", false
		}
	}
	name := strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if !isLoopbackHost(name) {
		return "", "", "", false
	}
	return host, port, rest, true
}

// validPort accepts an absent port or a decimal port number 1-65535.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	if len(p) > 5 {
		return false
	}
	for i := 0; i < len(p); i++ {
		if p[i] < '0' || p[i] > '9' {
			return false
		}
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// isLoopbackHost reports whether host (without brackets or port) names the
// loopback interface: "localhost", an IPv4 address in 127.0.0.0/8 in
// dotted-quad form, or ::1. IPv4-mapped and other spellings are refused, so
// that one address has one spelling.
func isLoopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	if err != nil || ip.Zone() != "" {
		return false
	}
	if ip.Is4() {
		return ip.IsLoopback()
	}
	return ip == netip.IPv6Loopback()
}

// isURIChars reports whether s holds only characters RFC 3986 allows in a
// URI (unreserved, reserved and "%"). Spaces, quotes, angle brackets and
// backslashes are out: browsers treat "\" as "/" in http(s) URLs, so a
// string compare and the browser would disagree about the target.
func isURIChars(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.IndexByte("-._~:/?#[]@!$&'()*+,;=%", c) >= 0:
		default:
			return false
		}
	}
	return true
}
