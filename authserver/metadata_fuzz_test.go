package authserver

import (
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
)

// FuzzRoute checks the endpoint names Route gives request paths, which
// label the endpoint metrics, against a reference table of the site's
// published paths: a path the table names gets that name, another under a
// discovery prefix is not_found, and every other path is no endpoint of the
// site. So no request path, however spelled, makes a name of its own.
func FuzzRoute(f *testing.F) {
	site, err := NewSite(SiteConfig{
		Issuer:    "https://auth.example.com/tenant",
		AS:        &AuthServer{},
		Resources: []gate.ResourceConfig{{Path: "/mcp"}, {Path: "/notes/mcp"}},
	})
	if err != nil {
		f.Fatal(err)
	}
	reference := map[string]string{
		"/.well-known/oauth-authorization-server/tenant":  "metadata",
		"/.well-known/openid-configuration/tenant":        "metadata",
		"/tenant/.well-known/openid-configuration":        "metadata",
		"/.well-known/oauth-protected-resource":           "resource_metadata",
		"/.well-known/oauth-protected-resource/mcp":       "resource_metadata",
		"/.well-known/oauth-protected-resource/notes/mcp": "resource_metadata",
	}
	for path, name := range map[string]string{
		pathJWKS: "jwks", pathRegister: "register", pathAuthorize: "authorize", pathConsent: "consent",
		pathLogin: "login", pathCallback: "callback", pathToken: "token", pathRevoke: "revoke",
		pathIntrospect: "introspect", pathUserinfo: "userinfo",
	} {
		reference["/tenant"+path] = name
	}
	for path := range reference {
		f.Add(path)
	}
	for _, seed := range []string{"/.well-known/oauth-protected-resource/" + strings.Repeat("x", 64), "/.well-known/OAUTH-protected-resource",
		"/tenant/TOKEN", "/token", "//tenant/token", "/tenant/token/", "/.well-known/openid-configurationx", "/mcp"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		name, serve := site.Route(path)
		if (name == "") != (serve == nil) {
			t.Fatalf("Route(%q) = %q with handler %v", path, name, serve != nil)
		}
		want, ok := reference[path]
		if !ok {
			for _, prefix := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/.well-known/oauth-protected-resource"} {
				if strings.HasPrefix(path, prefix) {
					want = "not_found"
				}
			}
		}
		if name != want {
			t.Fatalf("Route(%q) = %q, want %q", path, name, want)
		}
	})
}
