package authserver

import (
	"fmt"
	"net"
	"net/url"
	"strings"
)

// CanonicalIssuer checks an issuer identifier (RFC 8414 section 2: https, no
// query or fragment; http is allowed only for loopback hosts, for local
// development) and returns it in canonical form: lower-case scheme and
// host, no default port, no trailing slash.
func CanonicalIssuer(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("issuer %q is not an absolute URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return "", fmt.Errorf("issuer %q must not have a query, fragment or user info", raw)
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	switch {
	case scheme == "https":
	case scheme == "http" && IsLoopbackHost(host):
	case scheme == "http":
		return "", fmt.Errorf("issuer %q must use https (http is only for loopback hosts)", raw)
	default:
		return "", fmt.Errorf("issuer %q must be an https URL", raw)
	}
	port := u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	if port != "" {
		host += ":" + port
	}
	return scheme + "://" + host + strings.TrimRight(u.EscapedPath(), "/"), nil
}

// IsLoopbackHost reports whether host names this machine.
func IsLoopbackHost(host string) bool {
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// issuerPath is the path of a canonical issuer, "" for an origin.
func issuerPath(issuer string) string {
	u, _ := url.Parse(issuer)
	return u.Path
}

// originOf is the origin (scheme and host) of a canonical issuer.
func originOf(issuer string) string {
	u, _ := url.Parse(issuer)
	return u.Scheme + "://" + u.Host
}
