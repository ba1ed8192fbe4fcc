package authserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// UserInfo needs an access token with openid; it refuses others with the
// bearer challenge RFC 6750 section 3 gives each case.
func TestUserinfo(t *testing.T) {
	cfg := testConfig(t, storagetest.Badger(t))
	s := newServer(t, cfg)
	as := serve(t, s)
	withOpenID := accessToken(t, s, cfg, "c1", "mcp:read", "openid", "email")
	without := accessToken(t, s, cfg, "c1", "mcp:read")
	for _, tc := range []struct {
		name      string
		method    string
		header    http.Header
		status    int
		code      oauth.ErrorCode
		challenge string
	}{
		{"PUT", http.MethodPut, oauthtest.Bearer(withOpenID), http.StatusMethodNotAllowed, oauth.InvalidRequest, ""},
		{"no token", http.MethodGet, nil, http.StatusUnauthorized, oauth.InvalidToken, `Bearer realm="mcp"`},
		{"an unknown token", http.MethodGet, oauthtest.Bearer("forged.token.here"), http.StatusUnauthorized, oauth.InvalidToken, `error="invalid_token"`},
		{"a token without openid", http.MethodGet, oauthtest.Bearer(without), http.StatusForbidden, oauth.InsufficientScope, `scope="openid"`},
		{"a token with openid", http.MethodPost, oauthtest.Bearer(withOpenID), http.StatusOK, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := oauthtest.Do(t, as.HTTP, tc.method, as.URL+"/userinfo", tc.header, nil)
			if status != tc.status || (tc.code != "" && errorCode(t, body) != tc.code) {
				t.Fatalf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
			if got := h.Get("WWW-Authenticate"); !strings.Contains(got, tc.challenge) || (tc.challenge == "") != (got == "") {
				t.Errorf("challenge %q, want one with %q", got, tc.challenge)
			}
			if status != http.StatusOK {
				return
			}
			var claims map[string]any
			if err := json.Unmarshal(body, &claims); err != nil || claims["sub"] != "users:alice" || claims["email"] != "alice@example.com" {
				t.Errorf("claims %s", body)
			}
		})
	}
}
