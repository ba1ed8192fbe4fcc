package gate

import "github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"

// challenge is the Bearer challenge of a refusal at res (RFC 6750 section
// 3, RFC 9728 section 5.1). A request without credentials gets no error
// code, as RFC 6750 asks.
func (g *Gate) challenge(res *Resource, code oauth.ErrorCode, description string, scopes []string) string {
	return oauth.BearerChallenge{
		Realm: g.cfg.Realm, Code: code, Description: description,
		ResourceMetadata: res.MetadataURL, Scopes: scopes,
	}.String()
}
