package authserver

import (
	"net/http"
	"net/url"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// The token endpoint refuses malformed requests, unauthenticated clients
// and grants it cannot honour, each with the error OAuth 2.1 section 3.2.4
// names for it.
func TestTokenRefusals(t *testing.T) {
	as := serve(t, newServer(t, testConfig(t, storagetest.Badger(t))))
	public := publicClient(t, as)
	confidential := confidentialClient(t, as)
	codeOnly := as.RegisterClient(t, map[string]any{"redirect_uris": []string{"https://c.example/cb"}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code"}})
	pkce := oauthtest.NewPKCE()
	form := func(kv ...string) url.Values {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	for _, tc := range []struct {
		name   string
		form   url.Values
		header http.Header
		status int
		code   oauth.ErrorCode
	}{
		{"no client", form("grant_type", "authorization_code"), nil, http.StatusBadRequest, oauth.InvalidRequest},
		{"unknown client", form("grant_type", "authorization_code", "client_id", "nobody"), nil, http.StatusUnauthorized, oauth.InvalidClient},
		{"wrong secret", form("grant_type", "refresh_token", "refresh_token", "x"), basic(oauthtest.Client{ID: confidential.ID, Secret: "guess"}),
			http.StatusUnauthorized, oauth.InvalidClient},
		{"secret in the body of a Basic client", form("grant_type", "refresh_token", "refresh_token", "x", "client_id", confidential.ID,
			"client_secret", confidential.Secret), nil, http.StatusUnauthorized, oauth.InvalidClient},
		{"two authentication methods", form("grant_type", "refresh_token", "client_secret", "s"), basic(confidential), http.StatusBadRequest, oauth.InvalidRequest},
		{"no grant type", form("client_id", public.ID), nil, http.StatusBadRequest, oauth.InvalidRequest},
		{"unsupported grant type", form("grant_type", "password", "client_id", public.ID), nil, http.StatusBadRequest, oauth.UnsupportedGrantType},
		{"grant type not registered", form("grant_type", "refresh_token", "refresh_token", "x", "client_id", codeOnly.ID), nil,
			http.StatusBadRequest, oauth.UnauthorizedClient},
		{"no code", form("grant_type", "authorization_code", "client_id", public.ID), nil, http.StatusBadRequest, oauth.InvalidRequest},
		{"unknown code", oauthtest.CodeRequest(public, "forged", pkce, ""), nil, http.StatusBadRequest, oauth.InvalidGrant},
		{"no refresh token", form("grant_type", "refresh_token", "client_id", public.ID), nil, http.StatusBadRequest, oauth.InvalidRequest},
		{"unknown refresh token", form("grant_type", "refresh_token", "refresh_token", "forged", "client_id", public.ID), nil,
			http.StatusBadRequest, oauth.InvalidGrant},
		{"repeated parameter", url.Values{"grant_type": {"refresh_token", "refresh_token"}, "client_id": {public.ID}}, nil,
			http.StatusBadRequest, oauth.InvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, m := as.Token(t, tc.form, tc.header)
			if status != tc.status || m["error"] != string(tc.code) {
				t.Fatalf("%d %v, want %d %s", status, m, tc.status, tc.code)
			}
			if status == http.StatusUnauthorized && tc.header != nil && h.Get("WWW-Authenticate") == "" {
				t.Error("a client that tried Basic got no Basic challenge")
			}
		})
	}
}

// The token endpoint takes only a POSTed form, with nothing in the URL.
func TestTokenRequestShape(t *testing.T) {
	as := serve(t, newServer(t, testConfig(t, storagetest.Badger(t))))
	form := []byte("grant_type=authorization_code&client_id=c")
	for _, tc := range []struct {
		name, method, query, contentType string
		status                           int
	}{
		{"GET", http.MethodGet, "", "", http.StatusMethodNotAllowed},
		{"parameters in the URL", http.MethodPost, "?code=x", "application/x-www-form-urlencoded", http.StatusBadRequest},
		{"JSON", http.MethodPost, "", "application/json", http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, body := oauthtest.Do(t, as.HTTP, tc.method, as.URL+"/token"+tc.query, http.Header{"Content-Type": {tc.contentType}}, form)
			if status != tc.status || errorCode(t, body) != oauth.InvalidRequest {
				t.Fatalf("%d %s, want %d invalid_request", status, body, tc.status)
			}
		})
	}
}
