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

	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
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
	// matchPath is Path lower-cased: requests are matched the way Caddy's
	// path matcher matches them, ignoring case.
	matchPath string
}

// TokenVerifier checks access tokens for a resource; errors for bad tokens
// are *tokens.InvalidTokenError.
type TokenVerifier interface {
	Verify(ctx context.Context, token, audience string) (*tokens.AccessClaims, error)
}

// ScopeRule requires scopes for requests whose path matches Pattern.
type ScopeRule struct {
	// Pattern is a path, or a path prefix ending in "*", matched as
	// Caddy's path matcher does, ignoring case. An exact path also
	// matches with a trailing slash, which backends commonly ignore.
	Pattern string
	Scopes  []string
}

// scopeRule is a ScopeRule compiled for matching gatePath's paths.
type scopeRule struct {
	path     string // lower-cased, without the "*"
	isPrefix bool
	scopes   []string
}

func compileScopeRule(r ScopeRule) (scopeRule, error) {
	p, isPrefix := strings.CutSuffix(r.Pattern, "*")
	if strings.ContainsAny(p, "*?[]{}") {
		return scopeRule{}, fmt.Errorf("require_scope path %q: only an exact path or a prefix ending in * is supported", r.Pattern)
	}
	if err := checkPlainPath(p); err != nil {
		return scopeRule{}, fmt.Errorf("require_scope %v", err)
	}
	return scopeRule{path: strings.ToLower(p), isPrefix: isPrefix, scopes: r.Scopes}, nil
}

func (r scopeRule) matches(path string) bool {
	rest, ok := strings.CutPrefix(path, r.path)
	return ok && (r.isPrefix || rest == "" || rest == "/")
}

// Site is one authorization server with the resources it protects on its
// own origin.
type Site struct {
	Issuer string
	// Realm is the realm of bearer challenges.
	Realm string
	// Resources in declaration order; the first is the default resource.
	Resources []*Resource
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
	// Sessions holds the bindings of MCP sessions to their users; nil
	// binds no sessions.
	Sessions *state.Sessions
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
	// scopeRules are checked in order; every matching rule's scopes are needed.
	scopeRules []scopeRule
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
	// Sessions is the store every site shares, which holds the bindings
	// of MCP sessions (see state.Sessions); nil binds no sessions.
	Sessions storage.Store
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
		ToolScopes:     cfg.ToolScopes,
		ScopeIncludes:  cfg.ScopeIncludes,
		AllowedOrigins: cfg.AllowedOrigins,
		Ring:           cfg.Ring,
		AS:             cfg.AS,
		issuerPath:     u.Path,
		origin:         u.Scheme + "://" + u.Host,
		cookie:         cookieName(issuer),
	}
	if cfg.Sessions != nil {
		s.Sessions = state.NewSessions(cfg.Sessions, issuer)
	}
	if s.Realm == "" {
		s.Realm = "mcp"
	}
	for _, rule := range cfg.ScopeRules {
		compiled, err := compileScopeRule(rule)
		if err != nil {
			return nil, err
		}
		s.scopeRules = append(s.scopeRules, compiled)
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
		// Caddy routes /MCP and /mcp alike, so they are one resource.
		if seen[strings.ToLower(p)] {
			return nil, fmt.Errorf("resource %q declared twice (paths are matched ignoring case)", p)
		}
		seen[strings.ToLower(p)] = true
		wellKnown := "/.well-known/oauth-protected-resource" + p
		s.Resources = append(s.Resources, &Resource{
			URL:          s.origin + p,
			Path:         p,
			Scopes:       rc.Scopes,
			MetadataURL:  s.origin + wellKnown,
			metadataPath: wellKnown,
			matchPath:    strings.ToLower(p),
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
	if err := checkPlainPath(p); err != nil || strings.ContainsAny(p, "?#*{}[] ") {
		return "", fmt.Errorf("resource path %q must be a plain absolute path such as /mcp", p)
	}
	if strings.Contains(p, "/.well-known") {
		return "", errors.New("resource path must not be under /.well-known")
	}
	return strings.TrimRight(p, "/"), nil
}

// ResourceFor returns the resource that a request path, as gatePath
// returns it, addresses: the one with the longest path that is a prefix of
// it, the way `handle /todos/mcp*` routes /todos/mcp, /todos/mcp/x and
// /todos/mcpx alike. A path outside every resource belongs to the one it
// shares most leading segments with, since routes such as
// `handle_path /todos/*` send /todos/sse to the todos backend too; of
// several that share as many, the one whose path leads to all the others
// (/todos/mcp before /todos/mcp/admin), and none (nil) if no such one
// exists, as no token can be chosen for the path. Only a path that shares
// no segment with any resource is guarded by the default (first declared)
// resource, so nothing is left unguarded.
func (s *Site) ResourceFor(path string) *Resource {
	var best *Resource
	for _, r := range s.Resources {
		if strings.HasPrefix(path, r.matchPath) && (best == nil || len(r.matchPath) > len(best.matchPath)) {
			best = r
		}
	}
	if best != nil {
		return best
	}
	most := 0
	for _, r := range s.Resources {
		if n := sharedSegments(path, r.matchPath); n > most || n == most && best != nil && len(r.matchPath) < len(best.matchPath) {
			best, most = r, n
		}
	}
	if most == 0 {
		return s.Resources[0]
	}
	for _, r := range s.Resources {
		if !covers(best.matchPath, r.matchPath) && sharedSegments(path, r.matchPath) == most {
			return nil
		}
	}
	return best
}

// sharedSegments counts the leading path segments a and b have in common.
func sharedSegments(a, b string) int {
	a, b = strings.TrimPrefix(a, "/"), strings.TrimPrefix(b, "/")
	n := 0
	for a != "" && b != "" {
		var segA, segB string
		segA, a, _ = strings.Cut(a, "/")
		segB, b, _ = strings.Cut(b, "/")
		if segA != segB {
			break
		}
		n++
	}
	return n
}

func covers(prefix, path string) bool {
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// requiredScopes returns the scopes a request to path needs.
func (s *Site) requiredScopes(path string) []string {
	var need []string
	for _, rule := range s.scopeRules {
		if rule.matches(path) {
			for _, sc := range rule.scopes {
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
