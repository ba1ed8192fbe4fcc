package authserver

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// Revocation needs an authenticated client and a token; a token that is
// unknown or another client's is answered 200 like any other (RFC 7009
// section 2.2), and stays valid.
func TestRevocation(t *testing.T) {
	cfg := testConfig(t, storagetest.Badger(t))
	s := newServer(t, cfg)
	as := serve(t, s)
	owner, other := publicClient(t, as), publicClient(t, as)
	token := accessToken(t, s, cfg, owner.ID, "mcp:read")
	for _, tc := range []struct {
		name   string
		form   url.Values
		status int
		code   oauth.ErrorCode
	}{
		{"no client", url.Values{"token": {token}}, http.StatusBadRequest, oauth.InvalidRequest},
		{"unknown client", url.Values{"token": {token}, "client_id": {"nobody"}}, http.StatusUnauthorized, oauth.InvalidClient},
		{"no token", url.Values{"client_id": {owner.ID}}, http.StatusBadRequest, oauth.InvalidRequest},
		{"unknown token", url.Values{"token": {"forged"}, "client_id": {owner.ID}}, http.StatusOK, ""},
		{"another client's token", url.Values{"token": {token}, "client_id": {other.ID}}, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, m := as.PostForm(t, "/revoke", tc.form, nil)
			if status != tc.status || (tc.code != "" && m["error"] != string(tc.code)) {
				t.Fatalf("%d %v, want %d %s", status, m, tc.status, tc.code)
			}
		})
	}
	if _, ok := tokensOf(s).accessToken(t.Context(), token); !ok {
		t.Fatal("a refused revocation revoked the token")
	}
	if status, _, m := as.PostForm(t, "/revoke", url.Values{"token": {token}, "client_id": {owner.ID}}, nil); status != http.StatusOK {
		t.Fatalf("revoking: %d %v", status, m)
	}
	if _, ok := tokensOf(s).accessToken(t.Context(), token); ok {
		t.Error("the owner's revocation left the token valid")
	}
}
