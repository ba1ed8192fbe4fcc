package mcpauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Attacks of one site of a Caddy on another: every record of an
// authorization server (pending requests, logins, codes, clients, grants,
// consents, profiles, session bindings, revocations) belongs to its issuer
// and is unknown at every other site, and tokens are accepted only where
// they were issued.

// siteB is the second site of twoSites: the same port as siteAddr, on
// another host name, so it is another origin and another issuer.
func siteB() string { return fmt.Sprintf("https://127.0.0.1:%d", httpsPort) }

// aInitialAccessToken closes registration at site A.
const aInitialAccessToken = "a-registration-token-0123456789"

// Resource-server credentials of each site's /introspect.
const (
	aIntrospector, aIntrospectorSecret = "rs-a", "rs-a-secret-0123456789"
	bIntrospector, bIntrospectorSecret = "rs-b", "rs-b-secret-0123456789"
)

// twoSites is a Caddy with two authorization servers that share the store,
// the signing keys and one MCP backend. A (siteAddr) lets only alice log in
// and requires an initial access token to register; B (siteB) lets mallory
// and another alice of its own log in, and anyone register. Both remember
// consent and accept the client metadata document at cimdClient.
type twoSites struct {
	*asEnv
	cimdClient oauthtest.Client
}

func startTwoSites(t *testing.T) *twoSites {
	t.Helper()
	srv, _ := metadataServer(t, map[string]func(string) any{"/client.json": cimdDoc("/client.json", nil)})
	backend := httptest.NewServer(demomcp.Handler())
	t.Cleanup(backend.Close)
	e := &asEnv{storagePath: t.TempDir(), logDir: t.TempDir()}
	site := func(origin, users, extra string) string {
		return fmt.Sprintf(`
%s {
	mcp_auth {
		resource /mcp {
			scopes mcp:tools
		}
		upstream users {
			%s
		}
		remember_consent 1h
		%s
	}
	reverse_proxy %s {
		header_up X-MCP-User {http.auth.user.id}
		header_up X-MCP-Client {http.auth.client_id}
		header_up X-MCP-Scopes {http.auth.scopes}
	}
}
`, origin, users, extra, backend.Listener.Addr())
	}
	startCaddy(t, globalOptions(e.storagePath, filepath.Join(e.logDir, "caddy.log"))+
		site(siteAddr(), "alice "+aliceHash, "registration {\n\t\t\tinitial_access_token "+aInitialAccessToken+"\n\t\t}\n\t\tintrospection_client "+aIntrospector+" "+aIntrospectorSecret)+
		site(siteB(), "mallory "+aliceHash+"\n\t\t\talice "+aliceHash, "introspection_client "+bIntrospector+" "+bIntrospectorSecret))
	e.Server = siteServer(t)
	return &twoSites{asEnv: e, cimdClient: oauthtest.Client{ID: srv.URL + "/client.json", Redirects: []string{clientRedirect}}}
}

// params is an authorization request of c at the site origin.
func (ts *twoSites) params(c oauthtest.Client, p oauthtest.PKCE, origin string) url.Values {
	return oauthtest.AuthorizationRequest(c, p, origin+"/mcp")
}

// code logs user in at the site origin for client c and returns the code.
func (ts *twoSites) code(t *testing.T, origin, user string, c oauthtest.Client, p oauthtest.PKCE, scope string) string {
	t.Helper()
	q := ts.params(c, p, origin)
	if scope != "" {
		q.Set("scope", scope)
	}
	b := newBrowser(t)
	b.Username, b.Password = user, "correct horse"
	loc := redirectedTo(t, walk(t, b, origin+"/authorize?"+q.Encode(), origin))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("login of %s at %s failed: %s", user, origin, loc)
	}
	return code
}

// codeForm redeems code at the site origin.
func (ts *twoSites) codeForm(c oauthtest.Client, code string, p oauthtest.PKCE, origin string) url.Values {
	return oauthtest.CodeRequest(c, code, p, origin+"/mcp")
}

// post posts a form to the site origin and decodes the JSON answer.
func (ts *twoSites) post(t *testing.T, origin, path string, form url.Values, header http.Header) (int, map[string]any) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for k, v := range header {
		h[k] = v
	}
	status, _, raw := oauthtest.Do(t, ts.HTTP, http.MethodPost, origin+path, h, []byte(form.Encode()))
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return status, m
}

// tokens logs user in at the site origin with the metadata-document client
// and returns the tokens.
func (ts *twoSites) tokens(t *testing.T, origin, user, scope string) oauthtest.TokenSet {
	t.Helper()
	p := oauthtest.NewPKCE()
	code := ts.code(t, origin, user, ts.cimdClient, p, scope)
	status, m := ts.post(t, origin, "/token", ts.codeForm(ts.cimdClient, code, p, origin), nil)
	if status != http.StatusOK {
		t.Fatalf("redeeming the code at %s: %d %v", origin, status, m)
	}
	set := oauthtest.TokenSet{}
	set.Access, _ = m["access_token"].(string)
	set.Refresh, _ = m["refresh_token"].(string)
	return set
}

// mcp sends an MCP initialize request to the site origin and returns the
// status and the backend's session id.
func (ts *twoSites) mcp(t *testing.T, origin, token, session string) (int, string) {
	t.Helper()
	h := oauthtest.MCPHeader(token)
	if session != "" {
		h.Set("Mcp-Session-Id", session)
	}
	status, hdr, _ := oauthtest.Do(t, ts.HTTP, http.MethodPost, origin+"/mcp", h,
		[]byte(oauthtest.MCPInitialize))
	return status, hdr.Get("Mcp-Session-Id")
}

// refused reports a token response that must be an error, never tokens.
func refused(t *testing.T, what string, status int, m map[string]any, codes ...string) {
	t.Helper()
	if status == http.StatusOK || m["access_token"] != nil || !strings.Contains(strings.Join(codes, " "), fmt.Sprint(m["error"])) {
		t.Errorf("%s: %d %v, want one of %v", what, status, m, codes)
	}
}

// copyCookies gives the browser's cookies of one site to another, as an
// attacker driving their own browser (or curl) can.
func copyCookies(t *testing.T, b *browser, from, to string) {
	t.Helper()
	fromURL, _ := url.Parse(from)
	toURL, _ := url.Parse(to)
	b.client.Jar.SetCookies(toURL, b.client.Jar.Cookies(fromURL))
}

// clientAtA registers a public client at A, with A's initial access token.
func (ts *twoSites) clientAtA(t *testing.T) oauthtest.Client {
	t.Helper()
	status, _, m := ts.registerAt(t, siteAddr(), `{"client_name":"A's client","redirect_uris":["`+clientRedirect+`"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`,
		http.Header{"Authorization": {"Bearer " + aInitialAccessToken}})
	if status != http.StatusCreated {
		t.Fatalf("registering at A: %d %v", status, m)
	}
	return oauthtest.Client{ID: fmt.Sprint(m["client_id"]), Redirects: []string{clientRedirect}}
}

func TestAttackPendingRequestCrossesToOtherSite(t *testing.T) {
	ts := startTwoSites(t)
	for _, c := range []struct {
		name   string
		client oauthtest.Client
	}{{"registered client", ts.clientAtA(t)}, {"metadata document client", ts.cimdClient}} {
		t.Run(c.name, func(t *testing.T) {
			// The attacker starts a login at A and carries A's pending
			// request, with the browser cookie it is bound to, to B, where
			// mallory may log in.
			b := newBrowser(t)
			q := ts.params(c.client, oauthtest.NewPKCE(), siteAddr())
			status, _, page := oauthtest.Get(t, b.client, siteAddr()+"/authorize?"+q.Encode(), nil)
			if status != http.StatusOK || !strings.Contains(string(page), `name="decision"`) {
				t.Fatalf("no consent page at A: %d %.300s", status, page)
			}
			consent := formFields(string(page))
			consent.Set("decision", "approve")
			copyCookies(t, b, siteAddr(), siteB())
			status, hdr, body := oauthtest.SubmitForm(t, b.client, siteB()+"/authorize/consent", siteB(), consent)
			if status < 400 || status >= 500 || hdr.Get("Location") != "" {
				t.Errorf("A's pending request at B's consent: %d Location=%q %.200s", status, hdr.Get("Location"), body)
			}

			// Approved at A, A's login is carried to B's login form.
			status, hdr, _ = oauthtest.SubmitForm(t, b.client, siteAddr()+"/authorize/consent", siteAddr(), consent)
			loc, err := url.Parse(hdr.Get("Location"))
			if status != http.StatusSeeOther || err != nil || loc.Path != "/authorize/login" {
				t.Fatalf("consent at A: %d %q", status, hdr.Get("Location"))
			}
			status, _, page = oauthtest.Get(t, b.client, siteAddr()+loc.RequestURI(), nil)
			if status != http.StatusOK || !strings.Contains(string(page), `name="password"`) {
				t.Fatalf("no login form at A: %d %.300s", status, page)
			}
			login := formFields(string(page))
			login.Set("username", "mallory")
			login.Set("password", "correct horse")
			copyCookies(t, b, siteAddr(), siteB())
			status, hdr, body = oauthtest.SubmitForm(t, b.client, siteB()+"/authorize/login", siteB(), login)
			if l := hdr.Get("Location"); strings.Contains(l, "code=") || status < 400 || status >= 500 {
				t.Errorf("A's login at B's login form: %d Location=%q %.200s", status, l, body)
			}
			if status, _, body := oauthtest.Get(t, b.client, siteB()+loc.RequestURI(), nil); status < 400 || status >= 500 {
				t.Errorf("A's login page at B: %d %.200s", status, body)
			}
			// At A itself, mallory is not let in.
			status, hdr, _ = oauthtest.SubmitForm(t, b.client, siteAddr()+"/authorize/login", siteAddr(), login)
			if strings.Contains(hdr.Get("Location"), "code=") {
				t.Errorf("mallory got a code at A: %d %s", status, hdr.Get("Location"))
			}
		})
	}
}

func TestAttackCodeOfOtherSiteRedeemed(t *testing.T) {
	ts := startTwoSites(t)
	c := ts.cimdClient // the same client_id at both sites
	p := oauthtest.NewPKCE()
	code := ts.code(t, siteB(), "mallory", c, p, "")
	for _, resource := range []string{siteAddr(), siteB()} {
		status, m := ts.post(t, siteAddr(), "/token", ts.codeForm(c, code, p, resource), nil)
		refused(t, "B's code at A's /token for "+resource, status, m, "invalid_grant", "invalid_target")
	}
	// Unused at A, the code still works where it was issued: A neither
	// saw nor spent it.
	if status, m := ts.post(t, siteB(), "/token", ts.codeForm(c, code, p, siteB()), nil); status != http.StatusOK {
		t.Errorf("B's code at B: %d %v", status, m)
	}
}

func TestAttackClientOfOtherSiteAccepted(t *testing.T) {
	ts := startTwoSites(t)
	// Registration is open at B: the attacker registers there to get past
	// A's initial access token.
	status, _, m := ts.registerAt(t, siteB(), `{"client_name":"mallory","redirect_uris":["`+clientRedirect+`"],"token_endpoint_auth_method":"none"}`, nil)
	if status != http.StatusCreated {
		t.Fatalf("registering at B: %d %v", status, m)
	}
	fromB := oauthtest.Client{ID: fmt.Sprint(m["client_id"]), Redirects: []string{clientRedirect}}
	if status, _, m := ts.registerAt(t, siteAddr(), `{"redirect_uris":["`+clientRedirect+`"],"token_endpoint_auth_method":"none"}`, nil); status != http.StatusUnauthorized {
		t.Fatalf("registering at A without the initial access token: %d %v", status, m)
	}
	q := ts.params(fromB, oauthtest.NewPKCE(), siteAddr())
	status, hdr, body := oauthtest.Get(t, ts.HTTP, siteAddr()+"/authorize?"+q.Encode(), nil)
	assertErrorPage(t, "B's client at A's /authorize", status, hdr, body, http.StatusBadRequest)
	for _, form := range []url.Values{
		{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {oauthtest.NewPKCE().Verifier}, "client_id": {fromB.ID}, "redirect_uri": {clientRedirect}},
		{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {fromB.ID}},
	} {
		status, m := ts.post(t, siteAddr(), "/token", form, nil)
		refused(t, "B's client at A's /token ("+form.Get("grant_type")+")", status, m, "invalid_client")
	}
	// And A's own client is unknown at B.
	a := ts.clientAtA(t)
	q = ts.params(a, oauthtest.NewPKCE(), siteB())
	status, hdr, body = oauthtest.Get(t, ts.HTTP, siteB()+"/authorize?"+q.Encode(), nil)
	assertErrorPage(t, "A's client at B's /authorize", status, hdr, body, http.StatusBadRequest)
}

func TestAttackRefreshTokenOfOtherSite(t *testing.T) {
	ts := startTwoSites(t)
	atA := ts.tokens(t, siteAddr(), "alice", "")
	for _, resource := range []string{"", siteAddr() + "/mcp", siteB() + "/mcp"} {
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {atA.Refresh}, "client_id": {ts.cimdClient.ID}}
		if resource != "" {
			form.Set("resource", resource)
		}
		status, m := ts.post(t, siteB(), "/token", form, nil)
		refused(t, "A's refresh token at B (resource "+resource+")", status, m, "invalid_grant", "invalid_target")
	}
	// Presenting it at B neither spent nor revoked it at A.
	if status, m := ts.post(t, siteAddr(), "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {atA.Refresh}, "client_id": {ts.cimdClient.ID}}, nil); status != http.StatusOK {
		t.Errorf("A's refresh token at A after B: %d %v", status, m)
	}
}

func TestAttackAccessTokenOfOtherSite(t *testing.T) {
	ts := startTwoSites(t)
	atA := ts.tokens(t, siteAddr(), "alice", "openid mcp:tools")
	if status, _ := ts.mcp(t, siteB(), atA.Access, ""); status != http.StatusUnauthorized {
		t.Errorf("A's access token at B's gate: %d, want 401", status)
	}
	// userinfo
	status, _, _ := oauthtest.Do(t, ts.HTTP, http.MethodGet, siteB()+"/userinfo", oauthtest.Bearer(atA.Access), nil)
	if status != http.StatusUnauthorized {
		t.Errorf("A's access token at B's /userinfo: %d, want 401", status)
	}
	if status, _, _ := oauthtest.Do(t, ts.HTTP, http.MethodGet, siteAddr()+"/userinfo", oauthtest.Bearer(atA.Access), nil); status != http.StatusOK {
		t.Errorf("A's access token at A's /userinfo: %d", status)
	}

	// Tokens signed with the shared keys but naming the other site, in
	// its issuer or its audience, are not B's.
	ring := testRing(t, ts.storagePath)
	forge := func(iss, aud string) string {
		now := time.Now()
		tok, err := ring.Sign(tokens.AccessTokenType, tokens.AccessClaims{
			Issuer: iss, Subject: "users:alice", Audience: tokens.Audience{aud}, JWTID: tokens.NewID(),
			ClientID: ts.cimdClient.ID, Scope: "openid mcp:tools", IssuedAt: now.Unix(), Expiry: now.Add(time.Hour).Unix(),
		})
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	rsB := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(bIntrospector, bIntrospectorSecret)}}
	rsA := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(aIntrospector, aIntrospectorSecret)}}
	for _, tc := range []struct{ name, token string }{
		{"A's access token", atA.Access},
		{"A's refresh token", atA.Refresh},
		{"A's issuer, B's audience", forge(siteAddr(), siteB()+"/mcp")},
		{"B's issuer, A's audience", forge(siteB(), siteAddr()+"/mcp")},
	} {
		if status, m := ts.post(t, siteB(), "/introspect", url.Values{"token": {tc.token}}, rsB); status != http.StatusOK || m["active"] != false || len(m) != 1 {
			t.Errorf("%s at B's /introspect: %d %v, want {\"active\":false}", tc.name, status, m)
		}
		if status, _ := ts.mcp(t, siteB(), tc.token, ""); status != http.StatusUnauthorized {
			t.Errorf("%s at B's gate: %d, want 401", tc.name, status)
		}
		if status, _, _ := oauthtest.Do(t, ts.HTTP, http.MethodGet, siteB()+"/userinfo", oauthtest.Bearer(tc.token), nil); status != http.StatusUnauthorized {
			t.Errorf("%s at B's /userinfo: %d, want 401", tc.name, status)
		}
	}
	// B's credential is nothing at A either, and A still sees its token.
	if status, _ := ts.post(t, siteAddr(), "/introspect", url.Values{"token": {atA.Access}}, rsB); status != http.StatusUnauthorized {
		t.Errorf("B's resource-server credential at A's /introspect: %d, want 401", status)
	}
	if _, m := ts.post(t, siteAddr(), "/introspect", url.Values{"token": {atA.Access}}, rsA); m["active"] != true {
		t.Errorf("A's token at A's /introspect: %v", m)
	}
	if _, m := ts.post(t, siteB(), "/introspect", url.Values{"token": {forge(siteB(), siteB()+"/mcp")}}, rsB); m["active"] != true {
		t.Errorf("B's own token at B's /introspect: %v", m)
	}
}

func TestAttackRevokeAtOtherSite(t *testing.T) {
	ts := startTwoSites(t)
	atA := ts.tokens(t, siteAddr(), "alice", "")
	// The same client revokes A's tokens at B: RFC 7009 answers 200 for
	// unknown tokens, and nothing happens to A's.
	for _, hint := range []string{"", "access_token", "refresh_token"} {
		for _, tok := range []string{atA.Access, atA.Refresh} {
			if status, _ := ts.post(t, siteB(), "/revoke", url.Values{"token": {tok}, "token_type_hint": {hint}, "client_id": {ts.cimdClient.ID}}, nil); status != http.StatusOK {
				t.Errorf("revoke at B: %d", status)
			}
		}
	}
	if status, _ := ts.mcp(t, siteAddr(), atA.Access, ""); status != http.StatusOK {
		t.Errorf("A's access token after a revocation at B: %d", status)
	}
	if status, m := ts.post(t, siteAddr(), "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {atA.Refresh}, "client_id": {ts.cimdClient.ID}}, nil); status != http.StatusOK {
		t.Errorf("A's refresh token after a revocation at B: %d %v", status, m)
	}
}

func TestAttackRememberedConsentAtOtherSite(t *testing.T) {
	ts := startTwoSites(t)
	b := aliceBrowser(t)
	q := ts.params(ts.cimdClient, oauthtest.NewPKCE(), siteAddr())
	redirectedTo(t, walk(t, b, siteAddr()+"/authorize?"+q.Encode())) // consent remembered at A
	if steps := walk(t, b, siteAddr()+"/authorize?"+q.Encode()); steps[0].Status != http.StatusSeeOther {
		t.Fatalf("consent not remembered at A: %d", steps[0].Status)
	}
	// The same browser cookie and client at B: B was never approved.
	copyCookies(t, b, siteAddr(), siteB())
	q = ts.params(ts.cimdClient, oauthtest.NewPKCE(), siteB())
	status, _, body := oauthtest.Get(t, b.client, siteB()+"/authorize?"+q.Encode(), nil)
	if status != http.StatusOK || !strings.Contains(string(body), `name="decision"`) {
		t.Errorf("A's remembered consent skipped B's consent: %d %.200s", status, body)
	}
}

func TestAttackSessionOfOtherSite(t *testing.T) {
	ts := startTwoSites(t)
	// alice at A opens an MCP session on the backend both sites share.
	atA := ts.tokens(t, siteAddr(), "alice", "")
	status, session := ts.mcp(t, siteAddr(), atA.Access, "")
	if status != http.StatusOK || session == "" {
		t.Fatalf("initialize at A: %d session %q", status, session)
	}
	// At B, users:alice is another person, and mallory someone else.
	for _, user := range []string{"alice", "mallory"} {
		atB := ts.tokens(t, siteB(), user, "")
		if status, _ := ts.mcp(t, siteB(), atB.Access, session); status != http.StatusNotFound {
			t.Errorf("%s at B with A's session: %d, want 404", user, status)
		}
	}
	if status, _ := ts.mcp(t, siteAddr(), atA.Access, session); status != http.StatusOK {
		t.Errorf("alice at A with her session: %d", status)
	}
}

func TestAttackRevokingUserAtOneSiteOnly(t *testing.T) {
	ts := startTwoSites(t)
	// users:alice at A and users:alice at B are two people.
	atA := ts.tokens(t, siteAddr(), "alice", "")
	atB := ts.tokens(t, siteB(), "alice", "")
	a := ts.clientAtA(t)

	var sites []map[string]string
	if err := json.Unmarshal([]byte(runCLI(t, "sites")), &sites); err != nil || len(sites) != 2 || sites[0]["issuer"] == sites[1]["issuer"] ||
		!slices.ContainsFunc(sites, func(s map[string]string) bool { return s["issuer"] == siteAddr() }) ||
		!slices.ContainsFunc(sites, func(s map[string]string) bool { return s["issuer"] == siteB() }) {
		t.Errorf("sites: %v %v", sites, err)
	}
	var clients []map[string]any
	if status, body := adminRequest(t, http.MethodGet, "/mcp_auth/clients?issuer="+url.QueryEscape(siteB())); status != http.StatusOK || json.Unmarshal(body, &clients) != nil || len(clients) != 0 {
		t.Errorf("B's clients: %d %s, want none", status, body)
	}
	if err := json.Unmarshal([]byte(runCLI(t, "clients")), &clients); err != nil || len(clients) != 1 || clients[0]["client_id"] != a.ID || clients[0]["issuer"] != siteAddr() {
		t.Errorf("clients of every site: %v %v", clients, err)
	}
	grants := func(issuer string) []map[string]any {
		t.Helper()
		var list []map[string]any
		args := []string{"grants", "users:alice"}
		if issuer != "" {
			args = append(args, "--issuer", issuer)
		}
		if err := json.Unmarshal([]byte(runCLI(t, args...)), &list); err != nil {
			t.Fatal(err)
		}
		for _, g := range list {
			if issuer != "" && g["issuer"] != issuer {
				t.Errorf("grant of %v listed for %s", g["issuer"], issuer)
			}
		}
		return list
	}
	if len(grants(siteAddr())) != 1 || len(grants(siteB())) != 1 || len(grants("")) != 2 {
		t.Errorf("grants of alice: A %v, B %v", grants(siteAddr()), grants(siteB()))
	}
	for _, path := range []string{"/mcp_auth/clients?issuer=https://nowhere.example", "/mcp_auth/grants?issuer=not%20a%20url"} {
		if status, body := adminRequest(t, http.MethodGet, path); status != http.StatusNotFound && status != http.StatusBadRequest {
			t.Errorf("GET %s: %d %s, want 404 or 400", path, status, body)
		}
	}

	// Revoking A's alice leaves B's alice alone.
	if out := runCLI(t, "revoke", "users:alice", "--issuer", siteAddr()); !strings.Contains(out, `"revoked":1`) {
		t.Errorf("revoke at A: %s", out)
	}
	if status, _ := ts.mcp(t, siteAddr(), atA.Access, ""); status != http.StatusUnauthorized {
		t.Errorf("A's alice after revocation at A: %d", status)
	}
	if status, _ := ts.mcp(t, siteB(), atB.Access, ""); status != http.StatusOK {
		t.Errorf("B's alice after revocation at A: %d", status)
	}
	// Without an issuer, every site's alice.
	if out := runCLI(t, "revoke", "users:alice"); !strings.Contains(out, `"revoked":1`) {
		t.Errorf("revoke everywhere: %s", out)
	}
	if status, _ := ts.mcp(t, siteB(), atB.Access, ""); status != http.StatusUnauthorized {
		t.Errorf("B's alice after revocation everywhere: %d", status)
	}
}

// codeOnlyClient registers a client without the refresh_token grant: its
// logins leave no grant behind, only access tokens.
func codeOnlyClient(t *testing.T, e *asEnv) oauthtest.Client {
	t.Helper()
	return e.RegisterClient(t, map[string]any{
		"client_name": "no refresh", "redirect_uris": []string{clientRedirect},
		"grant_types": []string{"authorization_code"}, "token_endpoint_auth_method": "none",
	})
}

// attackRevocationFindsEveryToken checks, on e's store, that revoking a
// user or deleting a client ends every access token they hold, with or
// without a grant.
func attackRevocationFindsEveryToken(t *testing.T, e *asEnv) {
	t.Run("TokenWithoutGrantSurvivesUserRevocation", func(t *testing.T) {
		c := codeOnlyClient(t, e)
		first, second := e.login(t, c, nil), e.login(t, c, nil)
		if first.Refresh != "" {
			t.Fatal("a client without the refresh_token grant got a refresh token")
		}
		var out map[string]int
		status, body := adminRequest(t, http.MethodDelete, "/mcp_auth/grants?sub=users:alice")
		if status != http.StatusOK || json.Unmarshal(body, &out) != nil || out["revoked"] != 2 {
			t.Errorf("revoking alice: %d %s, want 2 revoked", status, body)
		}
		for i, ts := range []oauthtest.TokenSet{first, second} {
			if status := e.mcpStatus(t, ts.Access); status != http.StatusUnauthorized {
				t.Errorf("access token %d after revoking its user: %d", i, status)
			}
		}
		// Done once: a second revocation finds nothing left.
		if _, body := adminRequest(t, http.MethodDelete, "/mcp_auth/grants?sub=users:alice"); !strings.Contains(string(body), `"revoked":0`) {
			t.Errorf("second revocation: %s", body)
		}
		// New logins work again.
		if status := e.mcpStatus(t, e.login(t, c, nil).Access); status != http.StatusOK {
			t.Errorf("login after the revocation: %d", status)
		}
	})
	t.Run("TokenOfDeletedClientKeepsWorking", func(t *testing.T) {
		codeOnly, withRefresh, other := codeOnlyClient(t, e), e.publicClient(t), e.publicClient(t)
		a, b := e.login(t, codeOnly, nil), e.login(t, withRefresh, nil)
		refreshed := e.Exchange(t, refreshForm(withRefresh, b.Refresh), nil)
		kept := e.login(t, other, nil)
		for _, c := range []oauthtest.Client{codeOnly, withRefresh} {
			if status, body := adminRequest(t, http.MethodDelete, "/mcp_auth/clients/"+url.PathEscape(c.ID)); status != http.StatusOK {
				t.Fatalf("deleting %s: %d %s", c.ID, status, body)
			}
		}
		for name, tok := range map[string]string{"code-only client's": a.Access, "first": b.Access, "refreshed": refreshed.Access} {
			if status := e.mcpStatus(t, tok); status != http.StatusUnauthorized {
				t.Errorf("%s access token after deleting its client: %d", name, status)
			}
		}
		if status := e.mcpStatus(t, kept.Access); status != http.StatusOK {
			t.Errorf("another client's token after deleting these: %d", status)
		}
	})
}

func TestAttackRevocationMissesTokensWithoutGrant(t *testing.T) {
	t.Run("badger", func(t *testing.T) {
		attackRevocationFindsEveryToken(t, usersAS(t, ""))
	})
	t.Run("redis", func(t *testing.T) {
		url := redistest.Start(t)
		logDir := t.TempDir()
		attackRevocationFindsEveryToken(t, startASWith(t, redisASSite(t, redisGlobalOptions(url, "", filepath.Join(logDir, "caddy.log")), logDir, usersUpstream()), logDir))
	})
}

func TestAttackRevokedTokenRevivesAfterUpgrade(t *testing.T) {
	e := usersAS(t, "")
	ts := e.login(t, e.publicClient(t), nil)
	_, claims := oauthtest.DecodeJWT(t, ts.Access)
	// Revoked before sites had key spaces of their own: the revocation is
	// where it was then, outside every site's.
	abs, _ := filepath.Abs(e.storagePath)
	db, loaded, err := stores.LoadOrNew(abs, func() (caddy.Destructor, error) { return nil, fmt.Errorf("store %s is not open", abs) })
	if err != nil || !loaded {
		t.Fatalf("store %s: %v", abs, err)
	}
	t.Cleanup(func() { _, _ = stores.Delete(abs) })
	if err := db.(pooledStore).Put(t.Context(), state.KindDenied.Key(fmt.Sprint(claims["jti"])), nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	// The upgraded server starts (here: a reload) and must honour it.
	reloadCaddy(t, asSite(t, e.storagePath, e.logDir, usersUpstream()))
	if status := e.mcpStatus(t, ts.Access); status != http.StatusUnauthorized {
		t.Errorf("token revoked before the upgrade: %d, want 401", status)
	}
}

// registerAt posts a registration body to the site origin.
func (ts *twoSites) registerAt(t *testing.T, origin, body string, header http.Header) (int, http.Header, map[string]any) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	status, hdr, raw := oauthtest.Do(t, ts.HTTP, http.MethodPost, origin+"/register", h, []byte(body))
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return status, hdr, m
}
