package authserver

import (
	"net/http"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// Endpoint paths, relative to the issuer.
const (
	pathJWKS       = "/jwks"
	pathRegister   = "/register"
	pathAuthorize  = "/authorize"
	pathConsent    = "/authorize/consent"
	pathLogin      = "/authorize/login"
	pathCallback   = "/authorize/callback"
	pathToken      = "/token"
	pathRevoke     = "/revoke"
	pathIntrospect = "/introspect"
	pathUserinfo   = "/userinfo"
)

// Route returns the handler of a discovery or authorization-server endpoint
// at path, with the endpoint's name, or a nil handler if the path belongs
// to the protected backend. The name comes from a fixed set (metadata,
// resource_metadata, jwks, register, authorize, consent, login, callback,
// token, revoke, introspect, userinfo, not_found) and never from the
// path, so that metrics labelled with it stay bounded whatever clients
// request.
func (s *Site) Route(path string) (name string, serve http.HandlerFunc) {
	if s.AS != nil && (path == "/.well-known/oauth-authorization-server"+s.issuerPath ||
		path == "/.well-known/openid-configuration"+s.issuerPath ||
		(s.issuerPath != "" && path == s.issuerPath+"/.well-known/openid-configuration")) {
		return "metadata", s.serveMetadata
	}
	for _, res := range s.Resources {
		if path == res.MetadataPath {
			return "resource_metadata", func(w http.ResponseWriter, r *http.Request) { s.serveResourceMetadata(w, r, res) }
		}
	}
	// The root document describes the default resource when no resource
	// is the origin itself (RFC 9728 section 3.1 clients fall back to it).
	if path == "/.well-known/oauth-protected-resource" {
		return "resource_metadata", func(w http.ResponseWriter, r *http.Request) { s.serveResourceMetadata(w, r, s.Resources[0]) }
	}
	// Other discovery documents under these names do not exist here: a
	// clear 404 lets a client move on to the next location it tries.
	for _, prefix := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/.well-known/oauth-protected-resource"} {
		if strings.HasPrefix(path, prefix) {
			return "not_found", serveNotFound
		}
	}
	rest, ok := strings.CutPrefix(path, s.issuerPath)
	if !ok || s.AS == nil {
		return "", nil
	}
	switch rest {
	case pathJWKS:
		return "jwks", s.serveJWKS
	case pathRegister:
		return "register", s.serveRegister
	case pathAuthorize:
		return "authorize", s.serveAuthorize
	case pathConsent:
		return "consent", s.serveConsent
	case pathCallback:
		return "callback", s.serveCallback
	case pathLogin:
		return "login", s.serveLogin
	case pathToken:
		return "token", s.serveToken
	case pathRevoke:
		return "revoke", s.serveRevoke
	case pathIntrospect:
		return "introspect", s.serveIntrospect
	case pathUserinfo:
		return "userinfo", s.serveUserinfo
	}
	return "", nil
}

func serveNotFound(w http.ResponseWriter, _ *http.Request) {
	oauth.WriteError(w, nil, oauth.NewError(http.StatusNotFound, oauth.NotFound, "no such discovery document"))
}
