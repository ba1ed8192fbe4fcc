package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// Until the client and its redirect URI are trusted, the authorization
// endpoint answers errors on a page of its own; after, it sends them to
// the client's redirect URI with state and iss (OAuth 2.1 section 4.1.2.1).
func TestAuthorizationRequest(t *testing.T) {
	as := serve(t, newServer(t, testConfig(t, storagetest.Badger(t))))
	client := publicClient(t, as)
	pkce := oauthtest.NewPKCE()
	request := func(change func(url.Values)) url.Values {
		q := oauthtest.AuthorizationRequest(client, pkce, testResource)
		if change != nil {
			change(q)
		}
		return q
	}
	for _, tc := range []struct {
		name   string
		method string
		query  url.Values
		status int
		// page says the answer is an error page; code the error sent to
		// the client otherwise.
		page bool
		code oauth.ErrorCode
	}{
		{"POST", http.MethodPost, request(nil), http.StatusMethodNotAllowed, true, ""},
		{"unknown client", http.MethodGet, request(func(q url.Values) { q.Set("client_id", "nobody") }), http.StatusBadRequest, true, ""},
		{"unregistered redirect URI", http.MethodGet, request(func(q url.Values) { q.Set("redirect_uri", "https://evil.example/cb") }),
			http.StatusBadRequest, true, ""},
		{"two redirect URIs", http.MethodGet, request(func(q url.Values) { q.Add("redirect_uri", client.Redirects[0]) }),
			http.StatusBadRequest, true, ""},
		{"no response_type", http.MethodGet, request(func(q url.Values) { q.Del("response_type") }), http.StatusFound, false, oauth.InvalidRequest},
		{"implicit flow", http.MethodGet, request(func(q url.Values) { q.Set("response_type", "token") }), http.StatusFound, false,
			oauth.UnsupportedResponseType},
		{"no PKCE", http.MethodGet, request(func(q url.Values) { q.Del("code_challenge") }), http.StatusFound, false, oauth.InvalidRequest},
		{"plain PKCE", http.MethodGet, request(func(q url.Values) { q.Set("code_challenge_method", "plain") }), http.StatusFound, false,
			oauth.InvalidRequest},
		{"another server's resource", http.MethodGet, request(func(q url.Values) { q.Set("resource", "https://other.example/mcp") }),
			http.StatusFound, false, oauth.InvalidTarget},
		{"repeated scope", http.MethodGet, request(func(q url.Values) { q["scope"] = []string{"mcp:read", "mcp:write"} }),
			http.StatusFound, false, oauth.InvalidRequest},
		{"well-formed", http.MethodGet, request(nil), http.StatusOK, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, h, body := oauthtest.Do(t, as.HTTP, tc.method, as.URL+"/authorize?"+tc.query.Encode(), nil, nil)
			if status != tc.status {
				t.Fatalf("%d %s, want %d", status, body, tc.status)
			}
			if tc.page {
				if !strings.HasPrefix(h.Get("Content-Type"), "text/html") || h.Get("Location") != "" ||
					!strings.Contains(h.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
					t.Fatalf("not a page of the server's own: %v", h)
				}
				return
			}
			to, err := url.Parse(h.Get("Location"))
			if err != nil || !strings.HasPrefix(to.String(), client.Redirects[0]+"?") {
				t.Fatalf("sent to %q", h.Get("Location"))
			}
			got := to.Query()
			if got.Get("error") != string(tc.code) || got.Get("state") != tc.query.Get("state") || got.Get("iss") != testIssuer {
				t.Errorf("redirect query %v, want error %s", got, tc.code)
			}
		})
	}
}

// A source over its limit of authorization requests gets a page saying how
// long to wait, before anything of the request is looked at.
func TestAuthorizationRequestsAreLimitedPerSource(t *testing.T) {
	cfg := testConfig(t, storagetest.Badger(t))
	cfg.AuthorizeLimit = NewRateLimiter(1, time.Hour, 0)
	as := serve(t, newServer(t, cfg))
	status, h, _ := oauthtest.Do(t, as.HTTP, http.MethodGet, as.URL+"/authorize?client_id=nobody", nil, nil)
	if status != http.StatusTooManyRequests || h.Get("Retry-After") == "" || !strings.HasPrefix(h.Get("Content-Type"), "text/html") {
		t.Fatalf("%d %v", status, h)
	}
}
