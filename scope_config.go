package mcpauth

import (
	"fmt"
	"maps"
	"slices"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/authserver"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
)

// declaredResources are the resources the configuration declares, or the
// site's origin as the one resource.
func (h *Handler) declaredResources() []gate.ResourceConfig {
	if len(h.Resources) == 0 {
		return []gate.ResourceConfig{{Scopes: h.Scopes, GrantAllScopes: h.GrantAllScopes, RequireDPoP: h.RequireDPoP}}
	}
	var declared []gate.ResourceConfig
	for _, r := range h.Resources {
		grantAll := h.GrantAllScopes
		if r.GrantAllScopes != nil {
			grantAll = *r.GrantAllScopes
		}
		declared = append(declared, gate.ResourceConfig{Path: r.Path, Scopes: r.Scopes, GrantAllScopes: grantAll, RequireDPoP: r.RequireDPoP})
	}
	return declared
}

// checkScopes checks the scopes the resources, rules and descriptions
// name: offline_access is none of them, and a description must be of a
// scope the site uses.
func (h *Handler) checkScopes(declared []gate.ResourceConfig) error {
	for _, rc := range declared {
		if slices.Contains(rc.Scopes, authserver.OfflineAccess) {
			// Resource metadata and challenges name resource scopes only
			// (MCP SEP-2207); refresh tokens are between client and server.
			return fmt.Errorf("scopes: %s asks for a refresh token and is not a scope of a resource; clients get refresh tokens by registering the refresh_token grant", authserver.OfflineAccess)
		}
	}
	if slices.Contains(h.stepUpScopes(), authserver.OfflineAccess) {
		return fmt.Errorf("require_scopes and tool_scopes: %s asks for a refresh token and is not a scope a request can need", authserver.OfflineAccess)
	}
	for _, sc := range slices.Sorted(maps.Keys(h.ScopeDescriptions)) {
		switch {
		case h.ScopeDescriptions[sc] == "":
			return fmt.Errorf("scope_descriptions: the description of %q is empty", sc)
		case !slices.Contains(h.knownScopes(declared), sc):
			return fmt.Errorf("scope_descriptions: %q is not a scope of this site (its resources, require_scopes, tool_scopes, scope_grants, scope_includes, or openid, profile, email)", sc)
		}
	}
	return nil
}

// stepUpScopes are the scopes that require_scopes and tool_scopes may ask
// a token for, in a stable order.
func (h *Handler) stepUpScopes() []string {
	var out []string
	for _, rs := range h.RequireScopes {
		out = gate.Union(out, rs.Scopes)
	}
	for _, tool := range slices.Sorted(maps.Keys(h.ToolScopes)) {
		out = gate.Union(out, h.ToolScopes[tool])
	}
	return out
}

// knownScopes are every scope the site's configuration names, and the
// OpenID Connect scopes the consent page may show.
func (h *Handler) knownScopes(declared []gate.ResourceConfig) []string {
	out := slices.Concat(h.stepUpScopes(), authserver.OIDCScopes())
	for _, rc := range declared {
		out = append(out, rc.Scopes...)
	}
	for _, g := range h.ScopeGrants {
		out = append(out, g.Scopes...)
	}
	for broad, narrow := range h.ScopeIncludes {
		out = append(append(out, broad), narrow...)
	}
	return out
}

// grantsAllScopes reports whether the site or any resource grants every
// scope up front.
func (h *Handler) grantsAllScopes() bool {
	return h.GrantAllScopes || slices.ContainsFunc(h.Resources, func(r Resource) bool {
		return r.GrantAllScopes != nil && *r.GrantAllScopes
	})
}
