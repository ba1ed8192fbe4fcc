package authserver

import (
	"encoding/json"
	"net/http"
	"slices"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// The discovery documents answer GET and HEAD with a public, cacheable
// body, and other methods with 405 and the methods allowed.
func TestDiscoveryDocuments(t *testing.T) {
	as := serve(t, newServer(t, testConfig(t, storagetest.Badger(t))))
	for _, tc := range []struct {
		name, method, path string
		status             int
		contentType        string
		body               bool
	}{
		{"metadata", http.MethodGet, "/.well-known/oauth-authorization-server", http.StatusOK, "application/json", true},
		{"openid configuration", http.MethodGet, "/.well-known/openid-configuration", http.StatusOK, "application/json", true},
		{"metadata by HEAD", http.MethodHead, "/.well-known/oauth-authorization-server", http.StatusOK, "application/json", false},
		{"key set", http.MethodGet, "/jwks", http.StatusOK, "application/jwk-set+json", true},
		{"metadata by POST", http.MethodPost, "/.well-known/oauth-authorization-server", http.StatusMethodNotAllowed, "application/json", true},
		{"key set by DELETE", http.MethodDelete, "/jwks", http.StatusMethodNotAllowed, "application/json", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, header, body := oauthtest.Do(t, as.HTTP, tc.method, as.URL+tc.path, nil, nil)
			if status != tc.status || header.Get("Content-Type") != tc.contentType || (len(body) > 0) != tc.body {
				t.Fatalf("%d %q with %d bytes", status, header.Get("Content-Type"), len(body))
			}
			if status == http.StatusOK && header.Get("Cache-Control") != "public, max-age=300" {
				t.Errorf("Cache-Control %q", header.Get("Cache-Control"))
			}
			if status == http.StatusMethodNotAllowed && header.Get("Allow") != "GET, HEAD, OPTIONS" {
				t.Errorf("Allow %q", header.Get("Allow"))
			}
		})
	}
}

// The metadata names every endpoint under the issuer and only what the
// server does.
func TestMetadataNamesTheEndpoints(t *testing.T) {
	as := serve(t, newServer(t, testConfig(t, storagetest.Badger(t))))
	_, _, body := oauthtest.Get(t, as.HTTP, as.URL+"/.well-known/oauth-authorization-server", nil)
	var m ServerMetadata
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatal(err)
	}
	if m.Issuer != testIssuer || m.TokenEndpoint != testIssuer+"/token" || m.JWKSURI != testIssuer+"/jwks" ||
		m.AuthorizationEndpoint != testIssuer+"/authorize" || m.RegistrationEndpoint != testIssuer+"/register" {
		t.Errorf("endpoints: %+v", m)
	}
	if m.ClientIDMetadataDocument || len(m.TokenEndpointAuthSigningAlgs) > 0 {
		t.Errorf("metadata documents advertised without a fetcher: %+v", m)
	}
}

// Machine clients add client_credentials; keys for private_key_jwt add
// the method and its algorithms, without claiming metadata documents.
func TestMetadataOfMachineClients(t *testing.T) {
	for _, tc := range []struct {
		name      string
		keys      bool
		grants    []string
		keyMethod bool
	}{
		{"none", false, []string{"authorization_code", "refresh_token"}, false},
		{"with a secret", false, []string{"authorization_code", "refresh_token", "client_credentials"}, false},
		{"with keys", true, []string{"authorization_code", "refresh_token", "client_credentials"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, storagetest.Badger(t))
			if tc.name != "none" {
				cfg.MachineClients = []MachineClient{{ID: "a.1", SecretHash: clients.HashSecret("s")}}
			}
			if tc.keys {
				cfg.Keys = clients.NewFetcher(clients.FetcherOptions{})
			}
			as := serve(t, newServer(t, cfg))
			_, _, body := oauthtest.Get(t, as.HTTP, as.URL+"/.well-known/oauth-authorization-server", nil)
			var m ServerMetadata
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(m.GrantTypesSupported, tc.grants) || !slices.Contains(m.TokenEndpointAuthMethodsSupported, "client_secret_basic") {
				t.Errorf("grants %v, methods %v", m.GrantTypesSupported, m.TokenEndpointAuthMethodsSupported)
			}
			if slices.Contains(m.TokenEndpointAuthMethodsSupported, "private_key_jwt") != tc.keyMethod || (len(m.TokenEndpointAuthSigningAlgs) > 0) != tc.keyMethod {
				t.Errorf("private_key_jwt advertised: %v %v, want %v", m.TokenEndpointAuthMethodsSupported, m.TokenEndpointAuthSigningAlgs, tc.keyMethod)
			}
			if m.ClientIDMetadataDocument {
				t.Error("metadata documents advertised without them")
			}
		})
	}
}
