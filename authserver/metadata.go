package authserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

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

func (s *Site) serveMetadata(w http.ResponseWriter, r *http.Request) {
	writeDocument(w, r, s.Metadata())
}

func (s *Site) serveResourceMetadata(w http.ResponseWriter, r *http.Request, res *gate.Resource) {
	writeDocument(w, r, s.resourceMetadata(res))
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
