// Package handlers implements the authorization server's endpoints and the
// bearer-token gate as plain net/http code. The root package adapts them to
// Caddy; nothing here knows about Caddy.
package handlers

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Resource is one protected resource (RFC 9728): an MCP endpoint on the site.
type Resource struct {
	// URL is the canonical resource identifier, the exact "aud" of its tokens.
	URL string
	// Path is the URL path that the resource covers, "" for the whole origin.
	Path string
	// Scopes are the scopes advertised for the resource and asked for in
	// challenges when a route requires nothing more specific.
	Scopes []string
	// MetadataURL is the absolute URL of the resource's metadata document.
	MetadataURL string
	// metadataPath is MetadataURL's path, where the document is served.
	metadataPath string
}

// TokenVerifier checks access tokens for a resource; errors for bad tokens
// are *tokens.InvalidTokenError.
type TokenVerifier interface {
	Verify(ctx context.Context, token, audience string) (*tokens.AccessClaims, error)
}

// ScopeRule requires scopes for requests whose path matches Pattern.
type ScopeRule struct {
	// Pattern is a path, or a path prefix ending in "*".
	Pattern string
	Scopes  []string
}

func (r ScopeRule) matches(path string) bool {
	if prefix, ok := strings.CutSuffix(r.Pattern, "*"); ok {
		return strings.HasPrefix(path, prefix)
	}
	return path == r.Pattern
}

// Site is one authorization server with the resources it protects on its
// own origin.
type Site struct {
	Issuer string
	// Realm is the realm of bearer challenges.
	Realm string
	// Resources in declaration order; the first is the default resource.
	Resources []*Resource
	// ScopeRules are checked in order; every matching rule's scopes are needed.
	ScopeRules []ScopeRule
	// ToolScopes maps MCP tool names to the scopes a tools/call needs.
	ToolScopes map[string][]string
	// ScopeIncludes maps a broad scope to the narrower ones it implies
	// (admin includes mcp:write), so a token with the broad scope meets
	// a requirement for a narrow one (MCP 2026-07-28 step-up rules).
	ScopeIncludes map[string][]string
	// AllowedOrigins limits the browser origins that may call the site;
	// empty allows any origin.
	AllowedOrigins []string
	Ring           *tokens.KeyRing
	Verifier       TokenVerifier
	// AS is the authorization server; nil when tokens come from an
	// external one.
	AS *AuthServer
	// AuthorizationServer is the issuer of tokens: Issuer, or the
	// external authorization server.
	AuthorizationServer string

	issuerPath string
	origin     string
}

// SiteConfig is what NewSite builds a Site from.
type SiteConfig struct {
	Issuer string
	Realm  string
	// Resources are the protected resources; none means the whole origin
	// is one resource, without scopes.
	Resources      []ResourceConfig
	ScopeRules     []ScopeRule
	ToolScopes     map[string][]string
	ScopeIncludes  map[string][]string
	AllowedOrigins []string
	Ring           *tokens.KeyRing
	AS             *AuthServer
	// External, when set, is the external authorization server whose
	// tokens the site accepts; it then serves no authorization endpoints.
	External *tokens.RemoteVerifier
	// ExternalIssuer is External's issuer identifier.
	ExternalIssuer string
}

// ResourceConfig declares a protected resource.
type ResourceConfig struct {
	// Path is the resource's URL path; "" or "/" is the whole origin.
	Path   string
	Scopes []string
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
		ScopeRules:     cfg.ScopeRules,
		ToolScopes:     cfg.ToolScopes,
		ScopeIncludes:  cfg.ScopeIncludes,
		AllowedOrigins: cfg.AllowedOrigins,
		Ring:           cfg.Ring,
		AS:             cfg.AS,
		issuerPath:     u.Path,
		origin:         u.Scheme + "://" + u.Host,
	}
	if s.Realm == "" {
		s.Realm = "mcp"
	}
	resources := cfg.Resources
	if len(resources) == 0 {
		resources = []ResourceConfig{{}}
	}
	seen := map[string]bool{}
	for _, rc := range resources {
		p, err := cleanResourcePath(rc.Path)
		if err != nil {
			return nil, err
		}
		if seen[p] {
			return nil, fmt.Errorf("resource %q declared twice", p)
		}
		seen[p] = true
		wellKnown := "/.well-known/oauth-protected-resource" + p
		s.Resources = append(s.Resources, &Resource{
			URL:          s.origin + p,
			Path:         p,
			Scopes:       rc.Scopes,
			MetadataURL:  s.origin + wellKnown,
			metadataPath: wellKnown,
		})
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

func cleanResourcePath(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#*{} ") {
		return "", fmt.Errorf("resource path %q must be a plain absolute path such as /mcp", p)
	}
	if strings.Contains(p, "/.well-known") {
		return "", errors.New("resource path must not be under /.well-known")
	}
	return strings.TrimRight(p, "/"), nil
}

// ResourceFor returns the resource that covers a (cleaned) request path:
// the one with the longest path that equals it or is a whole-segment prefix
// of it, else the default (first declared) resource, so nothing is left
// unguarded.
func (s *Site) ResourceFor(path string) *Resource {
	var best *Resource
	for _, r := range s.Resources {
		if covers(r.Path, path) && (best == nil || len(r.Path) > len(best.Path)) {
			best = r
		}
	}
	if best == nil {
		return s.Resources[0]
	}
	return best
}

func covers(prefix, path string) bool {
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// requiredScopes returns the scopes a request to path needs.
func (s *Site) requiredScopes(path string) []string {
	var need []string
	for _, rule := range s.ScopeRules {
		if rule.matches(path) {
			for _, sc := range rule.Scopes {
				if !slices.Contains(need, sc) {
					need = append(need, sc)
				}
			}
		}
	}
	return need
}

// originAllowed reports whether a browser origin may call the site.
func (s *Site) originAllowed(origin string) bool {
	return len(s.AllowedOrigins) == 0 || slices.Contains(s.AllowedOrigins, origin)
}
