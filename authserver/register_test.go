package authserver

import (
	"net/http"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

const validRegistration = `{"redirect_uris":["https://c.example/cb"],"token_endpoint_auth_method":"none"}`

// Registration refuses with the error RFC 7591 names for each problem, and
// registers a well-formed client.
func TestRegistration(t *testing.T) {
	for _, tc := range []struct {
		name      string
		configure func(*Config)
		method    string
		header    http.Header
		body      string
		status    int
		code      oauth.ErrorCode
	}{
		{name: "GET", method: http.MethodGet, status: http.StatusMethodNotAllowed, code: oauth.InvalidRequest},
		{name: "not JSON", header: http.Header{"Content-Type": {"text/plain"}}, body: validRegistration,
			status: http.StatusBadRequest, code: oauth.InvalidClientMetadata},
		{name: "malformed metadata", body: `{"redirect_uris":`, status: http.StatusBadRequest, code: oauth.InvalidClientMetadata},
		{name: "no redirect URI", body: `{"token_endpoint_auth_method":"none"}`, status: http.StatusBadRequest, code: oauth.InvalidRedirectURI},
		{name: "without the initial access token", configure: func(c *Config) { c.RegistrationToken = "let-me-in" },
			body: validRegistration, status: http.StatusUnauthorized, code: oauth.InvalidToken},
		{name: "with a wrong initial access token", configure: func(c *Config) { c.RegistrationToken = "let-me-in" },
			header: oauthtest.Bearer("guess"), body: validRegistration, status: http.StatusUnauthorized, code: oauth.InvalidToken},
		{name: "over the source's limit", configure: func(c *Config) { c.RegistrationLimit = NewRateLimiter(1, time.Hour, 0) },
			body: validRegistration, status: http.StatusTooManyRequests, code: oauth.InvalidRequest},
		{name: "with the initial access token", configure: func(c *Config) { c.RegistrationToken = "let-me-in" },
			header: oauthtest.Bearer("let-me-in"), body: validRegistration, status: http.StatusCreated},
		{name: "well-formed", body: validRegistration, status: http.StatusCreated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, storagetest.Badger(t))
			if tc.configure != nil {
				tc.configure(&cfg)
			}
			as := serve(t, newServer(t, cfg))
			header := http.Header{"Content-Type": {"application/json"}}
			for k, v := range tc.header {
				header[k] = v
			}
			method := tc.method
			if method == "" {
				method = http.MethodPost
			}
			status, h, body := oauthtest.Do(t, as.HTTP, method, as.URL+"/register", header, []byte(tc.body))
			if status != tc.status || (tc.code != "" && errorCode(t, body) != tc.code) {
				t.Fatalf("%d %s, want %d %s", status, body, tc.status, tc.code)
			}
			if tc.code == oauth.InvalidToken && h.Get("WWW-Authenticate") == "" {
				t.Error("no bearer challenge")
			}
			if status == http.StatusTooManyRequests && h.Get("Retry-After") == "" {
				t.Error("no Retry-After")
			}
		})
	}
}
