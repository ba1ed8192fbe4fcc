package mcpauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// offline_access (MCP SEP-2207): the authorization server advertises it,
// the resource never asks for it, and a client gets a refresh token when
// it registered the refresh_token grant, asked for offline_access or not,
// and never otherwise. It is not a scope of the access token.
func TestOfflineAccess(t *testing.T) {
	e := usersAS(t, "")

	var asm, prm struct {
		Scopes []string `json:"scopes_supported"`
	}
	for path, doc := range map[string]any{"/.well-known/oauth-authorization-server": &asm, "/.well-known/oauth-protected-resource/mcp": &prm} {
		status, _, body := oauthtest.Get(t, e.HTTP, siteAddr()+path, nil)
		if status != http.StatusOK || json.Unmarshal(body, doc) != nil {
			t.Fatalf("%s: %d %s", path, status, body)
		}
	}
	if !slices.Contains(asm.Scopes, "offline_access") {
		t.Errorf("authorization server metadata scopes_supported %q lacks offline_access", asm.Scopes)
	}
	if slices.Contains(prm.Scopes, "offline_access") || len(prm.Scopes) == 0 {
		t.Errorf("resource metadata scopes_supported %q: want the resource's scopes, never offline_access", prm.Scopes)
	}
	for _, token := range []string{"", "not-a-token"} {
		status, hdr, _ := oauthtest.Do(t, e.HTTP, http.MethodPost, canonicalResource(), oauthtest.MCPHeader(token), []byte(oauthtest.MCPInitialize))
		if ch := hdr.Get("WWW-Authenticate"); status != http.StatusUnauthorized || challengeParam(ch, "scope") == "" || strings.Contains(ch, "offline_access") {
			t.Errorf("challenge for token %q: %d %q, want a scope without offline_access", token, status, ch)
		}
	}

	refresher := e.publicClient(t)
	// RFC 7591 section 2: without grant_types, a client registers
	// authorization_code only.
	codeOnly := e.RegisterClient(t, map[string]any{
		"client_name": "code only", "redirect_uris": []string{clientRedirect}, "token_endpoint_auth_method": "none",
	})
	for _, tc := range []struct {
		name        string
		client      oauthtest.Client
		scope       string
		wantScope   string
		wantRefresh bool
	}{
		{"refresh grant, offline_access asked", refresher, "mcp:tools offline_access", "mcp:tools", true},
		{"refresh grant, offline_access not asked", refresher, "mcp:tools", "mcp:tools", true},
		{"refresh grant, offline_access alone", refresher, "offline_access", "mcp:tools mcp:admin", true},
		{"refresh grant, offline_access in capitals", refresher, "OFFLINE_ACCESS mcp:admin", "mcp:admin", true},
		{"refresh grant, offline_access with stray spaces", refresher, "  offline_access\tmcp:tools ", "mcp:tools", true},
		{"no refresh grant, offline_access asked", codeOnly, "mcp:tools offline_access", "mcp:tools", false},
		{"no refresh grant, offline_access not asked", codeOnly, "mcp:tools", "mcp:tools", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ts := e.login(t, tc.client, url.Values{"scope": {tc.scope}})
			_, claims := oauthtest.DecodeJWT(t, ts.Access)
			if ts.Scope != tc.wantScope || claims["scope"] != tc.wantScope {
				t.Errorf("response scope %q, token scope %v; want %q for both", ts.Scope, claims["scope"], tc.wantScope)
			}
			if (ts.Refresh != "") != tc.wantRefresh {
				t.Fatalf("refresh token issued: %v, want %v", ts.Refresh != "", tc.wantRefresh)
			}
			if e.mcpStatus(t, ts.Access) != http.StatusOK {
				t.Error("access token refused")
			}
			if !tc.wantRefresh {
				return
			}
			// Clients that send their authorization request's scope
			// again on refresh are not refused for offline_access.
			for _, extra := range []url.Values{nil, {"scope": {"offline_access"}}, {"scope": {tc.wantScope + " offline_access"}}} {
				next := e.mustRefresh(t, tc.client, ts.Refresh, extra)
				if _, claims := oauthtest.DecodeJWT(t, next.Access); next.Scope != tc.wantScope || claims["scope"] != tc.wantScope {
					t.Errorf("refresh with %v: %q (token %v), want %q", extra, next.Scope, claims["scope"], tc.wantScope)
				}
				ts = next
			}
			// Scopes compare exactly: another spelling is a scope the
			// grant does not hold.
			if status, m := e.refresh(t, tc.client, ts.Refresh, url.Values{"scope": {"OFFLINE_ACCESS"}}); status != http.StatusBadRequest || m["error"] != "invalid_scope" {
				t.Errorf("refresh asking OFFLINE_ACCESS: %d %v, want invalid_scope", status, m)
			}
		})
	}
	t.Run("the refresh grant stays refused to a client that did not register it", func(t *testing.T) {
		ts := e.login(t, refresher, nil)
		status, _, m := e.Token(t, refreshForm(codeOnly, ts.Refresh), nil)
		if status != http.StatusBadRequest || m["error"] != "unauthorized_client" {
			t.Errorf("refresh by a client without the grant: %d %v", status, m)
		}
	})
}

// offline_access asks for a refresh token: a resource, or a request
// path or tool, that names it as a scope is a configuration error, as it
// would end up in resource metadata or challenges.
func TestOfflineAccessIsNoResourceScope(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	site := func(auth string) string {
		return globalOptions(storagePath, filepath.Join(logDir, "caddy.log")) + fmt.Sprintf("%s {\n\tmcp_auth {\n\t\t%s\n\t\t%s\n\t}\n\trespond 200\n}\n", siteAddr(), usersUpstream(), auth)
	}
	for _, auth := range []string{
		"scopes mcp:tools offline_access",
		"resource /mcp {\n\t\t\tscopes offline_access\n\t\t}",
		"scopes mcp:tools\n\t\trequire_scope /mcp/keep offline_access",
		"scopes mcp:tools\n\t\ttool_scope sync offline_access",
	} {
		assertConfigLoads(t, site(auth), []string{"offline_access", "refresh token"})
	}
	// offline_access stays a scope a client may ask for and a grant
	// rule may name, harmlessly.
	assertConfigLoads(t, site("scopes mcp:tools\n\t\tgrant_scope mcp:tools offline_access to everyone"), nil)
}

// scopeRulesConfig is the mcp_auth block of asSite (resource /mcp with
// mcp:tools and mcp:admin) for alice and bob, where the add tool needs
// mcp:delete, a scope only a tool_scope names, and only alice may have
// mcp:admin and mcp:delete.
func scopeRulesConfig(aliceScopes, extra string) string {
	return `upstream users {
			alice ` + aliceHash + `
			bob ` + aliceHash + `
		}
		tool_scope add mcp:delete
		grant_scope mcp:tools to everyone
		grant_scope ` + aliceScopes + ` to users alice
		` + extra
}

// loginAs authorizes c for user, asking scope, and redeems the code.
func (e *asEnv) loginAs(t *testing.T, user string, c oauthtest.Client, scope string) oauthtest.TokenSet {
	t.Helper()
	p := oauthtest.NewPKCE()
	q := authParams(c, p)
	q.Set("scope", scope)
	b := newBrowser(t)
	b.Username, b.Password = user, "correct horse"
	loc := redirectedTo(t, walk(t, b, authorizeURL(q)))
	if loc.Query().Get("code") == "" {
		t.Fatalf("%s asking %q: no code: %s", user, scope, loc)
	}
	return e.Exchange(t, codeForm(c, loc.Query().Get("code"), p), nil)
}

// callAdd calls the add tool with a real MCP client holding token; the
// error of a refusal holds the challenge.
func callAdd(t *testing.T, token string) error {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "scopes-test", Version: "0"}, nil).Connect(t.Context(),
		&mcp.StreamableClientTransport{Endpoint: canonicalResource(), HTTPClient: mustTLSClient(t), OAuthHandler: staticToken(token)}, nil)
	if err != nil {
		return err
	}
	defer cs.Close()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 2}})
	if err == nil && res.IsError {
		err = fmt.Errorf("tool error: %v", res.Content)
	}
	return err
}

// Clients that cannot step up (Claude Code drops a 403 insufficient_scope
// on tools/call): with grant_all_scopes, an authorization grants every
// scope of the resource the user may have, tool scopes included, at once
// and at every refresh, and never one the grant_scope rules withhold.
func TestGrantAllScopes(t *testing.T) {
	e := startAS(t, scopeRulesConfig("mcp:admin mcp:delete", ""))
	c := e.publicClient(t)

	// Without it, a client asking for mcp:tools must step up to call add,
	// and can: the scope the challenge names is granted when asked for.
	before := e.loginAs(t, "alice", c, "mcp:tools")
	if before.Scope != "mcp:tools" {
		t.Fatalf("alice asking mcp:tools got %q", before.Scope)
	}
	if err := callAdd(t, before.Access); err == nil || !strings.Contains(err.Error(), `error="insufficient_scope"`) || !strings.Contains(err.Error(), `scope="mcp:delete"`) {
		t.Fatalf("add with mcp:tools alone: %v, want 403 insufficient_scope naming mcp:delete", err)
	}
	if ts := e.loginAs(t, "alice", c, "mcp:tools mcp:delete"); ts.Scope != "mcp:tools mcp:delete" || callAdd(t, ts.Access) != nil {
		t.Errorf("alice stepping up to mcp:delete got %q", ts.Scope)
	}
	if ts := e.loginAs(t, "bob", c, "mcp:tools mcp:delete"); ts.Scope != "mcp:tools" {
		t.Errorf("bob stepping up to mcp:delete got %q, which no rule gives him", ts.Scope)
	}

	reloadCaddy(t, asSite(t, e.storagePath, e.logDir, scopeRulesConfig("mcp:admin mcp:delete", "grant_all_scopes")))
	all := "mcp:tools mcp:admin mcp:delete"
	alice := e.loginAs(t, "alice", c, "mcp:tools")
	if _, claims := oauthtest.DecodeJWT(t, alice.Access); alice.Scope != all || claims["scope"] != all {
		t.Fatalf("alice asking mcp:tools got %q (token %v), want %q", alice.Scope, claims["scope"], all)
	}
	if err := callAdd(t, alice.Access); err != nil {
		t.Errorf("alice calling add without stepping up: %v", err)
	}
	bob := e.loginAs(t, "bob", c, "mcp:tools")
	if bob.Scope != "mcp:tools" {
		t.Errorf("bob got %q, want only what the rules give him", bob.Scope)
	}
	if err := callAdd(t, bob.Access); err == nil || !strings.Contains(err.Error(), `error="insufficient_scope"`) {
		t.Errorf("bob calling add: %v, want 403 insufficient_scope", err)
	}
	// A refresh never widens a grant (RFC 6749 section 6): one made
	// before keeps what the user consented to, asked for or not; asking
	// for one the rules withheld at authorization is refused too.
	if status, body := e.refresh(t, c, before.Refresh, url.Values{"scope": {all}}); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("refresh of a grant of mcp:tools asking %q: %d %v, want 400 invalid_scope", all, status, body)
	}
	if ts := e.mustRefresh(t, c, before.Refresh, nil); ts.Scope != "mcp:tools" {
		t.Errorf("refresh of a grant of mcp:tools: %q, want mcp:tools", ts.Scope)
	}
	if status, body := e.refresh(t, c, bob.Refresh, url.Values{"scope": {"mcp:tools mcp:delete"}}); status != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("bob refreshing asking mcp:delete: %d %v, want 400 invalid_scope", status, body)
	}

	// The rules decide at every refresh: alice loses mcp:delete, and
	// her tokens that carry it stop working.
	reloadCaddy(t, asSite(t, e.storagePath, e.logDir, scopeRulesConfig("mcp:admin", "grant_all_scopes")))
	if e.mcpStatus(t, alice.Access) != http.StatusOK {
		t.Fatal("alice's access token refused before any refresh")
	}
	ts := e.mustRefresh(t, c, alice.Refresh, nil)
	if ts.Scope != "mcp:tools mcp:admin" {
		t.Errorf("alice after losing mcp:delete refreshed to %q", ts.Scope)
	}
	if status := e.mcpStatus(t, alice.Access); status != http.StatusUnauthorized {
		t.Errorf("alice's access token with the withdrawn mcp:delete: %d, want 401", status)
	}
	if err := callAdd(t, ts.Access); err == nil || !strings.Contains(err.Error(), `scope="mcp:delete"`) {
		t.Errorf("alice calling add after losing mcp:delete: %v", err)
	}
}

// The consent page says what the scopes it lists allow, in the operator's
// words, HTML-escaped, with each scope's name alongside; with
// grant_all_scopes it lists every scope the app may get.
func TestConsentScopeDescriptions(t *testing.T) {
	e := startAS(t, scopeRulesConfig("mcp:admin mcp:delete", `grant_all_scopes
		scope mcp:tools "Use the todo tools"
		scope mcp:delete "Delete <script>alert(1)</script> todos & lists"`))
	c := e.publicClient(t)
	q := authParams(c, oauthtest.NewPKCE())
	q.Set("scope", "mcp:tools")
	status, _, body := oauthtest.Get(t, aliceBrowser(t).client, authorizeURL(q), nil)
	page := string(body)
	if status != http.StatusOK {
		t.Fatalf("consent page: %d %.300s", status, body)
	}
	for _, want := range []string{
		`<li>Use the todo tools <span class="muted">mcp:tools</span></li>`,
		`<li>mcp:admin</li>`,
		`<li>Delete &lt;script&gt;alert(1)&lt;/script&gt; todos &amp; lists <span class="muted">mcp:delete</span></li>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page lacks %s:\n%s", want, page)
		}
	}
	if strings.Contains(page, "<script>") {
		t.Error("a scope description's markup reached the page")
	}
}
