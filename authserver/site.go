// Package authserver implements the authorization server's endpoints as
// plain net/http code; the bearer gate is package gate. The root package adapts them to
// Caddy; nothing here knows about Caddy.
package authserver

import (
	"net/url"
	"slices"

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

// originAllowed reports whether a browser origin may call the site.
func (s *Site) originAllowed(origin string) bool {
	return len(s.AllowedOrigins) == 0 || slices.Contains(s.AllowedOrigins, origin)
}
