package authserver

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// Introspection answers only a caller that proved a credential: a
// configured resource server, about any token, or a confidential client,
// about its own; every other token is {"active": false} (RFC 7662).
func TestIntrospection(t *testing.T) {
	cfg := testConfig(t, storagetest.Badger(t))
	cfg.IntrospectionCredentials = map[string]string{"rs": clients.HashSecret("resource-server-secret")}
	s := newServer(t, cfg)
	as := serve(t, s)
	public, confidential := publicClient(t, as), confidentialClient(t, as)
	publicToken := accessToken(t, s, cfg, public.ID, "mcp:read")
	ownToken := accessToken(t, s, cfg, confidential.ID, "mcp:read")
	resourceServer := basic(oauthtest.Client{ID: "rs", Secret: "resource-server-secret"})
	for _, tc := range []struct {
		name   string
		form   url.Values
		header http.Header
		status int
		code   oauth.ErrorCode
		active bool
	}{
		{"no credentials", url.Values{"token": {publicToken}}, nil, http.StatusUnauthorized, oauth.InvalidClient, false},
		{"a public client", url.Values{"token": {publicToken}, "client_id": {public.ID}}, nil, http.StatusUnauthorized, oauth.InvalidClient, false},
		{"a wrong resource-server secret", url.Values{"token": {publicToken}}, basic(oauthtest.Client{ID: "rs", Secret: "guess"}),
			http.StatusUnauthorized, oauth.InvalidClient, false},
		{"no token", url.Values{}, resourceServer, http.StatusBadRequest, oauth.InvalidRequest, false},
		{"a resource server, an unknown token", url.Values{"token": {"forged"}}, resourceServer, http.StatusOK, "", false},
		{"a resource server, any client's token", url.Values{"token": {publicToken}}, resourceServer, http.StatusOK, "", true},
		{"a confidential client, another's token", url.Values{"token": {publicToken}}, basic(confidential), http.StatusOK, "", false},
		{"a confidential client, its own token", url.Values{"token": {ownToken}}, basic(confidential), http.StatusOK, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, m := as.PostForm(t, "/introspect", tc.form, tc.header)
			if status != tc.status || (tc.code != "" && m["error"] != string(tc.code)) {
				t.Fatalf("%d %v, want %d %s", status, m, tc.status, tc.code)
			}
			if status == http.StatusOK && m["active"] != tc.active {
				t.Fatalf("active %v, want %v: %v", m["active"], tc.active, m)
			}
			if status == http.StatusOK && !tc.active && len(m) != 1 {
				t.Errorf("an inactive token is described: %v", m)
			}
		})
	}
}
