package authserver

import (
	"slices"
	"strings"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
)

// OfflineAccess is the OpenID Connect scope by which a client asks for a
// refresh token. It is no scope of the access token: a client gets a
// refresh token when it registered the refresh_token grant, whether it
// asks offline_access or not (MCP SEP-2207), and never otherwise, since
// the token endpoint would refuse it the grant.
const OfflineAccess = "offline_access"

// grantable returns the scopes the server grants for res, in the order
// they are configured: the resource's own, then those the gate's rules may
// ask its tokens for.
func (s *resourceSet) grantable(res *gate.Resource) []string {
	return gate.Union(res.Scopes, s.stepUp)
}

// upFront returns the scopes granted for res whatever a client asks: all
// its grantable ones when the resource grants every scope up front, else
// none. The user's ScopeGrants still narrow them.
func (s *resourceSet) upFront(res *gate.Resource) []string {
	if !res.GrantAllScopes {
		return nil
	}
	return s.grantable(res)
}

// requestedScopes returns the scopes an authorization request asks for
// res: the requested ones the resource or OpenID Connect offers, in the
// configured order. Unknown scopes are dropped, not an error, as clients
// often ask for everything they saw advertised, or for scopes of other
// servers; offline_access is dropped too (see OfflineAccess). A request
// that names none of the resource's scopes gets its default ones, so the
// token is good for the resource, and a resource that grants every scope
// up front gets them all.
func (s *resourceSet) requestedScopes(res *gate.Resource, requested string) []string {
	offered := s.grantable(res)
	asked := strings.Fields(requested)
	if !slices.ContainsFunc(asked, func(sc string) bool { return slices.Contains(offered, sc) }) {
		asked = append(asked, res.Scopes...)
	}
	asked = append(asked, s.upFront(res)...)
	var out []string
	for _, sc := range slices.Concat(offered, oidcScopes) {
		if slices.Contains(asked, sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// askedScopes returns the scopes a token request's scope parameter names,
// less offline_access (see OfflineAccess): clients that repeat their
// authorization request's scope send it, and it is no scope of a token.
func askedScopes(requested string) []string {
	return slices.DeleteFunc(strings.Fields(requested), func(sc string) bool { return sc == OfflineAccess })
}

// refreshScopes returns the scopes a refresh request names, if it names
// any (see askedScopes). A request naming offline_access alone keeps the
// grant's scopes.
func refreshScopes(params map[string]string) (scopes []string, named bool) {
	requested, named := params["scope"]
	scopes = askedScopes(requested)
	return scopes, named && (len(scopes) > 0 || strings.TrimSpace(requested) == "")
}
