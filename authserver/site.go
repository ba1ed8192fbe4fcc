// Package authserver implements the authorization server's endpoints as
// plain net/http code; the bearer gate is package gate. The root package adapts them to
// Caddy; nothing here knows about Caddy.
package authserver

import (
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Site is one authorization server with the resources it protects on its
// own origin.
type Site struct {
	Issuer string
	// Realm is the realm of bearer challenges.
	Realm string
	// Resources in declaration order; the first is the default resource.
	Resources gate.Resources
	// AllowedOrigins limits the browser origins that may call the site;
	// empty allows any origin.
	AllowedOrigins []string
	Ring           *tokens.KeyRing
	Verifier       gate.Verifier
	// AS is the authorization server; nil when tokens come from an
	// external one.
	AS *AuthServer
	// AuthorizationServer is the issuer of tokens: Issuer, or the
	// external authorization server.
	AuthorizationServer string

	issuerPath string
	origin     string
	// cookie is the name of the browser cookie (see cookieName).
	cookie string
}

// SiteConfig is what NewSite builds a Site from.
type SiteConfig struct {
	Issuer string
	Realm  string
	// Resources are the protected resources; none means the whole origin
	// is one resource, without scopes.
	Resources      []gate.ResourceConfig
	AllowedOrigins []string
	Ring           *tokens.KeyRing
	AS             *AuthServer
	// External, when set, is the external authorization server whose
	// tokens the site accepts; it then serves no authorization endpoints.
	External *tokens.RemoteVerifier
	// ExternalIssuer is External's issuer identifier.
	ExternalIssuer string
}

// NewSite validates cfg and derives every URL the site publishes from the
// issuer, so that metadata, challenges and tokens agree byte for byte.
func NewSite(cfg SiteConfig) (*Site, error) {
	issuer, err := CanonicalIssuer(cfg.Issuer)
	if err != nil {
		return nil, err
	}
	u, _ := url.Parse(issuer)
	s := &Site{
		Issuer:         issuer,
		Realm:          cfg.Realm,
		AllowedOrigins: cfg.AllowedOrigins,
		Ring:           cfg.Ring,
		AS:             cfg.AS,
		issuerPath:     u.Path,
		origin:         u.Scheme + "://" + u.Host,
		cookie:         cookieName(issuer),
	}
	if s.Realm == "" {
		s.Realm = "mcp"
	}
	if s.Resources, err = gate.NewResources(s.origin, cfg.Resources); err != nil {
		return nil, err
	}
	s.AuthorizationServer = issuer
	switch {
	case cfg.External != nil:
		s.Verifier, s.AuthorizationServer = cfg.External, cfg.ExternalIssuer
	case s.Ring != nil:
		s.Verifier = tokens.NewVerifier(s.Ring, issuer)
	}
	return s, nil
}

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

// originAllowed reports whether a browser origin may call the site.
func (s *Site) originAllowed(origin string) bool {
	return len(s.AllowedOrigins) == 0 || slices.Contains(s.AllowedOrigins, origin)
}
