package mcpauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Logins through the upstream identity providers, end to end: the fake
// GitHub, Google and OIDC servers, a browser, and the MCP client's
// token request.

// recordingProxy sits in front of a fake provider and records every token
// the provider's token endpoint issues, so tests can look for them where
// they must never appear.
type recordingProxy struct {
	*httptest.Server
	mu     sync.Mutex
	issued []string
}

func newRecordingProxy(t *testing.T, target string) *recordingProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	p := &recordingProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.ModifyResponse = func(resp *http.Response) error {
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		var m map[string]any
		if json.Unmarshal(body, &m) == nil {
			p.mu.Lock()
			for _, k := range []string{"access_token", "refresh_token", "id_token"} {
				if s, ok := m[k].(string); ok && s != "" {
					p.issued = append(p.issued, s)
				}
			}
			p.mu.Unlock()
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	p.Server = httptest.NewServer(rp)
	t.Cleanup(p.Close)
	return p
}

// tokens returns the tokens the provider issued so far.
func (p *recordingProxy) tokens() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.issued...)
}

// assertNoUpstreamTokens checks that none of the provider's tokens is in
// what the MCP client got: token responses and the claims of our tokens.
func assertNoUpstreamTokens(t *testing.T, upstream []string, got ...string) {
	t.Helper()
	if len(upstream) == 0 {
		t.Fatal("the provider issued no tokens; the check proves nothing")
	}
	for _, g := range got {
		for _, u := range upstream {
			// For an ID token its signature alone identifies it.
			sig := u[strings.LastIndex(u, ".")+1:]
			if strings.Contains(g, sig) {
				t.Errorf("an upstream token reached the client: %.80s…", g)
			}
		}
	}
}

// deniedLogin checks that the login ended back at the client with
// error=access_denied, state and iss, and that no code was sent.
func deniedLogin(t *testing.T, steps []step, c oauthtest.Client, state string) {
	t.Helper()
	assertAuthzResponse(t, redirectedTo(t, steps), c.Redirects[0], state, "access_denied")
	for _, s := range steps {
		if loc := s.location(); loc != nil && loc.Query().Has("code") && strings.HasPrefix(loc.String(), c.Redirects[0]) {
			t.Errorf("a code was sent to the client: %s", loc)
		}
	}
}

func TestGitHubUpstream(t *testing.T) {
	user := fakeidp.GitHubUser{
		ID: 4242, Login: "octocat", Name: "Mona Lisa",
		Emails: []fakeidp.GitHubEmail{
			{Email: "mona@example.com", Primary: true, Verified: true, Visibility: "private"},
			{Email: "unverified@example.com", Verified: false},
		},
		Orgs: []string{"other-org", "acme"},
	}
	gh := fakeidp.NewGitHub(t, user)
	proxy := newRecordingProxy(t, gh.BaseURL)
	e := startAS(t, fmt.Sprintf(`upstream github {
			client_id %s
			client_secret %s
			base_url %s
			api_url %s
		}
		allow orgs acme`, gh.ClientID, gh.ClientSecret, proxy.URL, proxy.URL+fakeidp.GitHubAPIPrefix))
	c := e.publicClient(t)
	var ours, codes []string

	login := func(t *testing.T) (oauthtest.TokenSet, map[string]any) {
		t.Helper()
		p := oauthtest.NewPKCE()
		q := authParams(c, p)
		steps := walk(t, newBrowser(t), authorizeURL(q), proxy.URL)
		loc := redirectedTo(t, steps)
		for _, s := range steps {
			if s.URL.Path == "/authorize/callback" {
				codes = append(codes, s.URL.Query().Get("code")) // GitHub's
			}
		}
		codes = append(codes, loc.Query().Get("code"))
		assertAuthzResponse(t, loc, c.Redirects[0], q.Get("state"), "")
		status, _, m := e.Token(t, codeForm(c, loc.Query().Get("code"), p), nil)
		if status != http.StatusOK {
			t.Fatalf("token: %d %v", status, m)
		}
		raw, _ := json.Marshal(m)
		ts := oauthtest.TokenSet{Access: m["access_token"].(string)}
		ts.Refresh, _ = m["refresh_token"].(string)
		_, claims := oauthtest.DecodeJWT(t, ts.Access)
		ours = append(ours, ts.Access, ts.Refresh)
		claimsJSON, _ := json.Marshal(claims)
		assertNoUpstreamTokens(t, proxy.tokens(), string(raw), string(claimsJSON))
		return ts, claims
	}

	ts, claims := login(t)
	if claims["sub"] != "github:4242" || claims["email"] != "mona@example.com" {
		t.Errorf("claims %v, want sub github:4242 and the verified primary email", claims)
	}
	if e.mcpStatus(t, ts.Access) != http.StatusOK {
		t.Error("token refused at /mcp")
	}

	// Logins can be renamed; the subject is the numeric id.
	renamed := user
	renamed.Login = "octocat-renamed"
	gh.SetUser(renamed)
	if _, claims := login(t); claims["sub"] != "github:4242" {
		t.Errorf("after a rename sub = %v, want github:4242", claims["sub"])
	}

	t.Run("not in the organization", func(t *testing.T) {
		outsider := user
		outsider.Orgs = []string{"other-org"}
		gh.SetUser(outsider)
		defer gh.SetUser(user)
		q := authParams(c, oauthtest.NewPKCE())
		q.Set("state", "s&t é")
		deniedLogin(t, walk(t, newBrowser(t), authorizeURL(q), proxy.URL), c, "s&t é")
	})

	t.Run("upstream denial", func(t *testing.T) {
		gh.Deny(true)
		defer gh.Deny(false)
		q := authParams(c, oauthtest.NewPKCE())
		loc := redirectedTo(t, walk(t, newBrowser(t), authorizeURL(q), proxy.URL))
		assertAuthzResponse(t, loc, c.Redirects[0], q.Get("state"), "access_denied")
	})

	assertNoSecretsLogged(t, e.logDir, append(ours, proxy.tokens()...)...)
	reportLoggedCodes(t, e.logDir, codes...)
}

func TestGoogleUpstream(t *testing.T) {
	user := fakeidp.User{Subject: "110248495921238986420", Email: "bob@example.com", EmailVerified: true, Name: "Bob Builder", HostedDomain: "example.com"}
	g := fakeidp.NewGoogle(t, user)
	proxy := newRecordingProxy(t, g.URL)
	g.EditDiscovery(func(doc map[string]any) { doc["token_endpoint"] = proxy.URL + g.Paths.Token })
	e := startAS(t, fmt.Sprintf(`upstream google {
			issuer %s
			client_id %s
			client_secret %s
		}
		allow emails *@example.com`, g.URL, g.ClientID, g.ClientSecret))
	c := e.publicClient(t)
	var ours []string

	login := func(t *testing.T) map[string]any {
		t.Helper()
		p := oauthtest.NewPKCE()
		ts := e.Exchange(t, codeForm(c, loginCode(t, authParams(c, p), g.URL), p), nil)
		ours = append(ours, ts.Access, ts.Refresh)
		_, claims := oauthtest.DecodeJWT(t, ts.Access)
		claimsJSON, _ := json.Marshal(claims)
		assertNoUpstreamTokens(t, proxy.tokens(), ts.Access, ts.Refresh, string(claimsJSON))
		return claims
	}
	if claims := login(t); claims["sub"] != "google:110248495921238986420" || claims["email"] != "bob@example.com" {
		t.Errorf("claims %v", claims)
	}
	moved := user
	moved.Email = "robert@example.com"
	g.SetUser(moved)
	if claims := login(t); claims["sub"] != "google:110248495921238986420" || claims["email"] != "robert@example.com" {
		t.Errorf("after an email change: claims %v, want the same sub", claims)
	}

	for _, tc := range []struct {
		name string
		user fakeidp.User
	}{
		{"unverified email", fakeidp.User{Subject: "2", Email: "eve@example.com", EmailVerified: false}},
		{"other domain", fakeidp.User{Subject: "3", Email: "eve@example.org", EmailVerified: true}},
		{"look-alike domain", fakeidp.User{Subject: "4", Email: "eve@evil-example.com", EmailVerified: true}},
		{"no email", fakeidp.User{Subject: "5"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.SetUser(tc.user)
			defer g.SetUser(user)
			q := authParams(c, oauthtest.NewPKCE())
			deniedLogin(t, walk(t, newBrowser(t), authorizeURL(q), g.URL), c, q.Get("state"))
		})
	}
	assertNoSecretsLogged(t, e.logDir, append(ours, proxy.tokens()...)...)
}

func TestOIDCUpstreamFailures(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "u-7", Email: "carol@example.com", EmailVerified: true, PreferredUsername: "carol"})
	proxy := newRecordingProxy(t, idp.URL)
	idp.EditDiscovery(func(doc map[string]any) { doc["token_endpoint"] = proxy.URL + idp.Paths.Token })
	e := startAS(t, oidcUpstream(idp))
	c := e.publicClient(t)
	other := fakeidp.NewRSAKey(t)

	cases := []struct {
		name  string
		setup func()
	}{
		{"user denies at the provider", func() { idp.Deny(true) }},
		{"wrong nonce", func() { idp.EditIDToken(func(c map[string]any) { c["nonce"] = "not-the-nonce" }) }},
		{"no nonce", func() { idp.EditIDToken(func(c map[string]any) { delete(c, "nonce") }) }},
		{"wrong audience", func() { idp.EditIDToken(func(c map[string]any) { c["aud"] = "another-client" }) }},
		{"wrong issuer", func() { idp.EditIDToken(func(c map[string]any) { c["iss"] = "https://evil.test" }) }},
		{"expired", func() {
			idp.EditIDToken(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() })
		}},
		{"signed with an unpublished key", func() {
			idp.SetIDTokenSigner(func(c map[string]any) (string, error) { return fakeidp.SignRS256(other, idp.KeyID(), c) })
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.setup()
			defer func() { idp.Deny(false); idp.EditIDToken(nil); idp.SetIDTokenSigner(nil) }()
			q := authParams(c, oauthtest.NewPKCE())
			q.Set("state", "oidc/"+tc.name)
			loc := redirectedTo(t, walk(t, newBrowser(t), authorizeURL(q), idp.URL))
			assertAuthzResponse(t, loc, c.Redirects[0], q.Get("state"), "access_denied")
		})
	}

	// The same login works once the provider behaves.
	p := oauthtest.NewPKCE()
	ts := e.Exchange(t, codeForm(c, loginCode(t, authParams(c, p), idp.URL), p), nil)
	if _, claims := oauthtest.DecodeJWT(t, ts.Access); claims["sub"] != "oidc:u-7" {
		t.Errorf("sub = %v", claims["sub"])
	}
	assertNoUpstreamTokens(t, proxy.tokens(), ts.Access, ts.Refresh)
	// Refused ID tokens must not end up in the logs either.
	assertNoSecretsLogged(t, e.logDir, append(proxy.tokens(), ts.Access, ts.Refresh)...)
}

func TestUpstreamsNeedAllowRules(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 1, Login: "x"})
	g := fakeidp.NewGoogle(t, fakeidp.User{Subject: "1"})
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "1"})
	github := fmt.Sprintf("upstream github {\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tbase_url %s\n\t\t}", gh.ClientID, gh.ClientSecret, gh.BaseURL)
	google := fmt.Sprintf("upstream google {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t}", g.URL, g.ClientID, g.ClientSecret)
	cases := []struct {
		name, auth string
		wantErr    []string // substrings of the error; none: loads
	}{
		{"github without allow", github, []string{"github", "allow"}},
		{"google without allow", google, []string{"google", "allow"}},
		{"oidc without allow", oidcUpstream(idp), nil},
		{"github with allow orgs", github + "\n\t\tallow orgs acme", nil},
		{"github with allow everyone", github + "\n\t\tallow everyone", nil},
		{"google with allow emails", google + "\n\t\tallow emails *@example.com", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertConfigLoads(t, asSite(t, t.TempDir(), t.TempDir(), tc.auth), tc.wantErr)
		})
	}
}
