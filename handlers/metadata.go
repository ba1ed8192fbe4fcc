package handlers

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
)

// ServerMetadata is the RFC 8414 authorization server metadata document,
// also served as OpenID Connect Discovery. Only what the server really
// does is advertised; empty members are omitted (RFC 8414 section 3.2).
type ServerMetadata struct {
	Issuer  string `json:"issuer"`
	JWKSURI string `json:"jwks_uri"`
}

// ResourceMetadata is the RFC 9728 protected resource metadata document.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
}

// Endpoint paths, relative to the issuer.
const (
	pathJWKS = "/jwks"
)

// Metadata returns the authorization server metadata.
func (s *Site) Metadata() ServerMetadata {
	return ServerMetadata{
		Issuer:  s.Issuer,
		JWKSURI: s.Issuer + pathJWKS,
	}
}

// resourceMetadata returns the protected resource metadata of res.
func (s *Site) resourceMetadata(res *Resource) ResourceMetadata {
	return ResourceMetadata{
		Resource:               res.URL,
		AuthorizationServers:   []string{s.Issuer},
		ScopesSupported:        res.Scopes,
		BearerMethodsSupported: []string{"header"},
	}
}

// Route returns the handler of a discovery or authorization-server endpoint
// at path, or nil if the path belongs to the protected backend.
func (s *Site) Route(path string) http.HandlerFunc {
	if path == "/.well-known/oauth-authorization-server"+s.issuerPath ||
		path == "/.well-known/openid-configuration"+s.issuerPath ||
		(s.issuerPath != "" && path == s.issuerPath+"/.well-known/openid-configuration") {
		return s.serveMetadata
	}
	for _, res := range s.Resources {
		if path == res.metadataPath {
			return func(w http.ResponseWriter, r *http.Request) { s.serveResourceMetadata(w, r, res) }
		}
	}
	// The root document describes the default resource when no resource
	// is the origin itself (RFC 9728 section 3.1 clients fall back to it).
	if path == "/.well-known/oauth-protected-resource" {
		return func(w http.ResponseWriter, r *http.Request) { s.serveResourceMetadata(w, r, s.Resources[0]) }
	}
	if rest, ok := strings.CutPrefix(path, s.issuerPath); ok && rest == pathJWKS {
		return s.serveJWKS
	}
	return nil
}

func (s *Site) serveMetadata(w http.ResponseWriter, r *http.Request) {
	writeDocument(w, r, s.Metadata())
}

func (s *Site) serveResourceMetadata(w http.ResponseWriter, r *http.Request, res *Resource) {
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
	writeJSONError(w, http.StatusMethodNotAllowed, "invalid_request", "method not allowed")
	return false
}

func writeBody(w http.ResponseWriter, r *http.Request, body []byte) {
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// writeJSONError writes an RFC 6749 section 5.2 error response.
func writeJSONError(w http.ResponseWriter, status int, code, description string) {
	body, _ := json.Marshal(struct {
		Error       string `json:"error"`
		Description string `json:"error_description,omitempty"`
	}{code, description})
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
