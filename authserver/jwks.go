package authserver

import (
	"net/http"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// jwksEndpoint serves the public keys of the ring, which changes as keys
// rotate.
type jwksEndpoint struct {
	ring *tokens.KeyRing
}

// ServeHTTP answers GET and HEAD /jwks with the ring's public keys.
func (e *jwksEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	oauth.WriteDocument(w, r, "application/jwk-set+json", e.ring.JWKS())
}
