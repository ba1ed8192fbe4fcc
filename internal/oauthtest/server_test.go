package oauthtest

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
)

// tokenEndpoint answers like an authorization server's /token: tokens for
// the code "good", an OAuth error otherwise.
func tokenEndpoint(t *testing.T) *Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path != "/token" || r.PostFormValue("code") != "good" {
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"access_token": "at", "refresh_token": "rt", "token_type": "Bearer", "scope": "mcp:tools", "expires_in": 300,
		})
	}))
	t.Cleanup(srv.Close)
	return &Server{URL: srv.URL, HTTP: srv.Client()}
}

func TestExchangeReadsTheTokenResponse(t *testing.T) {
	s := tokenEndpoint(t)
	c := Client{ID: "c1", Redirects: []string{"http://127.0.0.1:9/cb"}}
	ts := s.Exchange(t, CodeRequest(c, "good", NewPKCE(), ""), nil)
	if ts.Access != "at" || ts.Refresh != "rt" || ts.TokenType != "Bearer" || ts.Scope != "mcp:tools" || ts.ExpiresIn != 300 ||
		ts.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("token set %+v", ts)
	}
}

func TestTokenReturnsTheOAuthError(t *testing.T) {
	s := tokenEndpoint(t)
	status, _, m := s.Token(t, url.Values{"grant_type": {"authorization_code"}, "code": {"bad"}}, nil)
	if status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("%d %v", status, m)
	}
}

func TestRequestsCarryTheClientAndPKCE(t *testing.T) {
	c := Client{ID: "c1", Redirects: []string{"https://client.test/cb"}}
	p := NewPKCE()
	q := AuthorizationRequest(c, p, "https://rs.test/mcp")
	if q.Get("client_id") != "c1" || q.Get("redirect_uri") != c.Redirects[0] || q.Get("code_challenge") != p.Challenge ||
		q.Get("code_challenge_method") != "S256" || q.Get("resource") != "https://rs.test/mcp" || q.Get("state") == "" {
		t.Errorf("authorization request %v", q)
	}
	form := CodeRequest(c, "code-1", p, "")
	if form.Get("code_verifier") != p.Verifier || form.Get("code") != "code-1" || form.Has("resource") {
		t.Errorf("code request %v", form)
	}
}
