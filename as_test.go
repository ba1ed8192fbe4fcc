package mcpauth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Tests of the authorization server through a real Caddy: /authorize and
// its consent step, /token, /register and Client ID Metadata Documents.
// Each test starts its own configuration; the helpers below drive the
// endpoints the way MCP clients and browsers do.

// asEnv is the authorization server one test runs.
type asEnv struct {
	storagePath, logDir string
	// http is a client without cookies that does not follow redirects,
	// like an MCP client talking to the server.
	http *http.Client
}

// startAS starts asSite (the demo MCP server at /mcp, scopes mcp:tools and
// mcp:admin) with authConfig inside its mcp_auth block.
func startAS(t *testing.T, authConfig string) *asEnv {
	t.Helper()
	e := &asEnv{storagePath: t.TempDir(), logDir: t.TempDir()}
	startCaddy(t, asSite(t, e.storagePath, e.logDir, authConfig))
	e.http = mustTLSClient(t)
	e.http.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return e
}

// usersAS starts an authorization server whose users log in with the
// built-in login form (alice), plus extra options.
func usersAS(t *testing.T, extra string) *asEnv {
	t.Helper()
	return startAS(t, usersUpstream()+"\n\t\t"+extra)
}

// canonicalResource is the protected resource of asSite.
func canonicalResource() string { return siteAddr() + "/mcp" }

// testStore joins the store the running Caddy uses, as testRing does, and
// returns the key space of the test site (siteAddr).
func testStore(t testing.TB, storagePath string) storage.Store {
	t.Helper()
	abs, _ := filepath.Abs(storagePath)
	db, loaded, err := stores.LoadOrNew(abs, func() (caddy.Destructor, error) {
		return nil, fmt.Errorf("store %s is not open", abs)
	})
	if err != nil || !loaded {
		t.Fatalf("store %s is not open in this process: %v", abs, err)
	}
	t.Cleanup(func() { _, _ = stores.Delete(abs) })
	return storage.Prefixed(db.(pooledStore).Badger, siteKeyPrefix(siteAddr()))
}

// storeKeys returns the live keys under prefix.
func storeKeys(t testing.TB, st storage.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := st.List(context.Background(), prefix, func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// secretKey is the store key form of a secret value (SHA-256, hex).
func secretKey(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// --- clients ---

type testClient struct {
	ID, Secret string
	Redirects  []string
}

// register posts a registration body and returns the decoded answer.
func (e *asEnv) register(t *testing.T, body string, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	status, hdr, raw := do(t, e.http, http.MethodPost, siteAddr()+"/register", h, []byte(body))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Errorf("POST /register: %d with a body that is not JSON: %q", status, raw)
	}
	return status, hdr, m
}

// registerClient registers a client with DCR, failing unless it gets 201.
func (e *asEnv) registerClient(t *testing.T, meta map[string]any) testClient {
	t.Helper()
	body, _ := json.Marshal(meta)
	status, _, m := e.register(t, string(body), nil)
	if status != http.StatusCreated {
		t.Fatalf("registering %s: %d %v", body, status, m)
	}
	c := testClient{ID: fmt.Sprint(m["client_id"])}
	if s, ok := m["client_secret"].(string); ok {
		c.Secret = s
	}
	uris, _ := m["redirect_uris"].([]any)
	for _, u := range uris {
		c.Redirects = append(c.Redirects, fmt.Sprint(u))
	}
	return c
}

// publicClient registers a public client with the refresh_token grant.
func (e *asEnv) publicClient(t *testing.T, redirects ...string) testClient {
	t.Helper()
	if len(redirects) == 0 {
		redirects = []string{clientRedirect}
	}
	return e.registerClient(t, map[string]any{
		"client_name":                "AS test client",
		"redirect_uris":              redirects,
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"token_endpoint_auth_method": "none",
	})
}

// --- authorization requests ---

type pkce struct{ verifier, challenge string }

func newPKCE() pkce {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(v))
	return pkce{v, base64.RawURLEncoding.EncodeToString(sum[:])}
}

// authParams is a valid authorization request for c, as MCP clients send
// it: with state, PKCE S256 and the resource.
func authParams(c testClient, p pkce) url.Values {
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {c.ID},
		"redirect_uri":          {c.Redirects[0]},
		"code_challenge":        {p.challenge},
		"code_challenge_method": {"S256"},
		"state":                 {"st-" + p.verifier[:10]},
		"resource":              {canonicalResource()},
	}
}

func authorizeURL(q url.Values) string { return siteAddr() + "/authorize?" + q.Encode() }

// step is one response a browser got.
type step struct {
	Method string
	URL    *url.URL
	Status int
	Header http.Header
	Body   string
}

// location returns the step's Location, or nil.
func (s step) location() *url.URL {
	if s.Header.Get("Location") == "" {
		return nil
	}
	u, err := s.URL.Parse(s.Header.Get("Location"))
	if err != nil {
		return nil
	}
	return u
}

// walk drives b from start like browser.authorize does (approving or
// denying consent, filling the login form, following redirects through
// the server and the upstream servers), with two differences: it records
// every response, and it stops without failing at the first response
// that is neither a form it knows nor a redirect within those servers.
// Form posts go to the origin of start, with the Origin header a browser
// sends.
func walk(t *testing.T, b *browser, start string, servers ...string) []step {
	t.Helper()
	next, method, form := start, http.MethodGet, url.Values(nil)
	u, err := url.Parse(start)
	if err != nil {
		t.Fatal(err)
	}
	origin := u.Scheme + "://" + u.Host // the authorization server's
	var steps []step
	for hops := 0; hops < 12; hops++ {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, next, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", origin)
		}
		resp, err := b.client.Do(req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, next, err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		s := step{Method: method, URL: req.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(page)}
		steps = append(steps, s)
		method, form = http.MethodGet, nil
		switch {
		case resp.StatusCode >= 300 && resp.StatusCode < 400 && s.location() != nil:
			if !b.ours(s.location(), servers) {
				return steps
			}
			next = s.location().String()
		case resp.StatusCode == http.StatusOK && strings.Contains(s.Body, `name="decision"`):
			form = formFields(s.Body)
			form.Set("decision", map[bool]string{true: "deny", false: "approve"}[b.Deny])
			method, next = http.MethodPost, origin+"/authorize/consent"
		case resp.StatusCode == http.StatusOK && strings.Contains(s.Body, `name="password"`):
			form = formFields(s.Body)
			form.Set("username", b.Username)
			form.Set("password", b.Password)
			method, next = http.MethodPost, origin+"/authorize/login"
		default:
			return steps
		}
	}
	t.Fatalf("too many redirects from %s", start)
	return nil
}

// redirectedTo returns where the last step sent the browser: the client's
// redirect URI with the authorization response. It fails the test unless
// that was a 302 (OAuth 2.1 section 4.1.2 allows 302 and 303, never 307).
func redirectedTo(t *testing.T, steps []step) *url.URL {
	t.Helper()
	last := steps[len(steps)-1]
	// 303 after a form POST (consent, login), 302 otherwise.
	want := http.StatusFound
	if last.Method == http.MethodPost {
		want = http.StatusSeeOther
	}
	if last.Status != want || last.location() == nil {
		t.Fatalf("%s %s: %d, want %d to the client; body %.500s", last.Method, last.URL, last.Status, want, last.Body)
	}
	return last.location()
}

// aliceBrowser is a fresh browser that logs in as alice on the built-in form.
func aliceBrowser(t *testing.T) *browser {
	b := newBrowser(t)
	b.Username, b.Password = "alice", "correct horse"
	return b
}

// loginCode runs the authorization q as alice in a fresh browser and
// returns the code sent back to the client.
func loginCode(t *testing.T, q url.Values, servers ...string) string {
	t.Helper()
	loc := redirectedTo(t, walk(t, aliceBrowser(t), authorizeURL(q), servers...))
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("error") != "" {
		t.Fatalf("authorization failed: %s", loc)
	}
	return code
}

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

// --- token endpoint ---

// tokenRequest posts a form to /token and decodes the JSON answer.
func (e *asEnv) tokenRequest(t *testing.T, form url.Values, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for k, v := range header {
		h[k] = v
	}
	status, hdr, raw := do(t, e.http, http.MethodPost, siteAddr()+"/token", h, []byte(form.Encode()))
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Errorf("POST /token: %d with a body that is not JSON: %q", status, raw)
	}
	if status != http.StatusOK && (m["error"] == nil || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json")) {
		t.Errorf("POST /token error %d without a JSON error: %v %q", status, hdr, raw)
	}
	return status, hdr, m
}

// codeForm is the token request redeeming code for c.
func codeForm(c testClient, code string, p pkce) url.Values {
	return url.Values{
		"grant_type":    {"authorization_code"},
		"code":          {code},
		"code_verifier": {p.verifier},
		"client_id":     {c.ID},
		"redirect_uri":  {c.Redirects[0]},
		"resource":      {canonicalResource()},
	}
}

type tokenSet struct {
	Access, Refresh, Scope, TokenType string
	ExpiresIn                         int64
	Header                            http.Header
}

// exchange posts a token request that must succeed.
func (e *asEnv) exchange(t *testing.T, form url.Values, header http.Header) tokenSet {
	t.Helper()
	status, hdr, m := e.tokenRequest(t, form, header)
	if status != http.StatusOK {
		t.Fatalf("token request %s: %d %v", form.Get("grant_type"), status, m)
	}
	ts := tokenSet{Header: hdr}
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

// login authorizes the public client c as alice and redeems the code.
func (e *asEnv) login(t *testing.T, c testClient, extra url.Values) tokenSet {
	t.Helper()
	p := newPKCE()
	q := authParams(c, p)
	for k, v := range extra {
		q[k] = v
	}
	return e.exchange(t, codeForm(c, loginCode(t, q), p), nil)
}

// mcpStatus sends an MCP initialize request with token and returns the status.
func (e *asEnv) mcpStatus(t *testing.T, token string) int {
	t.Helper()
	h := bearer(token)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	status, _, _ := do(t, e.http, http.MethodPost, canonicalResource(), h,
		[]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"as-test","version":"0"}}}`))
	return status
}

// decodeJWT returns the JOSE header and claims of a JWT, unverified.
func decodeJWT(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", tok)
	}
	for i, dst := range []*map[string]any{&header, &claims} {
		raw, err := base64.RawURLEncoding.DecodeString(parts[i])
		if err != nil || json.Unmarshal(raw, dst) != nil {
			t.Fatalf("JWT part %d is not base64url JSON: %v", i, err)
		}
	}
	return header, claims
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

// --- /authorize ---

func TestAuthorizeRejectsUntrustedClientsAndRedirects(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t, "https://client.test/cb", "http://127.0.0.1:5555/cb")
	one := e.publicClient(t, "https://client.test/only")
	p := newPKCE()

	type mod func(q url.Values) string
	set := func(k, v string) mod {
		return func(q url.Values) string { q.Set(k, v); return authorizeURL(q) }
	}
	cases := []struct {
		name string
		url  mod
	}{
		{"unknown client_id", set("client_id", "no-such-client")},
		{"missing client_id", func(q url.Values) string { q.Del("client_id"); return authorizeURL(q) }},
		{"client_id of another server's shape", set("client_id", "https://evil.test")},
		{"duplicated client_id", func(q url.Values) string { return authorizeURL(q) + "&client_id=" + url.QueryEscape(c.ID) }},
		{"duplicated redirect_uri", func(q url.Values) string { return authorizeURL(q) + "&redirect_uri=" + url.QueryEscape(c.Redirects[0]) }},
		{"missing redirect_uri with two registered", func(q url.Values) string { q.Del("redirect_uri"); return authorizeURL(q) }},
		{"trailing slash", set("redirect_uri", "https://client.test/cb/")},
		{"path case", set("redirect_uri", "https://client.test/CB")},
		{"added query", set("redirect_uri", "https://client.test/cb?x=1")},
		{"fragment", set("redirect_uri", "https://client.test/cb#f")},
		{"empty fragment", set("redirect_uri", "https://client.test/cb#")},
		{"http instead of https", set("redirect_uri", "http://client.test/cb")},
		{"other port for https", set("redirect_uri", "https://client.test:444/cb")},
		{"explicit default port", set("redirect_uri", "https://client.test:443/cb")},
		{"other host", set("redirect_uri", "https://client.test.evil/cb")},
		{"userinfo", set("redirect_uri", "https://client.test@evil.test/cb")},
		{"dot segments", set("redirect_uri", "https://client.test/x/../cb")},
		{"prefix of registered", set("redirect_uri", "https://client.test/c")},
		{"loopback other path", set("redirect_uri", "http://127.0.0.1:61234/other")},
		{"loopback localhost for 127.0.0.1", set("redirect_uri", "http://localhost:5555/cb")},
		{"loopback https", set("redirect_uri", "https://127.0.0.1:5555/cb")},
		{"loopback fragment", set("redirect_uri", "http://127.0.0.1:61234/cb#f")},
		{"loopback bad port", set("redirect_uri", "http://127.0.0.1:99999/cb")},
		{"bad redirect and bad response_type", func(q url.Values) string {
			q.Set("redirect_uri", "https://evil.test/cb")
			q.Set("response_type", "token")
			return authorizeURL(q)
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := tc.url(authParams(c, p))
			status, hdr, body := get(t, e.http, u, nil)
			assertErrorPage(t, u, status, hdr, body, http.StatusBadRequest)
		})
	}

	t.Run("loopback redirect on any port", func(t *testing.T) {
		p := newPKCE()
		q := authParams(c, p)
		q.Set("redirect_uri", "http://127.0.0.1:61234/cb")
		loc := redirectedTo(t, walk(t, aliceBrowser(t), authorizeURL(q)))
		assertAuthzResponse(t, loc, "http://127.0.0.1:61234/cb", q.Get("state"), "")
		form := codeForm(c, loc.Query().Get("code"), p)
		form.Set("redirect_uri", "http://127.0.0.1:5555/cb")
		if status, _, m := e.tokenRequest(t, form, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("redeeming with the registered port instead of the one used: %d %v, want invalid_grant", status, m)
		}
	})

	t.Run("missing redirect_uri with one registered", func(t *testing.T) {
		p := newPKCE()
		q := authParams(one, p)
		q.Del("redirect_uri")
		loc := redirectedTo(t, walk(t, aliceBrowser(t), authorizeURL(q)))
		assertAuthzResponse(t, loc, one.Redirects[0], q.Get("state"), "")
		form := codeForm(one, loc.Query().Get("code"), p)
		form.Del("redirect_uri")
		ts := e.exchange(t, form, nil)
		if _, claims := decodeJWT(t, ts.Access); claims["aud"] != canonicalResource() {
			t.Errorf("aud = %v", claims["aud"])
		}
	})
}

func TestAuthorizeErrorsGoBackToTheClient(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	p := newPKCE()
	const state = "a b&c=d+e/é%"

	set := func(k, v string) func(url.Values) {
		return func(q url.Values) {
			if v == "" {
				q.Del(k)
			} else {
				q.Set(k, v)
			}
		}
	}
	cases := []struct {
		name  string
		mod   func(url.Values)
		raw   string // appended to the query
		error string
	}{
		{"response_type missing", set("response_type", ""), "", "invalid_request"},
		{"response_type empty", func(q url.Values) { q.Set("response_type", "") }, "", "invalid_request"},
		{"response_type token", set("response_type", "token"), "", "unsupported_response_type"},
		{"response_type id_token token", set("response_type", "id_token token"), "", "unsupported_response_type"},
		{"response_type code id_token", set("response_type", "code id_token"), "", "unsupported_response_type"},
		{"response_type unknown", set("response_type", "magic"), "", "unsupported_response_type"},
		{"code_challenge missing", set("code_challenge", ""), "", "invalid_request"},
		{"code_challenge_method missing", set("code_challenge_method", ""), "", "invalid_request"},
		{"code_challenge_method plain", func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", p.verifier) }, "", "invalid_request"},
		{"code_challenge_method lower case", set("code_challenge_method", "s256"), "", "invalid_request"},
		{"code_challenge 42 chars", set("code_challenge", p.challenge[:42]), "", "invalid_request"},
		{"code_challenge padded", set("code_challenge", p.challenge[:42]+"="), "", "invalid_request"},
		{"code_challenge 44 chars", set("code_challenge", p.challenge+"A"), "", "invalid_request"},
		{"code_challenge with +", set("code_challenge", "+"+p.challenge[1:]), "", "invalid_request"},
		{"duplicated state", nil, "&state=other", "invalid_request"},
		{"duplicated response_type", nil, "&response_type=code", "invalid_request"},
		{"duplicated code_challenge", nil, "&code_challenge=" + p.challenge, "invalid_request"},
		{"foreign resource", set("resource", "https://evil.test"), "", "invalid_target"},
		{"foreign resource with our path", set("resource", "https://evil.test/mcp"), "", "invalid_target"},
		{"resource with fragment", set("resource", canonicalResource()+"#x"), "", "invalid_target"},
		{"resource on another path", set("resource", siteAddr()+"/other"), "", "invalid_target"},
		{"resource over http", set("resource", strings.Replace(canonicalResource(), "https:", "http:", 1)), "", "invalid_target"},
		{"resource relative", set("resource", "/mcp"), "", "invalid_target"},
		{"two resources, one foreign", nil, "&resource=" + url.QueryEscape("https://evil.test/mcp"), "invalid_target"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			q := authParams(c, p)
			q.Set("state", state)
			if tc.mod != nil {
				tc.mod(q)
			}
			u := authorizeURL(q) + tc.raw
			status, hdr, body := get(t, e.http, u, http.Header{"Origin": {"https://evil.test"}})
			if status != http.StatusFound {
				t.Fatalf("%d, want 302 to the client: %.300s", status, body)
			}
			loc, err := url.Parse(hdr.Get("Location"))
			if err != nil {
				t.Fatal(err)
			}
			wantState := state
			if tc.name == "duplicated state" {
				wantState = "" // either value would do
			}
			assertAuthzResponse(t, loc, c.Redirects[0], wantState, tc.error)
			if hdr.Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("CORS header on /authorize: %v", hdr)
			}
		})
	}
}

func TestAuthorizeSuccess(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t, "https://client.test/cb?tenant=1")

	t.Run("response", func(t *testing.T) {
		p := newPKCE()
		q := authParams(c, p)
		const state = "a b&c=d+e/é%"
		q.Set("state", state)
		// Parameters the server does not know are ignored (OAuth 2.1 section 3.1).
		for k, v := range map[string]string{"id_token_hint": "eyJhbGciOiJub25lIn0.e30.", "prompt": "consent", "nonce": "n-0S6", "audience": "x", "foo": "bar"} {
			q.Set(k, v)
		}
		steps := walk(t, aliceBrowser(t), authorizeURL(q))
		if first := steps[0]; first.Status != http.StatusOK || !strings.Contains(first.Body, `name="decision"`) {
			t.Fatalf("a fresh browser must see the consent page first: %d %.300s", first.Status, first.Body)
		}
		loc := redirectedTo(t, steps)
		assertAuthzResponse(t, loc, "https://client.test/cb", state, "")
		if loc.Query().Get("tenant") != "1" {
			t.Errorf("the registered redirect URI's query was lost: %s", loc)
		}
		if code := loc.Query().Get("code"); len(code) < 22 {
			t.Errorf("code %q is too short to carry 128 bits", code)
		}
		if last := steps[len(steps)-1]; last.Header.Get("Cache-Control") != "no-store" {
			t.Errorf("authorization response Cache-Control = %q", last.Header.Get("Cache-Control"))
		}
		ts := e.exchange(t, codeForm(c, loc.Query().Get("code"), p), nil)
		if _, claims := decodeJWT(t, ts.Access); claims["aud"] != canonicalResource() {
			t.Errorf("aud = %v", claims["aud"])
		}
	})

	t.Run("no CORS on /authorize", func(t *testing.T) {
		status, hdr, _ := get(t, e.http, authorizeURL(authParams(c, newPKCE())), http.Header{"Origin": {"https://x.test"}})
		if status != http.StatusOK || hdr.Get("Access-Control-Allow-Origin") != "" {
			t.Errorf("GET /authorize with Origin: %d %v, want the consent page without CORS headers", status, hdr)
		}
	})

	t.Run("resource variants bind the canonical resource", func(t *testing.T) {
		upper := strings.Replace(canonicalResource(), "localhost", "LOCALHOST", 1)
		for _, res := range []string{
			canonicalResource(),
			canonicalResource() + "/",
			upper,
			strings.Replace(upper, "https:", "HTTPS:", 1),
			canonicalResource() + "/tools/x",
			"", // omitted: the default resource
		} {
			p := newPKCE()
			q := authParams(c, p)
			q.Set("resource", res)
			if res == "" {
				q.Del("resource")
			}
			form := codeForm(c, loginCode(t, q), p)
			form.Set("resource", res)
			if res == "" {
				form.Del("resource")
			}
			ts := e.exchange(t, form, nil)
			if _, claims := decodeJWT(t, ts.Access); claims["aud"] != canonicalResource() {
				t.Errorf("resource %q: aud = %v, want %q", res, claims["aud"], canonicalResource())
			}
		}
	})

	t.Run("resource omitted at the token endpoint", func(t *testing.T) {
		p := newPKCE()
		form := codeForm(c, loginCode(t, authParams(c, p)), p)
		form.Del("resource")
		if _, claims := decodeJWT(t, e.exchange(t, form, nil).Access); claims["aud"] != canonicalResource() {
			t.Errorf("aud = %v", claims["aud"])
		}
	})

	t.Run("scopes", func(t *testing.T) {
		for _, tc := range []struct {
			scope *string
			want  string
		}{
			{nil, "mcp:tools mcp:admin"},
			{ptr(""), "mcp:tools mcp:admin"}, // empty counts as absent
			{ptr("mcp:tools unknown offline_access"), "mcp:tools"},
			{ptr(" mcp:admin"), "mcp:admin"},
			{ptr("mcp:admin mcp:tools mcp:admin"), "mcp:tools mcp:admin"}, // in configured order, once each
		} {
			p := newPKCE()
			q := authParams(c, p)
			if tc.scope != nil {
				q.Set("scope", *tc.scope)
			}
			ts := e.exchange(t, codeForm(c, loginCode(t, q), p), nil)
			_, claims := decodeJWT(t, ts.Access)
			if ts.Scope != tc.want || claims["scope"] != tc.want {
				label := "(absent)"
				if tc.scope != nil {
					label = strconv.Quote(*tc.scope)
				}
				t.Errorf("scope %s: granted %q (token %q), want %q", label, ts.Scope, claims["scope"], tc.want)
			}
		}
	})
}

func ptr[T any](v T) *T { return &v }

func TestAuthorizeWithAllowedOrigins(t *testing.T) {
	// allowed_origins limits browser apps calling the site; the server's
	// own consent and login forms, posted from its own origin, must work.
	e := usersAS(t, "allowed_origins https://app.example.com")
	c := e.publicClient(t)
	p := newPKCE()
	ts := e.exchange(t, codeForm(c, loginCode(t, authParams(c, p)), p), nil)
	if e.mcpStatus(t, ts.Access) != http.StatusOK {
		t.Error("token from the flow refused")
	}
}

// --- consent ---

// consentForm opens the consent page for q in b and returns its form.
func consentForm(t *testing.T, b *browser, q url.Values) url.Values {
	t.Helper()
	status, _, body := get(t, b.client, authorizeURL(q), nil)
	if status != http.StatusOK || !strings.Contains(string(body), `name="decision"`) {
		t.Fatalf("no consent page: %d %.300s", status, body)
	}
	form := formFields(string(body))
	if form.Get("request") == "" || form.Get("csrf") == "" {
		t.Fatalf("consent form fields %v", form)
	}
	return form
}

// postConsent posts a consent decision from b.
func postConsent(t *testing.T, b *browser, form url.Values) (int, http.Header, []byte) {
	t.Helper()
	return do(t, b.client, http.MethodPost, siteAddr()+"/authorize/consent",
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {siteAddr()}}, []byte(form.Encode()))
}

func TestConsent(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "u-1", Email: "alice@example.com", EmailVerified: true})
	e := startAS(t, oidcUpstream(idp))
	st := testStore(t, e.storagePath)
	c := e.publicClient(t)

	t.Run("GET is 405", func(t *testing.T) {
		status, hdr, body := get(t, e.http, siteAddr()+"/authorize/consent?decision=approve", nil)
		assertErrorPage(t, "GET /authorize/consent", status, hdr, body, http.StatusMethodNotAllowed)
	})

	t.Run("CSRF and the upstream state", func(t *testing.T) {
		b := newBrowser(t)
		q := authParams(c, newPKCE())
		form := consentForm(t, b, q)
		form.Set("decision", "approve")

		other := newBrowser(t) // another browser, without a cookie
		withOwnCookie := newBrowser(t)
		consentForm(t, withOwnCookie, authParams(c, newPKCE()))
		for _, tc := range []struct {
			name string
			b    *browser
			form func() url.Values
		}{
			{"no csrf", b, func() url.Values { f := clone(form); f.Del("csrf"); return f }},
			{"wrong csrf", b, func() url.Values { f := clone(form); f.Set("csrf", newPKCE().verifier); return f }},
			{"csrf of the request id", b, func() url.Values { f := clone(form); f.Set("csrf", form.Get("request")); return f }},
			{"another browser", other, func() url.Values { return clone(form) }},
			{"another browser with its own session", withOwnCookie, func() url.Values { return clone(form) }},
			// A reader taking the first value would deny, another the last.
			{"repeated decision", b, func() url.Values { f := clone(form); f["decision"] = []string{"deny", "approve"}; return f }},
			{"repeated request", b, func() url.Values { f := clone(form); f.Add("request", form.Get("request")); return f }},
		} {
			status, hdr, body := postConsent(t, tc.b, tc.form())
			if (status != http.StatusForbidden && status != http.StatusBadRequest) || hdr.Get("Location") != "" {
				t.Errorf("%s: %d Location=%q, want 403/400 without redirect: %.200s", tc.name, status, hdr.Get("Location"), body)
			}
		}
		if n := idp.Requests(idp.Paths.Authorize); n != 0 {
			t.Errorf("the upstream was visited %d times before consent", n)
		}
		if keys := storeKeys(t, st, "login/"); len(keys) != 0 {
			t.Errorf("upstream login state stored before consent: %d entries", len(keys))
		}

		// The real browser's approval still works: refused posts did not use it up.
		status, hdr, body := postConsent(t, b, form)
		if status != http.StatusSeeOther {
			t.Fatalf("approval: %d %.300s", status, body)
		}
		up, _ := url.Parse(hdr.Get("Location"))
		if !strings.HasPrefix(up.String(), idp.URL+idp.Paths.Authorize+"?") {
			t.Fatalf("approval sent the browser to %s, want the upstream", up)
		}
		uq := up.Query()
		if uq.Get("code_challenge_method") != "S256" || len(uq.Get("code_challenge")) != 43 || len(uq.Get("state")) < 22 ||
			uq.Get("nonce") == "" || uq.Get("redirect_uri") != siteAddr()+"/authorize/callback" || uq.Has("resource") {
			t.Errorf("upstream request %v", uq)
		}
		if uq.Get("state") == q.Get("state") {
			t.Error("the client's state was sent upstream")
		}
		if keys := storeKeys(t, st, "login/"); len(keys) != 1 {
			t.Errorf("%d login states stored after consent, want 1", len(keys))
		}
		if status, hdr, body := postConsent(t, b, form); status != http.StatusBadRequest || hdr.Get("Location") != "" {
			t.Errorf("consent posted twice: %d %q %.200s", status, hdr.Get("Location"), body)
		}
	})

	t.Run("deny", func(t *testing.T) {
		b := newBrowser(t)
		b.Deny = true
		q := authParams(c, newPKCE())
		q.Set("state", "deny & state")
		loc := redirectedTo(t, walk(t, b, authorizeURL(q), idp.URL))
		assertAuthzResponse(t, loc, c.Redirects[0], "deny & state", "access_denied")
		if n := idp.Requests(idp.Paths.Authorize); n != 0 {
			t.Errorf("denied consent still visited the upstream %d times", n)
		}
	})

	// upToCallback approves in b and follows the upstream login up to the
	// callback URL the upstream sends the browser to.
	upToCallback := func(t *testing.T, b *browser) string {
		t.Helper()
		form := consentForm(t, b, authParams(c, newPKCE()))
		form.Set("decision", "approve")
		status, hdr, _ := postConsent(t, b, form)
		if status != http.StatusSeeOther {
			t.Fatalf("approval: %d", status)
		}
		status, hdr, _ = get(t, b.client, hdr.Get("Location"), nil)
		cb := hdr.Get("Location")
		if status != http.StatusFound || !strings.HasPrefix(cb, siteAddr()+"/authorize/callback?") {
			t.Fatalf("upstream answered %d %q", status, cb)
		}
		return cb
	}

	t.Run("callback with a made-up or missing state", func(t *testing.T) {
		b := newBrowser(t)
		upToCallback(t, b) // a real login is pending in this browser
		for _, u := range []string{
			siteAddr() + "/authorize/callback?code=abc&state=" + newPKCE().verifier,
			siteAddr() + "/authorize/callback?code=abc",
			siteAddr() + "/authorize/callback?error=access_denied&state=made-up",
		} {
			status, hdr, body := get(t, b.client, u, nil)
			assertErrorPage(t, u, status, hdr, body, http.StatusBadRequest)
		}
	})

	t.Run("callback is single use", func(t *testing.T) {
		b := newBrowser(t)
		cb := upToCallback(t, b)
		status, hdr, _ := get(t, b.client, cb, nil)
		loc, _ := url.Parse(hdr.Get("Location"))
		if status != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("callback: %d %q", status, hdr.Get("Location"))
		}
		status, hdr, body := get(t, b.client, cb, nil)
		assertErrorPage(t, "replayed callback", status, hdr, body, http.StatusBadRequest)
	})

	t.Run("callback in another browser", func(t *testing.T) {
		cb := upToCallback(t, newBrowser(t))
		status, hdr, body := get(t, newBrowser(t).client, cb, nil)
		assertErrorPage(t, "callback in another browser", status, hdr, body, http.StatusBadRequest)
	})

	t.Run("page shows the client safely", func(t *testing.T) {
		hostile := e.registerClient(t, map[string]any{
			"client_name":                "<script>alert(1)</script>",
			"redirect_uris":              []string{"https://attacker.test/cb"},
			"token_endpoint_auth_method": "none",
		})
		status, hdr, body := get(t, e.http, authorizeURL(authParams(hostile, newPKCE())), nil)
		page := string(body)
		if status != http.StatusOK {
			t.Fatalf("%d %.300s", status, page)
		}
		if strings.Contains(page, "<script>alert(1)") || !strings.Contains(page, "&lt;script&gt;alert(1)&lt;/script&gt;") {
			t.Errorf("client_name not escaped: %s", page)
		}
		if !strings.Contains(page, "not verified") {
			t.Errorf("a dynamically registered client is not marked as not verified: %s", page)
		}
		if !strings.Contains(page, "attacker.test") {
			t.Errorf("the redirect host is not shown: %s", page)
		}
		if hdr.Get("X-Frame-Options") != "DENY" || !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("consent page can be framed: %v", hdr)
		}
		var cookie string
		for _, sc := range hdr.Values("Set-Cookie") {
			if strings.HasPrefix(sc, "__Host-") {
				cookie = sc
			}
		}
		for _, attr := range []string{"Path=/", "HttpOnly", "Secure", "SameSite=Lax"} {
			if !strings.Contains(cookie, attr) {
				t.Errorf("browser cookie %q lacks %s", cookie, attr)
			}
		}
	})
}

func clone(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func TestRememberConsent(t *testing.T) {
	e := usersAS(t, "remember_consent 1h")
	c := e.publicClient(t, clientRedirect, "http://127.0.0.1:33418/other")
	c2 := e.publicClient(t)
	b := aliceBrowser(t)

	consentShown := func(steps []step) bool {
		return steps[0].Status == http.StatusOK && strings.Contains(steps[0].Body, `name="decision"`)
	}
	run := func(b *browser, c testClient, redirect string) []step {
		t.Helper()
		q := authParams(c, newPKCE())
		q.Set("redirect_uri", redirect)
		steps := walk(t, b, authorizeURL(q))
		assertAuthzResponse(t, redirectedTo(t, steps), redirect, q.Get("state"), "")
		return steps
	}
	if !consentShown(run(b, c, clientRedirect)) {
		t.Fatal("first authorization skipped consent")
	}
	steps := run(b, c, clientRedirect)
	if consentShown(steps) {
		t.Error("consent asked again for the same client and redirect URI")
	}
	if loc := steps[0].location(); steps[0].Status != http.StatusSeeOther || loc == nil || loc.Path != "/authorize/login" {
		t.Errorf("remembered consent: first answer %d %v, want 303 to the login", steps[0].Status, loc)
	}
	if !consentShown(run(b, c, "http://127.0.0.1:33418/other")) {
		t.Error("remembered consent applied to another redirect URI")
	}
	if !consentShown(run(b, c2, clientRedirect)) {
		t.Error("remembered consent applied to another client")
	}
	if !consentShown(run(aliceBrowser(t), c, clientRedirect)) {
		t.Error("remembered consent applied to another browser")
	}
}

// --- /token ---

func TestTokenEndpoint(t *testing.T) {
	e := usersAS(t, "")
	st := testStore(t, e.storagePath)
	pub := e.publicClient(t)
	codeOnly := e.registerClient(t, map[string]any{
		"client_name": "no refresh", "redirect_uris": []string{clientRedirect},
		"grant_types": []string{"authorization_code"}, "token_endpoint_auth_method": "none",
	})
	// Like ChatGPT: no token_endpoint_auth_method, so client_secret_basic.
	basic := e.registerClient(t, map[string]any{"client_name": "ChatGPT", "redirect_uris": []string{"https://chatgpt.com/connector_platform_oauth_redirect"}})
	// Like Claude: client_secret_post.
	post := e.registerClient(t, map[string]any{
		"client_name": "Claude", "redirect_uris": []string{"https://claude.ai/api/mcp/auth_callback"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "client_secret_post",
	})
	if basic.Secret == "" || post.Secret == "" {
		t.Fatal("confidential clients got no secret")
	}
	// A client whose id and secret need form-urlencoding inside Basic.
	special := testClient{ID: "tenant:special", Secret: "p+q%41:r/s é", Redirects: []string{clientRedirect}}
	raw, _ := json.Marshal(clients.Client{
		ClientID: special.ID, SecretHash: clients.HashSecret(special.Secret), RedirectURIs: special.Redirects,
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
		TokenEndpointAuthMethod: clients.AuthMethodClientSecretBasic, IssuedAt: time.Now().Unix(),
	})
	if err := st.Put(context.Background(), "client/"+special.ID, raw, 0); err != nil {
		t.Fatal(err)
	}
	var secrets, codes []string // checked against the logs at the end
	secrets = append(secrets, basic.Secret, post.Secret, special.Secret)
	basicAuth := func(id, secret string) http.Header {
		credentials := base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
		secrets = append(secrets, credentials)
		return http.Header{"Authorization": {"Basic " + credentials}}
	}
	newCode := func(t *testing.T, c testClient) (string, pkce) {
		t.Helper()
		p := newPKCE()
		code := loginCode(t, authParams(c, p))
		codes = append(codes, code)
		return code, p
	}
	keep := func(ts tokenSet) tokenSet {
		secrets = append(secrets, ts.Access)
		if ts.Refresh != "" {
			secrets = append(secrets, ts.Refresh)
		}
		return ts
	}
	wantError := func(t *testing.T, what string, form url.Values, header http.Header, status int, code string) {
		t.Helper()
		got, hdr, m := e.tokenRequest(t, form, header)
		if got != status || m["error"] != code {
			t.Errorf("%s: %d %v, want %d %s", what, got, m, status, code)
		}
		if hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: error without Cache-Control: no-store", what)
		}
	}

	t.Run("only POST", func(t *testing.T) {
		status, hdr, _ := get(t, e.http, siteAddr()+"/token?grant_type=authorization_code", nil)
		if status != http.StatusMethodNotAllowed || !strings.Contains(hdr.Get("Allow"), "POST") {
			t.Errorf("GET /token: %d %v", status, hdr)
		}
	})

	t.Run("JSON body", func(t *testing.T) {
		status, _, body := do(t, e.http, http.MethodPost, siteAddr()+"/token", http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"grant_type":"authorization_code","code":"x","client_id":"`+pub.ID+`"}`))
		if status != http.StatusBadRequest || !strings.Contains(string(body), `"invalid_request"`) {
			t.Errorf("%d %s", status, body)
		}
	})

	t.Run("request errors", func(t *testing.T) {
		wantError(t, "duplicated code", url.Values{"grant_type": {"authorization_code"}, "code": {"a", "a"}, "client_id": {pub.ID}}, nil, 400, "invalid_request")
		wantError(t, "duplicated grant_type", url.Values{"grant_type": {"authorization_code", "refresh_token"}, "client_id": {pub.ID}}, nil, 400, "invalid_request")
		wantError(t, "password grant", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"correct horse"}, "client_id": {pub.ID}}, nil, 400, "unsupported_grant_type")
		wantError(t, "client_credentials grant", url.Values{"grant_type": {"client_credentials"}}, basicAuth(basic.ID, basic.Secret), 400, "unsupported_grant_type")
		wantError(t, "no grant_type", url.Values{"code": {"a"}, "client_id": {pub.ID}}, nil, 400, "invalid_request")
		wantError(t, "unknown client", url.Values{"grant_type": {"authorization_code"}, "code": {"a"}, "client_id": {"nobody"}}, nil, 401, "invalid_client")
		wantError(t, "refresh grant not registered", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {codeOnly.ID}}, nil, 400, "unauthorized_client")
	})

	t.Run("client_secret_basic is form-urlencoded", func(t *testing.T) {
		code, p := newCode(t, special)
		form := codeForm(special, code, p)
		form.Del("client_id")
		ts := keep(e.exchange(t, form, basicAuth(special.ID, special.Secret)))
		if _, claims := decodeJWT(t, ts.Access); claims["client_id"] != special.ID {
			t.Errorf("client_id claim %v", claims["client_id"])
		}
	})

	t.Run("client_secret_basic failures", func(t *testing.T) {
		code, p := newCode(t, basic)
		form := codeForm(basic, code, p)
		form.Del("client_id")
		for _, tc := range []struct {
			name   string
			header http.Header
		}{
			{"wrong secret", basicAuth(basic.ID, basic.Secret+"x")},
			{"secret not urlencoded-decoded twice", basicAuth(special.ID, url.QueryEscape(special.Secret))},
			{"raw secret of the special client", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(special.ID+":"+special.Secret))}}},
			{"unknown client", basicAuth("nobody", "secret")},
			{"malformed", http.Header{"Authorization": {"Basic !!!"}}},
		} {
			status, hdr, m := e.tokenRequest(t, form, tc.header)
			if status != http.StatusUnauthorized || m["error"] != "invalid_client" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("%s: %d %v WWW-Authenticate=%q, want 401 invalid_client with a Basic challenge", tc.name, status, m, hdr.Get("WWW-Authenticate"))
			}
		}
		both := clone(form)
		both.Set("client_secret", basic.Secret)
		wantError(t, "Basic and client_secret in the body", both, basicAuth(basic.ID, basic.Secret), 400, "invalid_request")
		// None of that used the code up.
		keep(e.exchange(t, form, basicAuth(basic.ID, basic.Secret)))
	})

	t.Run("client_secret_post", func(t *testing.T) {
		code, p := newCode(t, post)
		form := codeForm(post, code, p)
		noSecret := clone(form)
		wantError(t, "confidential client without a secret", noSecret, nil, 401, "invalid_client")
		wrong := clone(form)
		wrong.Set("client_secret", post.Secret[1:])
		wantError(t, "wrong client_secret", wrong, nil, 401, "invalid_client")
		form.Set("client_secret", post.Secret)
		ts := keep(e.exchange(t, form, nil))
		if ts.Refresh == "" {
			t.Error("client registered refresh_token but got none")
		}
	})

	t.Run("PKCE", func(t *testing.T) {
		code, p := newCode(t, pub)
		form := codeForm(pub, code, p)
		missing := clone(form)
		missing.Del("code_verifier")
		wantError(t, "missing verifier", missing, nil, 400, "invalid_request")
		short := clone(form)
		short.Set("code_verifier", p.verifier[:42])
		wantError(t, "42-char verifier", short, nil, 400, "invalid_request")
		bad := clone(form)
		bad.Set("code_verifier", p.verifier[:42]+"+")
		wantError(t, "verifier with +", bad, nil, 400, "invalid_request")
		keep(e.exchange(t, form, nil)) // malformed requests did not use the code up

		code, p = newCode(t, pub)
		form = codeForm(pub, code, p)
		form.Set("code_verifier", newPKCE().verifier)
		wantError(t, "wrong verifier", form, nil, 400, "invalid_grant")
	})

	t.Run("code is bound to client, redirect URI and resource", func(t *testing.T) {
		code, p := newCode(t, pub)
		form := codeForm(pub, code, p)
		other := clone(form)
		other.Set("client_id", codeOnly.ID)
		wantError(t, "another client", other, nil, 400, "invalid_grant")
		redirect := clone(form)
		redirect.Set("redirect_uri", "http://127.0.0.1:33418/other")
		wantError(t, "another redirect_uri", redirect, nil, 400, "invalid_grant")
		for _, res := range []string{"https://evil.test/mcp", siteAddr() + "/other", canonicalResource() + "#f"} {
			r := clone(form)
			r.Set("resource", res)
			wantError(t, "resource "+res, r, nil, 400, "invalid_target")
		}
		// The refused requests did not use the code up.
		form.Set("resource", canonicalResource()+"/")
		keep(e.exchange(t, form, nil))
	})

	t.Run("replay revokes the tokens the code gave", func(t *testing.T) {
		code, p := newCode(t, pub)
		form := codeForm(pub, code, p)
		first := keep(e.exchange(t, form, nil))
		if e.mcpStatus(t, first.Access) != http.StatusOK {
			t.Fatal("fresh access token refused")
		}
		wantError(t, "replay", form, nil, 400, "invalid_grant")
		if status := e.mcpStatus(t, first.Access); status != http.StatusUnauthorized {
			t.Errorf("access token after the code was replayed: %d, want 401", status)
		}
		wantError(t, "refresh after replay", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.Refresh}, "client_id": {pub.ID}}, nil, 400, "invalid_grant")
	})

	t.Run("replay with a wrong verifier revokes nothing", func(t *testing.T) {
		code, p := newCode(t, pub)
		form := codeForm(pub, code, p)
		first := keep(e.exchange(t, form, nil))
		replay := clone(form)
		replay.Set("code_verifier", newPKCE().verifier)
		wantError(t, "replay with a wrong verifier", replay, nil, 400, "invalid_grant")
		other := clone(form)
		other.Set("client_id", codeOnly.ID)
		wantError(t, "replay by another client", other, nil, 400, "invalid_grant")
		if status := e.mcpStatus(t, first.Access); status != http.StatusOK {
			t.Errorf("access token after a bogus replay: %d", status)
		}
		keep(e.exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.Refresh}, "client_id": {pub.ID}}, nil))
	})

	t.Run("parallel redemption", func(t *testing.T) {
		code, p := newCode(t, pub)
		form := codeForm(pub, code, p)
		var wg sync.WaitGroup
		results := make([]int, 4)
		bodies := make([]string, 4)
		for i := range results {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, siteAddr()+"/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := e.http.Do(req)
				if err != nil {
					bodies[i] = err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				results[i], bodies[i] = resp.StatusCode, string(b)
			})
		}
		wg.Wait()
		ok := 0
		for i, s := range results {
			switch {
			case s == http.StatusOK:
				ok++
				var m struct {
					AccessToken  string `json:"access_token"`
					RefreshToken string `json:"refresh_token"`
				}
				if json.Unmarshal([]byte(bodies[i]), &m) != nil || m.AccessToken == "" || m.RefreshToken == "" {
					t.Errorf("redemption %d: %s", i, bodies[i])
				}
				secrets = append(secrets, m.AccessToken, m.RefreshToken)
			case s != http.StatusBadRequest || !strings.Contains(bodies[i], `"invalid_grant"`):
				t.Errorf("redemption %d: %d %s", i, s, bodies[i])
			}
		}
		if ok != 1 {
			t.Errorf("%d of %d parallel redemptions succeeded, want exactly 1", ok, len(results))
		}
	})

	t.Run("expired code", func(t *testing.T) {
		code, p := newCode(t, pub)
		key := "code/" + secretKey(code)
		raw, err := st.Get(context.Background(), key)
		if err != nil {
			t.Fatalf("the code is not stored under its hash: %v", err)
		}
		if bytes.Contains(raw, []byte(p.verifier)) || bytes.Contains(raw, []byte(code)) {
			t.Error("the stored code record holds the code or the verifier")
		}
		if err := st.Put(context.Background(), key, raw, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		wantError(t, "expired code", codeForm(pub, code, p), nil, 400, "invalid_grant")
	})

	t.Run("response and access token", func(t *testing.T) {
		code, p := newCode(t, pub)
		ts := keep(e.exchange(t, codeForm(pub, code, p), nil))
		for h, want := range map[string]string{"Cache-Control": "no-store", "Content-Type": "application/json"} {
			if got := ts.Header.Get(h); !strings.HasPrefix(got, want) {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if ts.TokenType != "Bearer" || ts.Refresh == "" || ts.Scope != "mcp:tools mcp:admin" {
			t.Errorf("token response %+v", ts)
		}
		hdr, claims := decodeJWT(t, ts.Access)
		if hdr["typ"] != "at+jwt" || hdr["kid"] == nil || hdr["alg"] == "none" || hdr["alg"] == nil {
			t.Errorf("JOSE header %v", hdr)
		}
		want := map[string]any{"iss": siteAddr(), "sub": "users:alice", "aud": canonicalResource(), "client_id": pub.ID, "scope": "mcp:tools mcp:admin"}
		for k, v := range want {
			if claims[k] != v {
				t.Errorf("claim %s = %v, want %v", k, claims[k], v)
			}
		}
		exp, _ := claims["exp"].(float64)
		iat, _ := claims["iat"].(float64)
		if jti, _ := claims["jti"].(string); len(jti) < 16 {
			t.Errorf("jti %v", claims["jti"])
		}
		if ts.ExpiresIn <= 0 || ts.ExpiresIn > 3600 || int64(exp-iat) != ts.ExpiresIn || time.Since(time.Unix(int64(iat), 0)).Abs() > time.Minute {
			t.Errorf("expires_in %d, exp %v, iat %v", ts.ExpiresIn, exp, iat)
		}

		code, p = newCode(t, codeOnly)
		ts2 := keep(e.exchange(t, codeForm(codeOnly, code, p), nil))
		if ts2.Refresh != "" {
			t.Error("a client without the refresh_token grant got a refresh token")
		}
		if _, c2 := decodeJWT(t, ts2.Access); c2["jti"] == claims["jti"] {
			t.Error("two tokens share a jti")
		}
	})

	assertNoSecretsLogged(t, e.logDir, secrets...)
	reportLoggedCodes(t, e.logDir, codes...)
}

// --- /register ---

func TestRegisterRealClients(t *testing.T) {
	e := usersAS(t, "registration {\n\t\t\trate_limit 100\n\t\t}")
	st := testStore(t, e.storagePath)
	// Registration bodies as the clients send them (client-quirks.md).
	cases := []struct {
		name     string
		body     string
		redirect string // to authorize with; the first registered if empty
		secret   bool
	}{
		{"Claude", `{"client_name":"Claude","redirect_uris":["https://claude.ai/api/mcp/auth_callback","https://claude.com/api/mcp/auth_callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"client_secret_post","scope":"mcp:tools"}`, "", true},
		{"Claude Code", `{"client_name":"Claude Code (my-server)","redirect_uris":["http://localhost:54021/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}`, "", false},
		{"ChatGPT", `{"client_name":"ChatGPT","redirect_uris":["https://chatgpt.com/connector_platform_oauth_redirect","https://chatgpt.com/connector/oauth/c8f2a1b3d4"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`, "https://chatgpt.com/connector/oauth/c8f2a1b3d4", true},
		{"VS Code", `{"client_name":"Visual Studio Code","redirect_uris":["https://insiders.vscode.dev/redirect","https://vscode.dev/redirect","http://127.0.0.1/","http://127.0.0.1:33418/"],"grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code"],"response_types":["code"],"token_endpoint_auth_method":"none"}`, "http://127.0.0.1:51234/", false},
		{"Cursor", `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","https://www.cursor.com/agents/mcp/oauth/callback","http://localhost:8787/callback"],"grant_types":["authorization_code","refresh_token"],"response_types":["code"],"token_endpoint_auth_method":"none"}`, "", false},
		{"MCP Inspector", `{"redirect_uris":["http://localhost:6274/oauth/callback","http://localhost:6274/oauth/callback/debug"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"client_name":"MCP Inspector","client_uri":"https://github.com/modelcontextprotocol/inspector","scope":"mcp:tools offline_access"}`, "http://localhost:6274/oauth/callback/debug", false},
		{"mcp-remote", `{"redirect_uris":["http://127.0.0.1:3334/oauth/callback"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"response_types":["code"],"client_name":"MCP CLI Proxy","client_uri":"https://github.com/modelcontextprotocol/mcp-cli","software_id":"2e6dc280-f3c3-4e01-99a7-8181dbd1d23d","software_version":"0.1.29"}`, "", false},
		{"MCP 2026-07-28 native app", `{"application_type":"native","client_name":"Native","redirect_uris":["http://127.0.0.1:9/cb"],"token_endpoint_auth_method":"none","x-vendor":{"a":1}}`, "", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, m := e.register(t, tc.body, nil)
			if status != http.StatusCreated || hdr.Get("Cache-Control") != "no-store" || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Fatalf("%d %v %v", status, hdr, m)
			}
			var sent map[string]any
			_ = json.Unmarshal([]byte(tc.body), &sent)
			id, _ := m["client_id"].(string)
			if id == "" {
				t.Fatalf("no client_id: %v", m)
			}
			if iat, ok := m["client_id_issued_at"].(float64); !ok || time.Since(time.Unix(int64(iat), 0)).Abs() > time.Minute {
				t.Errorf("client_id_issued_at = %v", m["client_id_issued_at"])
			}
			secret, hasSecret := m["client_secret"].(string)
			exp, hasExp := m["client_secret_expires_at"].(float64)
			if hasSecret != tc.secret || hasExp != tc.secret || (hasSecret && (secret == "" || exp != 0 && time.Unix(int64(exp), 0).Before(time.Now()))) {
				t.Errorf("client_secret %v, client_secret_expires_at %v; want a secret: %v", m["client_secret"], m["client_secret_expires_at"], tc.secret)
			}
			wantMethod, _ := sent["token_endpoint_auth_method"].(string)
			if wantMethod == "" {
				wantMethod = "client_secret_basic" // RFC 7591 default
			}
			if m["token_endpoint_auth_method"] != wantMethod || fmt.Sprint(m["redirect_uris"]) != fmt.Sprint(sent["redirect_uris"]) ||
				fmt.Sprint(m["response_types"]) != "[code]" || m["client_name"] != sent["client_name"] {
				t.Errorf("registered metadata not echoed: %v", m)
			}
			if gt := fmt.Sprint(m["grant_types"]); !strings.Contains(gt, "authorization_code") || strings.Contains(gt, "device_code") {
				t.Errorf("grant_types %s", gt)
			}
			if hasSecret {
				rec, err := st.Get(context.Background(), "client/"+id)
				if err != nil || bytes.Contains(rec, []byte(secret)) {
					t.Errorf("stored client record holds the secret in clear (or is missing: %v)", err)
				}
			}
			redirect := tc.redirect
			if redirect == "" {
				redirect = fmt.Sprint(m["redirect_uris"].([]any)[0])
			}
			q := authParams(testClient{ID: id, Redirects: []string{redirect}}, newPKCE())
			if status, _, body := get(t, e.http, authorizeURL(q), nil); status != http.StatusOK || !strings.Contains(string(body), `name="decision"`) {
				t.Errorf("authorizing with %s: %d %.300s", redirect, status, body)
			}
		})
	}
}

func TestRegisterRejects(t *testing.T) {
	e := usersAS(t, "registration {\n\t\t\trate_limit 100\n\t\t}")
	st := testStore(t, e.storagePath)
	before := len(storeKeys(t, st, "client/"))
	valid := func(redirect string) string {
		return `{"client_name":"x","token_endpoint_auth_method":"none","redirect_uris":["` + redirect + `"]}`
	}
	cases := []struct {
		name, contentType, body, error string
	}{
		{"not JSON", "application/json", `client_name=x`, "invalid_client_metadata"},
		{"JSON array", "application/json", `[` + valid("https://a.test/cb") + `]`, "invalid_client_metadata"},
		{"form content type", "application/x-www-form-urlencoded", valid("https://a.test/cb"), "invalid_client_metadata"},
		{"no content type", "", valid("https://a.test/cb"), "invalid_client_metadata"},
		{"over 64 KiB", "application/json", `{"client_name":"x","token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb"],"pad":"` + strings.Repeat("a", 65<<10) + `"}`, "invalid_client_metadata"},
		{"javascript: redirect", "application/json", valid("javascript:alert(1)"), "invalid_redirect_uri"},
		{"data: redirect", "application/json", valid("data:text/html,x"), "invalid_redirect_uri"},
		{"http on a public host", "application/json", valid("http://evil.test/cb"), "invalid_redirect_uri"},
		{"fragment", "application/json", valid("https://a.test/cb#x"), "invalid_redirect_uri"},
		{"wildcard", "application/json", valid("https://*.a.test/cb"), "invalid_redirect_uri"},
		{"relative", "application/json", valid("/cb"), "invalid_redirect_uri"},
		{"no redirect_uris", "application/json", `{"client_name":"x","token_endpoint_auth_method":"none"}`, "invalid_redirect_uri"},
		{"one bad among good", "application/json", `{"token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb","http://evil.test/cb"]}`, "invalid_redirect_uri"},
		{"implicit grant", "application/json", `{"token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb"],"grant_types":["implicit"]}`, "invalid_client_metadata"},
		{"password grant", "application/json", `{"token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb"],"grant_types":["authorization_code","password"]}`, "invalid_client_metadata"},
		{"token response type", "application/json", `{"token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb"],"response_types":["token"]}`, "invalid_client_metadata"},
		{"unknown auth method", "application/json", `{"token_endpoint_auth_method":"tls_client_auth","redirect_uris":["https://a.test/cb"]}`, "invalid_client_metadata"},
		{"redirect_uris not an array", "application/json", `{"token_endpoint_auth_method":"none","redirect_uris":"https://a.test/cb"}`, "invalid_redirect_uri"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, raw := do(t, e.http, http.MethodPost, siteAddr()+"/register", http.Header{"Content-Type": {tc.contentType}}, []byte(tc.body))
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			if status != http.StatusBadRequest || m["error"] != tc.error || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Errorf("%d %s, want 400 %s", status, raw, tc.error)
			}
		})
	}
	if status, hdr, _ := get(t, e.http, siteAddr()+"/register", nil); status != http.StatusMethodNotAllowed || !strings.Contains(hdr.Get("Allow"), "POST") {
		t.Errorf("GET /register: %d %v", status, hdr)
	}
	if after := len(storeKeys(t, st, "client/")); after != before {
		t.Errorf("refused registrations stored %d clients", after-before)
	}
}

func TestRegistrationControls(t *testing.T) {
	e := usersAS(t, "registration {\n\t\t\tinitial_access_token s3cret-T\n\t\t\trate_limit 3\n\t\t\tunused_client_lifetime 2s\n\t\t}")
	body := `{"client_name":"x","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"redirect_uris":["` + clientRedirect + `"]}`
	for _, tc := range []struct {
		name   string
		header http.Header
	}{
		{"without token", nil},
		{"wrong token", http.Header{"Authorization": {"Bearer s3cret-X"}}},
		{"token as Basic", http.Header{"Authorization": {"Basic czNjcmV0LVQ="}}},
	} {
		status, hdr, m := e.register(t, body, tc.header)
		if status != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") || m["client_id"] != nil {
			t.Errorf("%s: %d %v %v", tc.name, status, hdr, m)
		}
	}
	auth := http.Header{"Authorization": {"Bearer s3cret-T"}}
	var registered []testClient
	for i := 0; i < 3; i++ {
		status, _, m := e.register(t, body, auth)
		if status != http.StatusCreated {
			t.Fatalf("registration %d with the token: %d %v", i+1, status, m)
		}
		registered = append(registered, testClient{ID: fmt.Sprint(m["client_id"]), Redirects: []string{clientRedirect}})
	}
	if status, hdr, m := e.register(t, body, auth); status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Errorf("4th registration from one address: %d %v %v, want 429", status, hdr, m)
	}

	// A client that obtained a token is kept; the others expire.
	used := registered[0]
	ts := e.login(t, used, nil)
	time.Sleep(3 * time.Second)
	for i, c := range registered {
		status, hdr, body := get(t, e.http, authorizeURL(authParams(c, newPKCE())), nil)
		if i == 0 {
			if status != http.StatusOK {
				t.Errorf("a used client expired: %d %.200s", status, body)
			}
			continue
		}
		assertErrorPage(t, "unused client after its lifetime", status, hdr, body, http.StatusBadRequest)
		if !strings.Contains(string(body), "not registered") {
			t.Errorf("unused client: not the unknown-client page: %.300s", body)
		}
	}
	next := e.exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.Refresh}, "client_id": {used.ID}}, nil)
	assertNoSecretsLogged(t, e.logDir, "s3cret-T", ts.Access, ts.Refresh, next.Access, next.Refresh)
}

// --- Client ID Metadata Documents ---

// metadataServer serves client metadata documents over TLS and makes the
// authorization server trust it for the test.
func metadataServer(t *testing.T, docs map[string]func(base string) any) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	hits := new(atomic.Int64)
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc(srv.URL))
	}))
	t.Cleanup(srv.Close)
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	saved := clientMetadataOptions
	clientMetadataOptions = clients.FetcherOptions{AllowLoopback: true, RootCAs: pool}
	t.Cleanup(func() { clientMetadataOptions = saved })
	return srv, hits
}

func cimdDoc(path string, mutate func(map[string]any)) func(string) any {
	return func(base string) any {
		doc := map[string]any{
			"client_id":                  base + path,
			"client_name":                "CIMD test client",
			"client_uri":                 base,
			"redirect_uris":              []string{clientRedirect},
			"grant_types":                []string{"authorization_code", "refresh_token"},
			"response_types":             []string{"code"},
			"token_endpoint_auth_method": "none",
		}
		if mutate != nil {
			mutate(doc)
		}
		return doc
	}
}

func TestClientMetadataDocuments(t *testing.T) {
	srv, _ := metadataServer(t, map[string]func(string) any{
		"/client.json":   cimdDoc("/client.json", nil),
		"/mismatch.json": cimdDoc("/other.json", nil),
		"/trailing.json": cimdDoc("/trailing.json/", nil),
		"/secret.json":   cimdDoc("/secret.json", func(d map[string]any) { d["token_endpoint_auth_method"] = "client_secret_basic" }),
	})
	e := usersAS(t, "")
	clientID := srv.URL + "/client.json"

	var asm map[string]any
	if status, _, body := get(t, e.http, siteAddr()+"/.well-known/oauth-authorization-server", nil); status != http.StatusOK || json.Unmarshal(body, &asm) != nil {
		t.Fatalf("metadata: %d %s", status, body)
	}
	if asm["client_id_metadata_document_supported"] != true || !strings.Contains(fmt.Sprint(asm["token_endpoint_auth_methods_supported"]), "none") {
		t.Errorf("metadata does not advertise CIMD with none: %v", asm)
	}

	b := aliceBrowser(t)
	transport, _ := sdkClient(t, b, clientID)
	if id := whoami(t, transport); id.User != "users:alice" || id.Client != clientID {
		t.Errorf("backend saw %+v, want alice with client %s", id, clientID)
	}
	consent := b.Pages["/authorize"]
	if consent == nil {
		t.Fatal("no consent page")
	}
	_, _, page := get(t, e.http, authorizeURL(authParams(testClient{ID: clientID, Redirects: []string{clientRedirect}}, newPKCE())), nil)
	host := strings.TrimPrefix(srv.URL, "https://")
	if !strings.Contains(string(page), `metadata document at <span class="host">`+host+`</span>`) || strings.Contains(string(page), "not verified") {
		t.Errorf("consent page does not name the document's host %s as verified: %s", host, page)
	}

	for _, tc := range []struct{ name, clientID, redirect string }{
		{"client_id differs from its URL", srv.URL + "/mismatch.json", clientRedirect},
		{"client_id with a trailing slash", srv.URL + "/trailing.json", clientRedirect},
		{"shared-secret auth method", srv.URL + "/secret.json", clientRedirect},
		{"document not found", srv.URL + "/missing.json", clientRedirect},
		{"redirect not in the document", clientID, "https://attacker.test/cb"},
		{"http client_id", strings.Replace(clientID, "https:", "http:", 1), clientRedirect},
		{"client_id with a fragment", clientID + "#f", clientRedirect},
		{"client_id with dot segments", srv.URL + "/x/../client.json", clientRedirect},
	} {
		q := authParams(testClient{ID: tc.clientID, Redirects: []string{tc.redirect}}, newPKCE())
		status, hdr, body := get(t, e.http, authorizeURL(q), nil)
		assertErrorPage(t, tc.name, status, hdr, body, http.StatusBadRequest)
	}
}

func TestClientMetadataDocumentsOff(t *testing.T) {
	srv, hits := metadataServer(t, map[string]func(string) any{"/client.json": cimdDoc("/client.json", nil)})
	e := usersAS(t, "client_metadata_documents off")
	var asm map[string]any
	if status, _, body := get(t, e.http, siteAddr()+"/.well-known/oauth-authorization-server", nil); status != http.StatusOK || json.Unmarshal(body, &asm) != nil {
		t.Fatalf("metadata: %d %s", status, body)
	}
	if _, ok := asm["client_id_metadata_document_supported"]; ok || strings.Contains(fmt.Sprint(asm["token_endpoint_auth_methods_supported"]), "private_key_jwt") {
		t.Errorf("metadata advertises client metadata documents: %v", asm)
	}
	q := authParams(testClient{ID: srv.URL + "/client.json", Redirects: []string{clientRedirect}}, newPKCE())
	status, hdr, body := get(t, e.http, authorizeURL(q), nil)
	assertErrorPage(t, "metadata document client_id", status, hdr, body, http.StatusBadRequest)
	if n := hits.Load(); n != 0 {
		t.Errorf("the document was fetched %d times", n)
	}
}
