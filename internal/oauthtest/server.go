package oauthtest

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Server is an authorization server under test, reached the way an MCP
// client reaches it.
type Server struct {
	// URL is the origin its endpoints are under, such as
	// https://localhost:8443.
	URL string
	// HTTP sends the requests: like an MCP client's, it should keep no
	// cookies and not follow redirects.
	HTTP *http.Client
}

// Client is a client registered at the server.
type Client struct {
	ID, Secret string
	Redirects  []string
}

// TokenSet is a successful token response.
type TokenSet struct {
	Access, Refresh, Scope, TokenType string
	ExpiresIn                         int64
	Header                            http.Header
}

// PostForm posts form to the endpoint at path and decodes the JSON answer,
// if any.
func (s *Server) PostForm(t testing.TB, path string, form url.Values, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for k, v := range header {
		h[k] = v
	}
	status, hdr, raw := Do(t, s.HTTP, http.MethodPost, s.URL+path, h, []byte(form.Encode()))
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return status, hdr, m
}

// Register posts a registration body to /register and returns the decoded
// answer, failing the test if it is not JSON.
func (s *Server) Register(t testing.TB, body string, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	status, hdr, raw := Do(t, s.HTTP, http.MethodPost, s.URL+"/register", h, []byte(body))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Errorf("POST /register: %d with a body that is not JSON: %q", status, raw)
	}
	return status, hdr, m
}

// RegisterClient registers a client with the metadata meta, failing the
// test unless the server answers 201.
func (s *Server) RegisterClient(t testing.TB, meta map[string]any) Client {
	t.Helper()
	body, _ := json.Marshal(meta)
	status, _, m := s.Register(t, string(body), nil)
	if status != http.StatusCreated {
		t.Fatalf("registering %s: %d %v", body, status, m)
	}
	c := Client{ID: fmt.Sprint(m["client_id"])}
	if secret, ok := m["client_secret"].(string); ok {
		c.Secret = secret
	}
	uris, _ := m["redirect_uris"].([]any)
	for _, u := range uris {
		c.Redirects = append(c.Redirects, fmt.Sprint(u))
	}
	return c
}

// Token posts a token request and decodes the JSON answer, failing the
// test if it is not JSON or if an error answer is not a JSON OAuth error.
func (s *Server) Token(t testing.TB, form url.Values, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for k, v := range header {
		h[k] = v
	}
	status, hdr, raw := Do(t, s.HTTP, http.MethodPost, s.URL+"/token", h, []byte(form.Encode()))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Errorf("POST /token: %d with a body that is not JSON: %q", status, raw)
	}
	if status != http.StatusOK && (m["error"] == nil || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json")) {
		t.Errorf("POST /token error %d without a JSON error: %v %q", status, hdr, raw)
	}
	return status, hdr, m
}

// Exchange posts a token request that must succeed and returns the tokens.
func (s *Server) Exchange(t testing.TB, form url.Values, header http.Header) TokenSet {
	t.Helper()
	status, hdr, m := s.Token(t, form, header)
	if status != http.StatusOK {
		t.Fatalf("token request %s: %d %v", form.Get("grant_type"), status, m)
	}
	ts := TokenSet{Header: hdr}
	ts.Access, _ = m["access_token"].(string)
	ts.Refresh, _ = m["refresh_token"].(string)
	ts.Scope, _ = m["scope"].(string)
	ts.TokenType, _ = m["token_type"].(string)
	if n, ok := m["expires_in"].(float64); ok {
		ts.ExpiresIn = int64(n)
	}
	if ts.Access == "" {
		t.Fatalf("no access_token in %v", m)
	}
	return ts
}

// AuthorizationRequest is the query of an authorization request for c as
// MCP clients send it: the code flow with state, PKCE S256 and resource,
// left out when empty.
func AuthorizationRequest(c Client, p PKCE, resource string) url.Values {
	q := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.ID},
		"redirect_uri":          {c.Redirects[0]},
		"code_challenge":        {p.Challenge},
		"code_challenge_method": {"S256"},
		"state":                 {"st-" + p.Verifier[:10]},
	}
	if resource != "" {
		q.Set("resource", resource)
	}
	return q
}

// CodeRequest is the token request that redeems code for c, for resource,
// left out when empty.
func CodeRequest(c Client, code string, p PKCE, resource string) url.Values {
	form := url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"code_verifier": {p.Verifier},
		"client_id":     {c.ID},
		"redirect_uri":  {c.Redirects[0]},
	}
	if resource != "" {
		form.Set("resource", resource)
	}
	return form
}
