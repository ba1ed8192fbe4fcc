package mcpauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

func TestExternalAuthorizationServer(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-1"})
	var introspections atomic.Int32
	idp.EditDiscovery(func(doc map[string]any) { doc["introspection_endpoint"] = idp.URL + "/introspect" })
	resource := siteAddr() + "/mcp"
	idp.Handle("/introspect", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		introspections.Add(1)
		id, secret, _ := r.BasicAuth()
		if id != "rs-client" || secret != "rs-secret-0123456789" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_ = r.ParseForm()
		answer := map[string]any{"active": false}
		if r.PostForm.Get("token") == "opaque-good" {
			answer = map[string]any{"active": true, "sub": "kc-2", "aud": resource, "scope": "mcp:tools",
				"client_id": "opaque-client", "exp": time.Now().Add(time.Hour).Unix(), "iss": idp.URL}
		}
		_ = json.NewEncoder(w).Encode(answer)
	}))

	client := startExternal(t, idp, `
		introspection rs-client rs-secret-0123456789
		accept_jwt_typ JWT`)

	status, _, body := oauthtest.Get(t, client, siteAddr()+"/.well-known/oauth-protected-resource/mcp", nil)
	var prm struct {
		Resource             string   `json:"resource"`
		AuthorizationServers []string `json:"authorization_servers"`
	}
	if status != 200 || json.Unmarshal(body, &prm) != nil || prm.Resource != resource || len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != idp.URL {
		t.Fatalf("resource metadata must point at the external server: %d %s", status, body)
	}
	if status, _, _ := oauthtest.Get(t, client, siteAddr()+"/token", nil); status != http.StatusUnauthorized {
		t.Errorf("external mode must serve no token endpoint: %d", status)
	}

	sign := func(edit func(map[string]any)) string { return externalToken(t, idp, "JWT", edit) }
	for name, tc := range map[string]struct {
		token  string
		path   string
		status int
	}{
		"keycloak-style JWT":      {sign(nil), "/mcp", 200},
		"RFC 9068 at+jwt":         {externalToken(t, idp, "at+jwt", nil), "/mcp", 200},
		"scp array (Entra, Okta)": {sign(func(c map[string]any) { delete(c, "scope"); c["scp"] = []string{"mcp:tools"} }), "/mcp", 200},
		"wrong audience":          {sign(func(c map[string]any) { c["aud"] = "account" }), "/mcp", 401},
		"wrong issuer":            {sign(func(c map[string]any) { c["iss"] = "https://evil.test" }), "/mcp", 401},
		"expired":                 {sign(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), "/mcp", 401},
		"insufficient scope":      {sign(nil), "/mcp/admin", 403},
		"signed by another key":   {forged(t, idp.KeyID(), idp.URL, resource), "/mcp", 401},
		"opaque, active":          {"opaque-good", "/mcp", 200},
		"opaque, inactive":        {"opaque-bad", "/mcp", 401},
	} {
		t.Run(name, func(t *testing.T) {
			status, hdr, body := initialize(t, client, tc.path, tc.token)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s %s", status, tc.status, hdr.Get("WWW-Authenticate"), body)
			}
			if status == 401 && !strings.Contains(hdr.Get("WWW-Authenticate"), `resource_metadata="`+siteAddr()) {
				t.Errorf("challenge %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}
	before := introspections.Load()
	oauthtest.Get(t, client, siteAddr()+"/mcp", oauthtest.Bearer("opaque-good"))
	if introspections.Load() != before {
		t.Error("an active token's introspection answer was not reused")
	}

	// The server rotates its key: a token with the new kid is accepted
	// once the verifier may fetch the key set again (every 10 s at most).
	idp.RotateKey()
	rotated := sign(nil)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(time.Second) {
		status, _, _ := oauthtest.Get(t, client, siteAddr()+"/mcp", oauthtest.Bearer(rotated))
		if status != http.StatusUnauthorized {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("token signed with the rotated key refused")
		}
	}
}

// startExternal starts a site in external mode for idp at /mcp (scope
// mcp:tools, mcp:admin under /mcp/admin) in front of the demo MCP server,
// with asOptions inside its authorization_server block.
func startExternal(t *testing.T, idp *fakeidp.OIDC, asOptions string) *http.Client {
	t.Helper()
	backend := httptest.NewServer(demomcp.Handler())
	t.Cleanup(backend.Close)
	startCaddy(t, globalOptions(t.TempDir(), filepath.Join(t.TempDir(), "caddy.log"))+fmt.Sprintf(`
%s {
	mcp_auth {
		resource /mcp {
			scopes mcp:tools
		}
		require_scope /mcp/admin mcp:admin
		authorization_server %s {%s
		}
	}
	reverse_proxy %s {
		header_up X-MCP-User {http.auth.user.id}
	}
}
`, siteAddr(), idp.URL, asOptions, backend.Listener.Addr()))
	return mustTLSClient(t)
}

// externalToken is an access token of idp for the site's /mcp, with JOSE
// typ, as Keycloak issues them (azp, scope), changed by edit.
func externalToken(t *testing.T, idp *fakeidp.OIDC, typ string, edit func(map[string]any)) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": idp.URL, "sub": "kc-1", "aud": []string{siteAddr() + "/mcp", "account"}, "azp": "mcp-client",
		"scope": "openid mcp:tools", "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(), "jti": "j1"}
	if edit != nil {
		edit(claims)
	}
	tok, err := fakeidp.SignRS256Typed(idp.SigningKey(), idp.KeyID(), typ, claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// initialize posts an MCP initialize request with token to path.
func initialize(t *testing.T, client *http.Client, path, token string) (int, http.Header, []byte) {
	t.Helper()
	return oauthtest.Do(t, client, http.MethodPost, siteAddr()+path, oauthtest.MCPHeader(token), []byte(oauthtest.MCPInitialize))
}

// forged signs a token with a key the server never published, under the
// server's kid.
func forged(t *testing.T, kid, iss, aud string) string {
	tok, err := fakeidp.SignRS256(fakeidp.NewRSAKey(t), kid, map[string]any{"iss": iss, "sub": "x", "aud": aud,
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
