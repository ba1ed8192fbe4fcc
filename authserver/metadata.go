package authserver

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
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
	DPoPSigningAlgs                   []string `json:"dpop_signing_alg_values_supported,omitempty"`
	ClaimsSupported                   []string `json:"claims_supported,omitempty"`
	// AuthorizationResponseIss: every authorization response carries iss (RFC 9207).
	AuthorizationResponseIss bool `json:"authorization_response_iss_parameter_supported,omitempty"`
	// ClientIDMetadataDocument: client_ids may be metadata document URLs.
	ClientIDMetadataDocument bool `json:"client_id_metadata_document_supported,omitempty"`
	// AuthorizationGrantProfiles are the profiles of the jwt-bearer grant
	// accepted: identity assertion grants (ID-JAG) of enterprise identity
	// providers.
	AuthorizationGrantProfiles []string `json:"authorization_grant_profiles_supported,omitempty"`
}

// serverMetadata is the metadata of the server cfg describes.
func serverMetadata(cfg *Config) ServerMetadata {
	m := ServerMetadata{
		Issuer:                cfg.Issuer,
		JWKSURI:               cfg.Issuer + pathJWKS,
		AuthorizationEndpoint: cfg.Issuer + pathAuthorize,
		TokenEndpoint:         cfg.Issuer + pathToken,
		RegistrationEndpoint:  cfg.Issuer + pathRegister,
		RevocationEndpoint:    cfg.Issuer + pathRevoke,
		IntrospectionEndpoint: cfg.Issuer + pathIntrospect,
		UserinfoEndpoint:      cfg.Issuer + pathUserinfo,
	}
	for _, r := range cfg.Resources {
		for _, sc := range r.Scopes {
			if !slices.Contains(m.ScopesSupported, sc) {
				m.ScopesSupported = append(m.ScopesSupported, sc)
			}
		}
	}
	// offline_access is advertised, as MCP clients that want a refresh
	// token may then ask for it (SEP-2207); it is never one of a
	// resource's scopes.
	m.ScopesSupported = append(m.ScopesSupported, oidcScopes...)
	m.ScopesSupported = append(m.ScopesSupported, OfflineAccess)
	m.ResponseTypesSupported = []string{"code"}
	m.ResponseModesSupported = []string{"query"}
	m.GrantTypesSupported = []string{"authorization_code", "refresh_token"}
	m.TokenEndpointAuthMethodsSupported = []string{"none", "client_secret_basic", "client_secret_post"}
	m.CodeChallengeMethodsSupported = []string{"S256"}
	m.SubjectTypesSupported = []string{"public"}
	m.IDTokenSigningAlgs = []string{cfg.Ring.Algorithm()}
	m.DPoPSigningAlgs = dpop.Algorithms
	m.ClaimsSupported = []string{"sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "email", "email_verified", "name", "preferred_username", "picture"}
	m.AuthorizationResponseIss = true
	m.RevocationAuthMethodsSupported = m.TokenEndpointAuthMethodsSupported
	m.IntrospectionAuthMethodsSupported = []string{"client_secret_basic", "client_secret_post"}
	if len(cfg.MachineClients) > 0 {
		// The client credentials extension requires client_secret_basic
		// or private_key_jwt, and the algorithms for the latter.
		m.GrantTypesSupported = append(m.GrantTypesSupported, clients.GrantClientCredentials)
	}
	if len(cfg.EnterpriseIdPs) > 0 {
		m.GrantTypesSupported = append(m.GrantTypesSupported, GrantJWTBearer)
		m.AuthorizationGrantProfiles = []string{IDJAGProfile}
	}
	if cfg.Keys != nil {
		m.TokenEndpointAuthMethodsSupported = append(m.TokenEndpointAuthMethodsSupported, "private_key_jwt")
		m.RevocationAuthMethodsSupported = m.TokenEndpointAuthMethodsSupported
		m.IntrospectionAuthMethodsSupported = append(m.IntrospectionAuthMethodsSupported, "private_key_jwt")
		m.TokenEndpointAuthSigningAlgs = clients.AssertionAlgorithms
	}
	m.ClientIDMetadataDocument = cfg.Metadata != nil
	return m
}

// document serves doc, a public JSON document that never changes.
func document(doc any) http.HandlerFunc {
	body, err := json.Marshal(doc)
	if err != nil {
		panic(err) // documents are plain structs
	}
	return func(w http.ResponseWriter, r *http.Request) {
		oauth.WriteDocument(w, r, "application/json", body)
	}
}
