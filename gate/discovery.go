package gate

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// ResourceMetadata is the RFC 9728 protected resource metadata document.
type ResourceMetadata struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	// RFC 9728 section 2, for DPoP (RFC 9449).
	DPoPSigningAlgs []string `json:"dpop_signing_alg_values_supported,omitempty"`
	DPoPRequired    bool     `json:"dpop_bound_access_tokens_required,omitempty"`
}

// Metadata returns the protected resource metadata of res.
func (g *Gate) Metadata(res *Resource) ResourceMetadata {
	return ResourceMetadata{
		Resource:               res.URL,
		AuthorizationServers:   []string{g.cfg.AuthorizationServer},
		ScopesSupported:        res.Scopes,
		BearerMethodsSupported: []string{"header"},
		DPoPSigningAlgs:        dpop.Algorithms,
		DPoPRequired:           res.RequireDPoP,
	}
}

// discoveryPrefixes are the well-known names of the discovery documents
// MCP clients look for.
var discoveryPrefixes = []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/.well-known/oauth-protected-resource"}

// Discovery returns the handler of the discovery document at path, with a
// metric name (resource_metadata, or not_found for a document this site
// does not have), or a nil handler if path is no discovery document. The
// resources' metadata is the resource server's own, served in external
// mode as well; an authorization server's metadata is matched before this.
func (g *Gate) Discovery(path string) (name string, serve http.HandlerFunc) {
	for _, res := range g.cfg.Resources {
		if path == res.MetadataPath {
			return "resource_metadata", g.serveMetadata(res)
		}
	}
	// The root document describes the default resource when no resource
	// is the origin itself (RFC 9728 section 3.1 clients fall back to it).
	if path == "/.well-known/oauth-protected-resource" {
		return "resource_metadata", g.serveMetadata(g.cfg.Resources[0])
	}
	// Other discovery documents under these names do not exist here: a
	// clear 404 lets a client move on to the next location it tries.
	for _, prefix := range discoveryPrefixes {
		if strings.HasPrefix(path, prefix) {
			return "not_found", serveNotFound
		}
	}
	return "", nil
}

func (g *Gate) serveMetadata(res *Resource) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := json.Marshal(g.Metadata(res))
		oauth.WriteDocument(w, r, "application/json", body)
	}
}

func serveNotFound(w http.ResponseWriter, _ *http.Request) {
	oauth.WriteError(w, nil, oauth.NewError(http.StatusNotFound, oauth.NotFound, "no such discovery document"))
}
