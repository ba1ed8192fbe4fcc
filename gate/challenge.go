package gate

import (
	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// challenge is the Bearer challenge of a refusal at res (RFC 6750 section
// 3, RFC 9728 section 5.1), or the DPoP one (RFC 9449 section 7.1) when
// the request used that scheme or res takes nothing else. A request
// without credentials gets no error code, as RFC 6750 asks.
func (g *Gate) challenge(res *Resource, code oauth.ErrorCode, description string, scopes []string, dpopScheme bool) string {
	c := oauth.BearerChallenge{
		Realm: g.cfg.Realm, Code: code, Description: description,
		ResourceMetadata: res.MetadataURL, Scopes: scopes,
	}
	if dpopScheme || res.RequireDPoP {
		c.DPoP, c.Algs = true, dpop.Algorithms
	}
	return c.String()
}
