package authserver

import (
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// FuzzRoute checks the endpoint names Route gives request paths, which
// label the endpoint metrics, against a reference table of the server's
// published paths: a path the table names gets that name, and every other
// path is no endpoint of the server (the gate's discovery documents come
// next; see gate's FuzzDiscovery). So no request path, however spelled,
// makes a name of its own.
func FuzzRoute(f *testing.F) {
	cfg := testConfig(f, storagetest.Badger(f))
	cfg.Issuer = "https://auth.example.com/tenant"
	server := newServer(f, cfg)
	reference := map[string]string{
		"/.well-known/oauth-authorization-server/tenant": "metadata",
		"/.well-known/openid-configuration/tenant":       "metadata",
		"/tenant/.well-known/openid-configuration":       "metadata",
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
		name, serve := server.Route(path)
		if (name == "") != (serve == nil) {
			t.Fatalf("Route(%q) = %q with handler %v", path, name, serve != nil)
		}
		if want := reference[path]; name != want {
			t.Fatalf("Route(%q) = %q, want %q", path, name, want)
		}
	})
}
