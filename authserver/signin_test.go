package authserver

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// fakeUpstream is an identity provider that is never reached.
type fakeUpstream struct{}

func (fakeUpstream) Name() string { return "oidc" }
func (fakeUpstream) AuthCodeURL(state, _, _, _ string) string {
	return "https://idp.example/auth?state=" + state
}
func (fakeUpstream) Exchange(context.Context, string, string, string, string) (*upstream.Identity, error) {
	panic("no login reaches the provider in these tests")
}

// The pages after the authorization request (consent, the built-in login
// and the upstream's callback) refuse what they cannot take on a page of
// their own, never at the client: without a valid request or login state
// there is no client to send an error to.
func TestSignInPagesRefuse(t *testing.T) {
	withPasswords := testConfig(t, storagetest.Badger(t))
	withUpstream := testConfig(t, storagetest.Badger(t))
	withUpstream.Passwords, withUpstream.Upstream = nil, fakeUpstream{}
	for _, tc := range []struct {
		name   string
		cfg    Config
		method string
		path   string
		form   url.Values
		status int
	}{
		{"consent by GET", withPasswords, http.MethodGet, pathConsent, nil, http.StatusMethodNotAllowed},
		{"consent to an unknown request", withPasswords, http.MethodPost, pathConsent, url.Values{"request": {"forged"}, "decision": {"approve"}},
			http.StatusBadRequest},
		{"consent with a repeated decision", withPasswords, http.MethodPost, pathConsent, url.Values{"decision": {"deny", "approve"}},
			http.StatusBadRequest},
		{"login by PUT", withPasswords, http.MethodPut, pathLogin, nil, http.StatusMethodNotAllowed},
		{"login without the built-in user list", withUpstream, http.MethodGet, pathLogin, url.Values{"state": {"s"}}, http.StatusMethodNotAllowed},
		{"login with an unknown state", withPasswords, http.MethodPost, pathLogin, url.Values{"state": {"forged"}, "username": {"alice"}, "password": {"pw"}},
			http.StatusBadRequest},
		{"callback without an upstream", withPasswords, http.MethodGet, pathCallback, url.Values{"state": {"s"}, "code": {"c"}}, http.StatusMethodNotAllowed},
		{"callback by POST", withUpstream, http.MethodPost, pathCallback, nil, http.StatusMethodNotAllowed},
		{"callback without state", withUpstream, http.MethodGet, pathCallback, url.Values{"code": {"c"}}, http.StatusBadRequest},
		{"callback with an unknown state", withUpstream, http.MethodGet, pathCallback, url.Values{"state": {"forged"}, "code": {"c"}}, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := serve(t, newServer(t, tc.cfg))
			target, body := as.URL+tc.path, []byte(nil)
			header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			if tc.method == http.MethodPost {
				body = []byte(tc.form.Encode())
			} else if tc.form != nil {
				target += "?" + tc.form.Encode()
			}
			status, h, page := oauthtest.Do(t, as.HTTP, tc.method, target, header, body)
			if status != tc.status || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || h.Get("Location") != "" {
				t.Fatalf("%d %v %s, want a %d page", status, h, page, tc.status)
			}
		})
	}
}
