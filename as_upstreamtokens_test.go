package mcpauth

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/githubmcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Users' GitHub tokens kept for a backend that calls the GitHub API as
// them: the fake GitHub issues them and checks them at its API, which a
// real MCP server (internal/githubmcp) calls with the token the gate
// handed it.

func newSealKey(t *testing.T) string {
	t.Helper()
	k := make([]byte, state.SealKeySize)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// githubAPIBackend starts the GitHub-API MCP server against gh's API.
func githubAPIBackend(t *testing.T, gh *fakeidp.GitHub) string {
	t.Helper()
	backend := httptest.NewServer(githubmcp.Handler(gh.APIURL))
	t.Cleanup(backend.Close)
	return backend.Listener.Addr().String()
}

// recordingTransport sends each request with an access token and keeps
// every response's headers and body as the client reads it (bodies may be
// event streams that never end), all the MCP client gets to see.
type recordingTransport struct {
	token string
	mu    sync.Mutex
	seen  bytes.Buffer
}

func (rt *recordingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set("Authorization", "Bearer "+rt.token)
	c, _ := tlsClient()
	resp, err := c.Transport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	_ = resp.Header.Write(&rt.seen)
	rt.mu.Unlock()
	resp.Body = struct {
		io.Reader
		io.Closer
	}{io.TeeReader(resp.Body, rt), resp.Body}
	return resp, nil
}

// Write records what a response body yields.
func (rt *recordingTransport) Write(p []byte) (int, error) {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return rt.seen.Write(p)
}

func (rt *recordingTransport) contains(s string) bool {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	return bytes.Contains(rt.seen.Bytes(), []byte(s))
}

// githubUser calls the backend's github_user tool in a new MCP session
// with the access token.
func githubUser(t *testing.T, rt *recordingTransport) (githubmcp.User, error) {
	t.Helper()
	transport := &mcp.StreamableClientTransport{Endpoint: canonicalResource(), HTTPClient: &http.Client{Transport: rt}}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "upstream-token-test", Version: "0"}, nil).Connect(t.Context(), transport, nil)
	if err != nil {
		return githubmcp.User{}, err
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "github_user", Arguments: map[string]any{}})
	if err != nil {
		return githubmcp.User{}, err
	}
	if res.IsError {
		b, _ := json.Marshal(res.Content)
		return githubmcp.User{}, fmt.Errorf("tool error: %s", b)
	}
	var u githubmcp.User
	b, _ := json.Marshal(res.StructuredContent)
	return u, json.Unmarshal(b, &u)
}

// lastAPIToken is the token the fake GitHub's /user was last called with.
func lastAPIToken(gh *fakeidp.GitHub) string {
	seen := gh.APITokens(fakeidp.GitHubAPIPrefix + "/user")
	if len(seen) == 0 {
		return ""
	}
	return seen[len(seen)-1]
}

// assertSealedAtRest checks that neither the store's values nor any file
// of the Badger directory hold any of the secrets in the clear.
func assertSealedAtRest(t *testing.T, storagePath string, secrets ...string) {
	t.Helper()
	st := sharedStore(t, storagePath)
	if err := st.List(t.Context(), "", func(k string, v []byte) error {
		for _, s := range secrets {
			if bytes.Contains(v, []byte(s)) {
				t.Errorf("the stored value of %s holds an upstream token in the clear", k)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	files := 0
	_ = filepath.Walk(storagePath, func(p string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		files++
		for _, s := range secrets {
			if bytes.Contains(b, []byte(s)) {
				t.Errorf("%s holds an upstream token in the clear", filepath.Base(p))
			}
		}
		return nil
	})
	if files == 0 {
		t.Fatalf("no files in %s: the check proves nothing", storagePath)
	}
}

// The example: each user's own GitHub token reaches the backend, which
// calls the GitHub API with it; the MCP client, the logs and the store
// never show it.
func TestExampleGitHubAPI(t *testing.T) {
	octocat := fakeidp.GitHubUser{ID: 583231, Login: "octocat", Orgs: []string{"acme"},
		Emails: []fakeidp.GitHubEmail{{Email: "octo@example.com", Primary: true, Verified: true}}}
	hubot := fakeidp.GitHubUser{ID: 1000, Login: "hubot", Orgs: []string{"acme"}}
	gh := fakeidp.NewGitHub(t, octocat)
	t.Setenv("GITHUB_CLIENT_ID", gh.ClientID)
	t.Setenv("GITHUB_CLIENT_SECRET", gh.ClientSecret)
	t.Setenv("UPSTREAM_TOKEN_KEY", newSealKey(t))
	raw, err := os.ReadFile(filepath.Join("example", "github-api.Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	storagePath, logDir := t.TempDir(), t.TempDir()
	site := strings.TrimPrefix(siteAddr(), "https://")
	cf := strings.NewReplacer(
		"mcp.example.com {", fmt.Sprintf("%s {\n\tlog {\n\t\toutput file %s\n\t}", site, filepath.Join(logDir, "access.log")),
		"localhost:8082", githubAPIBackend(t, gh),
		"client_secret {env.GITHUB_CLIENT_SECRET}", fmt.Sprintf("client_secret {env.GITHUB_CLIENT_SECRET}\n\t\t\tbase_url %s\n\t\t\tapi_url %s", gh.BaseURL, gh.APIURL),
	).Replace(string(raw))
	startCaddy(t, globalOptions(storagePath, filepath.Join(logDir, "caddy.log"))+cf)

	call := func(user fakeidp.GitHubUser) (githubmcp.User, *recordingTransport) {
		t.Helper()
		gh.SetUser(user)
		transport, handler := sdkClient(t, newBrowser(t), "", gh.BaseURL)
		if id := whoamiGitHub(t, transport); id.Login != user.Login || id.ID != user.ID {
			t.Fatalf("the backend acted as %+v, want %s", id, user.Login)
		}
		tok, err := handler.TokenSource(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		at, err := tok.Token()
		if err != nil {
			t.Fatal(err)
		}
		rt := &recordingTransport{token: at.AccessToken}
		u, err := githubUser(t, rt)
		if err != nil {
			t.Fatal(err)
		}
		return u, rt
	}
	first, seenByOcto := call(octocat)
	second, seenByHubot := call(hubot)
	if first.Login != "octocat" || second.Login != "hubot" {
		t.Errorf("the backend acted as %q and %q, want octocat and hubot", first.Login, second.Login)
	}
	issued := gh.Issued()
	if len(issued) != 2 || issued[0].Login != "octocat" || issued[1].Login != "hubot" || issued[0].AccessToken == issued[1].AccessToken {
		t.Fatalf("GitHub issued %+v, want one token for each user", issued)
	}
	if got := lastAPIToken(gh); got != issued[1].AccessToken {
		t.Error("the API was last called with another token than hubot's")
	}
	var secrets []string
	for _, tok := range issued {
		secrets = append(secrets, tok.AccessToken)
		for _, rt := range []*recordingTransport{seenByOcto, seenByHubot} {
			if rt.contains(tok.AccessToken) {
				t.Error("a GitHub token reached the MCP client")
			}
		}
	}
	assertSealedAtRest(t, storagePath, secrets...)
	assertNoSecretsLogged(t, logDir, secrets...)
}

// whoamiGitHub connects through transport and calls github_user.
func whoamiGitHub(t *testing.T, transport mcp.Transport) githubmcp.User {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "upstream-token-test", Version: "0"}, nil).Connect(t.Context(), transport, nil)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "github_user", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("github_user: %v %+v", err, res)
	}
	var u githubmcp.User
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &u); err != nil {
		t.Fatal(err)
	}
	return u
}

// githubTokensSite is the test site with GitHub login, upstream tokens
// kept, and the GitHub-API backend, after the global options.
func githubTokensSite(t *testing.T, gh *fakeidp.GitHub, global, logDir string) string {
	t.Helper()
	return githubSite(t, gh, global, logDir, "upstream_tokens {\n\t\t\tkey "+newSealKey(t)+"\n\t\t}")
}

// githubSite is the test site with GitHub login and the GitHub-API
// backend, with extra in its mcp_auth block, after the global options.
func githubSite(t *testing.T, gh *fakeidp.GitHub, global, logDir, extra string) string {
	t.Helper()
	return global + fmt.Sprintf(`
%s {
	log {
		output file %s
	}
	mcp_auth {
		resource /mcp {
			scopes mcp:tools
		}
		upstream github {
			client_id %s
			client_secret %s
			base_url %s
			api_url %s
			scopes repo
		}
		%s
		allow everyone
	}
	reverse_proxy %s {
		header_up Authorization "Bearer {http.auth.upstream.access_token}"
	}
}
`, siteAddr(), filepath.Join(logDir, "access.log"), gh.ClientID, gh.ClientSecret, gh.BaseURL, gh.APIURL, extra, githubAPIBackend(t, gh))
}

// githubLogin logs in through the fake GitHub and redeems the code. The
// consent page says, in words, what the backend may do at GitHub as the
// user.
func githubLogin(t *testing.T, e *asEnv, c oauthtest.Client, gh *fakeidp.GitHub) oauthtest.TokenSet {
	t.Helper()
	consent, ts := githubConsent(t, e, c, gh, "")
	for _, want := range []string{"act as you at GitHub", "Read and write all your repositories", ">repo<", "Read your email addresses"} {
		if !strings.Contains(consent, want) {
			t.Errorf("the consent page does not say %q", want)
		}
	}
	return ts
}

// githubConsent logs in through the fake GitHub, asking for scope unless
// empty, and redeems the code; it returns the consent page approved on
// the way.
func githubConsent(t *testing.T, e *asEnv, c oauthtest.Client, gh *fakeidp.GitHub, scope string) (string, oauthtest.TokenSet) {
	t.Helper()
	p := oauthtest.NewPKCE()
	q := authParams(c, p)
	if scope != "" {
		q.Set("scope", scope)
	}
	steps := walk(t, newBrowser(t), authorizeURL(q), gh.BaseURL)
	consent := ""
	for _, s := range steps {
		if strings.Contains(s.Body, `value="approve"`) {
			consent = s.Body
		}
	}
	if consent == "" {
		t.Fatal("the login showed no consent page")
	}
	loc := redirectedTo(t, steps)
	return consent, e.Exchange(t, codeForm(c, loc.Query().Get("code"), p), nil)
}

// The consent page tells the user what the backend may do at the
// provider as them only when the site keeps their provider token.
func TestConsentNamesProviderAccessOnlyWithUpstreamTokens(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 7, Login: "monalisa"})
	e := &asEnv{storagePath: t.TempDir(), logDir: t.TempDir()}
	startCaddy(t, githubSite(t, gh, globalOptions(e.storagePath, filepath.Join(e.logDir, "caddy.log")), e.logDir, ""))
	e.Server = siteServer(t)
	consent, ts := githubConsent(t, e, e.publicClient(t), gh, "")
	if ts.Access == "" {
		t.Fatal("no access token")
	}
	for _, unwanted := range []string{"act as you", "GitHub", "Read and write all your repositories", ">repo<"} {
		if strings.Contains(consent, unwanted) {
			t.Errorf("without upstream_tokens, the consent page says %q", unwanted)
		}
	}
	if _, claims := oauthtest.DecodeJWT(t, ts.Access); claims["upstream_token_id"] != nil {
		t.Errorf("without upstream_tokens, the access token names an upstream token: %v", claims["upstream_token_id"])
	}
}

// Introspection and userinfo answers about the tokens of a grant that
// holds the user's GitHub token show neither that token, nor its refresh
// token, nor the id of its record: the id is a handle to the token that
// only the server's own signed tokens should carry.
func TestUpstreamTokenNotInIntrospectionOrUserinfo(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 7, Login: "monalisa",
		Emails: []fakeidp.GitHubEmail{{Email: "mona@example.com", Primary: true, Verified: true}}})
	gh.ExpireTokens(time.Hour)
	rsSecret := strings.Repeat("r", 24)
	e := &asEnv{storagePath: t.TempDir(), logDir: t.TempDir()}
	startCaddy(t, githubSite(t, gh, globalOptions(e.storagePath, filepath.Join(e.logDir, "caddy.log")), e.logDir,
		"introspection_client rs "+rsSecret+"\n\t\tupstream_tokens {\n\t\t\tkey "+newSealKey(t)+"\n\t\t}"))
	e.Server = siteServer(t)
	_, ts := githubConsent(t, e, e.publicClient(t), gh, "openid profile email mcp:tools")
	_, claims := oauthtest.DecodeJWT(t, ts.Access)
	id, _ := claims["upstream_token_id"].(string)
	issued := gh.Issued()
	if id == "" || len(issued) != 1 || issued[0].RefreshToken == "" {
		t.Fatalf("want an access token naming an upstream token and one GitHub token with a refresh token: id %q, issued %d", id, len(issued))
	}
	secrets := []string{issued[0].AccessToken, issued[0].RefreshToken, id, "upstream_token"}

	check := func(what string, status int, body []byte, want string) {
		t.Helper()
		if status != http.StatusOK || !strings.Contains(string(body), want) {
			t.Fatalf("%s: %d %s, want 200 with %s", what, status, body, want)
		}
		for _, s := range secrets {
			if strings.Contains(string(body), s) {
				t.Errorf("%s shows %.12s…: %s", what, s, body)
			}
		}
	}
	basic := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("rs", rsSecret)}, "Content-Type": {"application/x-www-form-urlencoded"}}
	for name, tok := range map[string]string{"access": ts.Access, "refresh": ts.Refresh} {
		status, _, body := oauthtest.Do(t, e.HTTP, http.MethodPost, siteAddr()+"/introspect", basic, []byte(url.Values{"token": {tok}}.Encode()))
		check("introspection of the "+name+" token", status, body, `"active":true`)
	}
	status, _, body := oauthtest.Do(t, e.HTTP, http.MethodGet, siteAddr()+"/userinfo", http.Header{"Authorization": {"Bearer " + ts.Access}}, nil)
	check("userinfo", status, body, "mona@example.com")
}

// A GitHub app's expiring user token is refreshed once it is due, once
// for many concurrent requests; a token that cannot be refreshed sends the
// client back through login; revoking the grant removes the token and
// revokes it at GitHub. On Badger and on Redis, where the stored bytes
// hold no token either.
func TestUpstreamTokenRefreshAndRevocation(t *testing.T) {
	t.Run("badger", func(t *testing.T) {
		storagePath, logDir := t.TempDir(), t.TempDir()
		upstreamTokenLifecycle(t, globalOptions(storagePath, filepath.Join(logDir, "caddy.log")), logDir,
			func() storage.Store { return testStore(t, storagePath) },
			func(secrets ...string) { assertSealedAtRest(t, storagePath, secrets...) })
	})
	t.Run("redis", func(t *testing.T) {
		url, logDir := redistest.Start(t), t.TempDir()
		redisStore := func() storage.Store {
			r, err := storage.OpenRedis(t.Context(), url, storage.DefaultRedisPrefix, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Close() })
			return r
		}
		upstreamTokenLifecycle(t, redisGlobalOptions(url, "", filepath.Join(logDir, "caddy.log")), logDir,
			func() storage.Store { return storage.Prefixed(redisStore(), siteKeyPrefix(siteAddr())) },
			func(secrets ...string) {
				n := 0
				if err := redisStore().List(t.Context(), "", func(k string, v []byte) error {
					n++
					for _, s := range secrets {
						if bytes.Contains(v, []byte(s)) || strings.Contains(k, s) {
							t.Errorf("Redis holds an upstream token in the clear under %s", k)
						}
					}
					return nil
				}); err != nil || n == 0 {
					t.Fatalf("listing Redis: %d keys, %v", n, err)
				}
			})
	})
}

func upstreamTokenLifecycle(t *testing.T, global, logDir string, siteStore func() storage.Store, assertAtRest func(secrets ...string)) {
	const lifetime = 3 * time.Second
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 7, Login: "monalisa"})
	gh.ExpireTokens(lifetime)
	e := &asEnv{logDir: logDir}
	startCaddy(t, githubTokensSite(t, gh, global, e.logDir))
	e.Server = siteServer(t)
	c := e.publicClient(t)
	st := siteStore()

	ts := githubLogin(t, e, c, gh)
	if _, claims := oauthtest.DecodeJWT(t, ts.Access); claims["upstream_token_id"] == "" {
		t.Fatal("the access token names no upstream token")
	}
	rt := &recordingTransport{token: ts.Access}
	if u, err := githubUser(t, rt); err != nil || u.Login != "monalisa" {
		t.Fatalf("github_user: %+v %v", u, err)
	}
	first := gh.Issued()[0]
	if lastAPIToken(gh) != first.AccessToken {
		t.Fatal("the backend did not call the API with the user's token")
	}

	t.Run("refreshed once when due", func(t *testing.T) {
		time.Sleep(lifetime)
		before := gh.TokenRequests()
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				if u, err := githubUser(t, &recordingTransport{token: ts.Access}); err != nil || u.Login != "monalisa" {
					t.Errorf("github_user after expiry: %+v %v", u, err)
				}
			})
		}
		wg.Wait()
		if n := gh.TokenRequests() - before; n != 1 {
			t.Errorf("%d refreshes at GitHub for 5 concurrent requests, want 1", n)
		}
		issued := gh.Issued()
		if len(issued) != 2 || lastAPIToken(gh) != issued[1].AccessToken || gh.Valid(first.AccessToken) {
			t.Errorf("after the refresh the API saw an old token, or none was issued: %d issued", len(issued))
		}
		assertAtRest(first.AccessToken, first.RefreshToken, issued[1].AccessToken, issued[1].RefreshToken)
	})

	t.Run("unrefreshable sends the user to log in again", func(t *testing.T) {
		gh.Handle("/login/oauth/access_token", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"error":"bad_refresh_token","error_description":"The refresh token passed is incorrect or expired."}`))
		}))
		defer gh.Handle("/login/oauth/access_token", nil)
		time.Sleep(lifetime)
		status, hdr, _ := oauthtest.Do(t, e.HTTP, http.MethodPost, canonicalResource(), oauthtest.MCPHeader(ts.Access), []byte(oauthtest.MCPInitialize))
		challenge := hdr.Get("WWW-Authenticate")
		if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) || !strings.Contains(challenge, "resource_metadata=") {
			t.Errorf("request with a dead upstream token: %d %q, want 401 with an invalid_token challenge", status, challenge)
		}
		if keys := storeKeys(t, st, state.KindUpstreamToken); len(keys) != 0 {
			t.Errorf("the dead upstream token is still stored: %v", keys)
		}
		// The client's refresh fails too: the user must log in again.
		if status, m := e.refresh(t, c, ts.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("refresh of a grant whose upstream token is gone: %d %v", status, m)
		}
	})

	t.Run("revocation removes the token and revokes it at GitHub", func(t *testing.T) {
		again := githubLogin(t, e, c, gh)
		if u, err := githubUser(t, &recordingTransport{token: again.Access}); err != nil || u.Login != "monalisa" {
			t.Fatalf("github_user after a new login: %+v %v", u, err)
		}
		latest := gh.Issued()[len(gh.Issued())-1]
		if keys := storeKeys(t, st, state.KindUpstreamToken); len(keys) != 1 {
			t.Fatalf("%d upstream tokens stored, want 1", len(keys))
		}
		status, _, _ := e.PostForm(t, "/revoke", url.Values{"token": {again.Refresh}, "token_type_hint": {"refresh_token"}, "client_id": {c.ID}}, nil)
		if status != http.StatusOK {
			t.Fatalf("revoke: %d", status)
		}
		if keys := storeKeys(t, st, state.KindUpstreamToken); len(keys) != 0 {
			t.Errorf("the upstream token is still stored after revocation: %v", keys)
		}
		// The provider is told in the background.
		deadline := time.Now().Add(5 * time.Second)
		for gh.Valid(latest.AccessToken) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if gh.Valid(latest.AccessToken) {
			t.Error("the GitHub token is still valid at GitHub after the grant was revoked")
		}
		status, hdr, _ := oauthtest.Do(t, e.HTTP, http.MethodPost, canonicalResource(), oauthtest.MCPHeader(again.Access), []byte(oauthtest.MCPInitialize))
		if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("access token of the revoked grant: %d", status)
		}
	})

	var secrets []string
	for _, tok := range gh.Issued() {
		secrets = append(secrets, tok.AccessToken, tok.RefreshToken)
	}
	assertNoSecretsLogged(t, e.logDir, secrets...)
}

// upstream_tokens needs a provider with tokens and a key of the right
// size; the key may come from the environment.
func TestUpstreamTokensConfig(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 1, Login: "x"})
	github := fmt.Sprintf("upstream github {\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tbase_url %s\n\t\t}\n\t\tallow everyone", gh.ClientID, gh.ClientSecret, gh.BaseURL)
	key := newSealKey(t)
	t.Setenv("TEST_UPSTREAM_TOKEN_KEY", key)
	tokensBlock := func(lines ...string) string {
		return "\n\t\tupstream_tokens {\n\t\t\t" + strings.Join(lines, "\n\t\t\t") + "\n\t\t}"
	}
	cases := []struct {
		name, auth string
		wantErr    []string
	}{
		{"key from the environment", github + tokensBlock("key {env.TEST_UPSTREAM_TOKEN_KEY}"), nil},
		{"rotated keys", github + tokensBlock("key "+newSealKey(t), "old_key {env.TEST_UPSTREAM_TOKEN_KEY}"), nil},
		{"unset variable", github + tokensBlock("key {env.TEST_UPSTREAM_TOKEN_KEY_UNSET}"), []string{"upstream_tokens", "key is empty"}},
		{"short key", github + tokensBlock("key "+base64.StdEncoding.EncodeToString(make([]byte, 16))), []string{"upstream_tokens", "32 bytes"}},
		{"not base64", github + tokensBlock("key not-a-key!"), []string{"32 bytes"}},
		{"same key twice", github + tokensBlock("key "+key, "old_key "+key), []string{"given twice"}},
		{"built-in users", usersUpstream() + tokensBlock("key "+key), []string{"upstream_tokens", "github, google or oidc"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertConfigLoads(t, asSite(t, t.TempDir(), t.TempDir(), tc.auth), tc.wantErr)
		})
	}
}
