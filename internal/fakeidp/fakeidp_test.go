package fakeidp

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/oauth2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

const redirectURI = "https://as.example.com/cb"

// noRedirect is a client that returns redirects instead of following them.
var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func authParams(clientID, verifier string) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {clientID},
		"redirect_uri":          {redirectURI},
		"scope":                 {"openid email"},
		"state":                 {"st"},
		"nonce":                 {"nn"},
		"code_challenge":        {s256(verifier)},
		"code_challenge_method": {"S256"},
	}
}

func oidcCode(t *testing.T, o *OIDC, verifier string) string {
	t.Helper()
	loc := Authorize(t, o.URL+o.Paths.Authorize+"?"+authParams(o.ClientID, verifier).Encode())
	if loc.Query().Get("state") != "st" || loc.Query().Get("code") == "" {
		t.Fatalf("redirect = %s", loc)
	}
	return loc.Query().Get("code")
}

func TestOIDCAuthorize(t *testing.T) {
	o := NewOIDC(t, User{Subject: "s"})
	verifier := oauth2.GenerateVerifier()

	get := func(q url.Values) *http.Response {
		resp, err := noRedirect.Get(o.URL + o.Paths.Authorize + "?" + q.Encode())
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	// Client and redirect URI problems are not redirected.
	q := authParams("other", verifier)
	if resp := get(q); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unknown client: %s", resp.Status)
	}
	o.SetRedirectURIs("https://as.example.com/other")
	if resp := get(authParams(o.ClientID, verifier)); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("unregistered redirect_uri: %s", resp.Status)
	}
	o.SetRedirectURIs(redirectURI)

	// Request problems are.
	for name, edit := range map[string]func(url.Values){
		"no PKCE":         func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") },
		"plain PKCE":      func(q url.Values) { q.Set("code_challenge_method", "plain") },
		"no openid":       func(q url.Values) { q.Set("scope", "email") },
		"implicit":        func(q url.Values) { q.Set("response_type", "token") },
		"denied politely": func(url.Values) { o.Deny(true) },
	} {
		q := authParams(o.ClientID, verifier)
		edit(q)
		resp := get(q)
		o.Deny(false)
		loc, _ := resp.Location()
		if resp.StatusCode != http.StatusFound || loc == nil || loc.Query().Get("error") == "" || loc.Query().Get("state") != "st" {
			t.Errorf("%s: %s %v", name, resp.Status, loc)
		}
	}
}

func TestOIDCToken(t *testing.T) {
	o := NewOIDC(t, User{Subject: "s", Email: "e@example.com", EmailVerified: true})
	verifier := oauth2.GenerateVerifier()
	form := func(code string) url.Values {
		return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI}, "code_verifier": {verifier}}
	}
	idp := &oauthtest.Server{URL: o.URL, HTTP: http.DefaultClient}
	creds := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(o.ClientID, o.ClientSecret)}}

	// Both authentication methods at once is an error.
	f := form(oidcCode(t, o, verifier))
	f.Set("client_id", o.ClientID)
	f.Set("client_secret", o.ClientSecret)
	if status, _, body := idp.PostForm(t, o.Paths.Token, f, creds); status != http.StatusBadRequest || body["error"] != "invalid_request" {
		t.Errorf("two auth methods: %d %v", status, body)
	}

	// client_secret_post works, once per code.
	code := oidcCode(t, o, verifier)
	f = form(code)
	f.Set("client_id", o.ClientID)
	f.Set("client_secret", o.ClientSecret)
	status, _, body := idp.PostForm(t, o.Paths.Token, f, nil)
	if status != http.StatusOK || body["id_token"] == nil || body["token_type"] != "Bearer" {
		t.Fatalf("client_secret_post: %d %v", status, body)
	}
	if status, _, body := idp.PostForm(t, o.Paths.Token, f, nil); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("reused code: %d %v", status, body)
	}

	// The access token works at userinfo; others do not.
	for tok, want := range map[string]int{body["access_token"].(string): http.StatusOK, "bogus": http.StatusUnauthorized} {
		req, _ := http.NewRequest(http.MethodGet, o.URL+o.Paths.Userinfo, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("userinfo with %q: %s %s", tok, resp.Status, b)
		}
	}

	// Wrong verifier, wrong secret.
	f = form(oidcCode(t, o, verifier))
	f.Set("code_verifier", oauth2.GenerateVerifier())
	if status, _, body := idp.PostForm(t, o.Paths.Token, f, creds); status != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("wrong verifier: %d %v", status, body)
	}
	if status, _, body := idp.PostForm(t, o.Paths.Token, form(oidcCode(t, o, verifier)), http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(o.ClientID, "x")}}); status != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v", status, body)
	}
}

func TestGitHubTokenFormats(t *testing.T) {
	g := NewGitHub(t, GitHubUser{ID: 1, Login: "u"})
	verifier := oauth2.GenerateVerifier()
	code := func() string {
		q := url.Values{
			"client_id": {g.ClientID}, "redirect_uri": {redirectURI}, "scope": {"read:user user:email"}, "state": {"st"},
			"code_challenge": {s256(verifier)}, "code_challenge_method": {"S256"},
		}
		loc := Authorize(t, g.BaseURL+"/login/oauth/authorize?"+q.Encode())
		return loc.Query().Get("code")
	}

	// Without Accept: application/json, GitHub answers form-encoded.
	form := url.Values{"client_id": {g.ClientID}, "client_secret": {g.ClientSecret}, "code": {code()}, "code_verifier": {verifier}}
	resp, err := http.PostForm(g.BaseURL+"/login/oauth/access_token", form)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	vals, _ := url.ParseQuery(string(b))
	if !strings.HasPrefix(vals.Get("access_token"), "gho_") || vals.Get("scope") != "read:user,user:email" || vals.Get("token_type") != "bearer" {
		t.Errorf("form response: %s", b)
	}

	// A JSON body works too, and errors come back as 200.
	body, _ := json.Marshal(map[string]string{"client_id": g.ClientID, "client_secret": g.ClientSecret, "code": "nope", "code_verifier": verifier})
	req, _ := http.NewRequest(http.MethodPost, g.BaseURL+"/login/oauth/access_token", strings.NewReader(string(body)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var e map[string]string
	_ = json.NewDecoder(resp.Body).Decode(&e)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || e["error"] != "bad_verification_code" || e["error_uri"] == "" {
		t.Errorf("bad code: %s %v", resp.Status, e)
	}

	// The API wants a token.
	resp, err = http.Get(g.APIURL + "/user")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("/user without token: %s", resp.Status)
	}
}

func TestGitHubOrgsLinks(t *testing.T) {
	orgs := make([]string, 75)
	for i := range orgs {
		orgs[i] = "o"
	}
	g := NewGitHub(t, GitHubUser{ID: 1, Login: "u", Orgs: orgs})
	g.srv.mu.Lock()
	g.tokens["t"] = &githubGrant{scopes: []string{"read:org"}, user: GitHubUser{ID: 1, Login: "u", Orgs: orgs}}
	g.srv.mu.Unlock()

	var pages, total int
	next := g.APIURL + "/user/orgs"
	for next != "" {
		req, _ := http.NewRequest(http.MethodGet, next, nil)
		req.Header.Set("Authorization", "token t")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var batch []map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&batch)
		resp.Body.Close()
		pages++
		total += len(batch)
		next = ""
		for part := range strings.SplitSeq(resp.Header.Get("Link"), ", ") {
			if target, ok := strings.CutSuffix(part, `>; rel="next"`); ok {
				next = strings.TrimPrefix(target, "<")
			}
		}
	}
	if pages != 3 || total != 75 {
		t.Errorf("default page size 30: got %d pages, %d orgs", pages, total)
	}
}
