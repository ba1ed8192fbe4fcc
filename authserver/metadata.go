package authserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// ServerMetadata is the RFC 8414 authorization server metadata document,
// also served as OpenID Connect Discovery. Only what the server really
// does is advertised; empty members are omitted (RFC 8414 section 3.2).
type ServerMetadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                     string   `json:"token_endpoint,omitempty"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	RevocationEndpoint                string   `json:"revocation_endpoint,omitempty"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint,omitempty"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint,omitempty"`
	JWKSURI                           string   `json:"jwks_uri"`
	ScopesSupported                   []string `json:"scopes_supported,omitempty"`
	ResponseTypesSupported            []string `json:"response_types_supported,omitempty"`
	ResponseModesSupported            []string `json:"response_modes_supported,omitempty"`
	GrantTypesSupported               []string `json:"grant_types_supported,omitempty"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported,omitempty"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported,omitempty"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported,omitempty"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported,omitempty"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported,omitempty"`
	SubjectTypesSupported             []string `json:"subject_types_supported,omitempty"`
	IDTokenSigningAlgs                []string `json:"id_token_signing_alg_values_supported,omitempty"`
	ClaimsSupported                   []string `json:"claims_supported,omitempty"`
	// AuthorizationResponseIss: every authorization response carries iss (RFC 9207).
	AuthorizationResponseIss bool `json:"authorization_response_iss_parameter_supported,omitempty"`
	// ClientIDMetadataDocument: client_ids may be metadata document URLs.
	ClientIDMetadataDocument bool `json:"client_id_metadata_document_supported,omitempty"`
}

// ResourceMetadata is the RFC 9728 protected resource metadata document.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
}

// Metadata returns the authorization server metadata.
func (s *Site) Metadata() ServerMetadata {
	m := ServerMetadata{Issuer: s.Issuer, JWKSURI: s.Issuer + pathJWKS}
	if s.AS == nil {
		return m
	}
	m.AuthorizationEndpoint = s.Issuer + pathAuthorize
	m.TokenEndpoint = s.Issuer + pathToken
	m.RegistrationEndpoint = s.Issuer + pathRegister
	m.RevocationEndpoint = s.Issuer + pathRevoke
	m.IntrospectionEndpoint = s.Issuer + pathIntrospect
	m.UserinfoEndpoint = s.Issuer + pathUserinfo
	for _, r := range s.Resources {
		for _, sc := range r.Scopes {
			if !slices.Contains(m.ScopesSupported, sc) {
				m.ScopesSupported = append(m.ScopesSupported, sc)
			}
		}
	}
	m.ScopesSupported = append(m.ScopesSupported, oidcScopes...)
	m.ResponseTypesSupported = []string{"code"}
	m.ResponseModesSupported = []string{"query"}
	m.GrantTypesSupported = []string{"authorization_code", "refresh_token"}
	m.TokenEndpointAuthMethodsSupported = []string{"none", "client_secret_basic", "client_secret_post"}
	m.CodeChallengeMethodsSupported = []string{"S256"}
	m.SubjectTypesSupported = []string{"public"}
	m.IDTokenSigningAlgs = []string{s.Ring.Algorithm()}
	m.ClaimsSupported = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified", "name", "preferred_username", "picture"}
	m.AuthorizationResponseIss = true
	m.RevocationAuthMethodsSupported = m.TokenEndpointAuthMethodsSupported
	m.IntrospectionAuthMethodsSupported = []string{"client_secret_basic", "client_secret_post"}
	if s.AS.Metadata != nil {
		m.TokenEndpointAuthMethodsSupported = append(m.TokenEndpointAuthMethodsSupported, "private_key_jwt")
		m.RevocationAuthMethodsSupported = m.TokenEndpointAuthMethodsSupported
		m.IntrospectionAuthMethodsSupported = append(m.IntrospectionAuthMethodsSupported, "private_key_jwt")
		m.TokenEndpointAuthSigningAlgs = clients.AssertionAlgorithms
		m.ClientIDMetadataDocument = true
	}
	return m
}

// resourceMetadata returns the protected resource metadata of res.
func (s *Site) resourceMetadata(res *gate.Resource) ResourceMetadata {
	return ResourceMetadata{
		Resource:               res.URL,
		AuthorizationServers:   []string{s.AuthorizationServer},
		ScopesSupported:        res.Scopes,
		BearerMethodsSupported: []string{"header"},
	}
}

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

func (s *Site) serveMetadata(w http.ResponseWriter, r *http.Request) {
	writeDocument(w, r, s.Metadata())
}

func (s *Site) serveResourceMetadata(w http.ResponseWriter, r *http.Request, res *gate.Resource) {
	writeDocument(w, r, s.resourceMetadata(res))
}

func (s *Site) serveJWKS(w http.ResponseWriter, r *http.Request) {
	if !allowRead(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeBody(w, r, s.Ring.JWKS())
}

// writeDocument answers GET and HEAD with a public JSON document.
func writeDocument(w http.ResponseWriter, r *http.Request, doc any) {
	if !allowRead(w, r) {
		return
	}
	body, err := json.Marshal(doc)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	writeBody(w, r, body)
}

func allowRead(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		return true
	}
	w.Header().Set("Allow", "GET, HEAD, OPTIONS")
	oauth.WriteError(w, nil, oauth.NewError(http.StatusMethodNotAllowed, oauth.InvalidRequest, "method not allowed"))
	return false
}

func writeBody(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
