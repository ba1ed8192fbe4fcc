package mcpauth

import (
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Helpers that drive the authorization server of a real Caddy the way MCP
// clients do: registering clients, building authorization requests,
// posting token requests and checking what the server answers.

// asEnv is the authorization server one test runs.
type asEnv struct {
	// Server reaches the site (siteAddr) like an MCP client: without
	// cookies, not following redirects.
	*oauthtest.Server
	storagePath, logDir string
}

// startAS starts asSite (the demo MCP server at /mcp, scopes mcp:tools and
// mcp:admin) with authConfig inside its mcp_auth block.
func startAS(t *testing.T, authConfig string) *asEnv {
	t.Helper()
	e := &asEnv{storagePath: t.TempDir(), logDir: t.TempDir()}
	startCaddy(t, asSite(t, e.storagePath, e.logDir, authConfig))
	e.Server = siteServer(t)
	return e
}

// siteServer is the test site (siteAddr) as an MCP client reaches it:
// without cookies, not following redirects.
func siteServer(t testing.TB) *oauthtest.Server {
	c := mustTLSClient(t)
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &oauthtest.Server{URL: siteAddr(), HTTP: c}
}

// usersAS starts an authorization server whose users log in with the
// built-in login form (alice), plus extra options.
func usersAS(t *testing.T, extra string) *asEnv {
	t.Helper()
	return startAS(t, usersUpstream()+"\n\t\t"+extra)
}

// canonicalResource is the protected resource of asSite.
func canonicalResource() string { return siteAddr() + "/mcp" }

// testStore joins the store the running Caddy uses and returns the key
// space of the test site (siteAddr).
func testStore(t testing.TB, storagePath string) storage.Store {
	t.Helper()
	return storage.Prefixed(sharedStore(t, storagePath), siteKeyPrefix(siteAddr()))
}

// storeKeys returns the live keys of the records of kind.
func storeKeys(t testing.TB, st storage.Store, kind state.Kind) []string {
	t.Helper()
	var keys []string
	if err := st.List(context.Background(), string(kind), func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// publicClient registers a public client with the refresh_token grant.
func (e *asEnv) publicClient(t *testing.T, redirects ...string) oauthtest.Client {
	t.Helper()
	if len(redirects) == 0 {
		redirects = []string{clientRedirect}
	}
	return e.RegisterClient(t, map[string]any{
		"client_name":                "AS test client",
		"redirect_uris":              redirects,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "none",
	})
}

// authParams is a valid authorization request for c at the test site, as
// MCP clients send it.
func authParams(c oauthtest.Client, p oauthtest.PKCE) url.Values {
	return oauthtest.AuthorizationRequest(c, p, canonicalResource())
}

func authorizeURL(q url.Values) string { return siteAddr() + "/authorize?" + q.Encode() }

// assertErrorPage checks an answer that must be an error page of the
// server, never a redirect to a URI it cannot trust.
func assertErrorPage(t *testing.T, what string, status int, hdr http.Header, body []byte, wantStatus int) {
	t.Helper()
	if status != wantStatus || hdr.Get("Location") != "" || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Errorf("%s: %d Location=%q Content-Type=%q, want a %d HTML page without Location; body %.300s",
			what, status, hdr.Get("Location"), hdr.Get("Content-Type"), wantStatus, body)
	}
}

// assertAuthzResponse checks an authorization response (OAuth 2.1 section
// 4.1.2, RFC 9207) at loc: sent to redirectURI, with state byte-exact and
// iss exactly once, and with error wantError or else exactly one code.
func assertAuthzResponse(t *testing.T, loc *url.URL, redirectURI, state, wantError string) {
	t.Helper()
	q := loc.Query()
	base := *loc
	base.RawQuery = ""
	if want, _ := url.Parse(redirectURI); base.String() != (&url.URL{Scheme: want.Scheme, Host: want.Host, Path: want.Path, Opaque: want.Opaque}).String() {
		t.Errorf("response sent to %s, want %s", loc, redirectURI)
	}
	if loc.Fragment != "" {
		t.Errorf("response has a fragment: %s", loc)
	}
	if iss := q["iss"]; len(iss) != 1 || iss[0] != siteAddr() {
		t.Errorf("iss = %q, want exactly [%q]: %s", iss, siteAddr(), loc)
	}
	if got := q["state"]; state != "" && (len(got) != 1 || got[0] != state) {
		t.Errorf("state = %q, want %q", got, state)
	}
	if wantError != "" {
		if q.Get("error") != wantError || q.Has("code") {
			t.Errorf("error = %q (code %q), want error %q: %s", q.Get("error"), q.Get("code"), wantError, loc)
		}
		return
	}
	if len(q["code"]) != 1 || q.Get("code") == "" || q.Has("error") {
		t.Errorf("want exactly one code and no error: %s", loc)
	}
}

// codeForm is the token request redeeming code for c at the test site.
func codeForm(c oauthtest.Client, code string, p oauthtest.PKCE) url.Values {
	return oauthtest.CodeRequest(c, code, p, canonicalResource())
}

// login authorizes the public client c as alice and redeems the code.
func (e *asEnv) login(t *testing.T, c oauthtest.Client, extra url.Values) oauthtest.TokenSet {
	t.Helper()
	p := oauthtest.NewPKCE()
	q := authParams(c, p)
	for k, v := range extra {
		q[k] = v
	}
	return e.Exchange(t, codeForm(c, loginCode(t, q), p), nil)
}

// mcpStatus sends an MCP initialize request with token and returns the status.
func (e *asEnv) mcpStatus(t *testing.T, token string) int {
	t.Helper()
	h := oauthtest.MCPHeader(token)
	status, _, _ := oauthtest.Do(t, e.HTTP, http.MethodPost, canonicalResource(), h,
		[]byte(oauthtest.MCPInitialize))
	return status
}

// logContains reports which of the values appear in the logs in logDir.
func logContains(t *testing.T, logDir string, values ...string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
	var found []string
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range values {
			if v != "" && bytes.Contains(b, []byte(v)) {
				found = append(found, filepath.Base(f)+": "+v[:min(len(v), 12)]+"…")
			}
		}
	}
	return found
}

// reportLoggedCodes notes authorization codes that Caddy's access log
// records as part of the URLs the browser was sent to (the callback's
// query, the Location of the redirect to the client). They are single
// use and short-lived; README should show the log filter that removes
// them. This is reported, not failed.
func reportLoggedCodes(t *testing.T, logDir string, codes ...string) {
	t.Helper()
	if found := logContains(t, logDir, codes...); len(found) > 0 {
		t.Logf("NOTE: authorization codes appear in the logs (request URI / resp_headers.Location): %v", found)
	}
}
