package mcpauth

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Attacks on who may log in and on what the client is sent back: each test
// performs the attack against a real Caddy and asserts the refusal.

// lastLocation is the raw Location of the walk's last response, as the
// browser received it, byte for byte.
func lastLocation(t *testing.T, steps []step) string {
	t.Helper()
	redirectedTo(t, steps) // a 302/303, not a page
	return steps[len(steps)-1].Header.Get("Location")
}

// A user the allow rules refuse, on a native app, was shown a page whose
// link back was "#ZgotmplZ" (html/template refuses the app's scheme): the
// app never learned the login ended. It must get access_denied by
// redirect, with state and iss, like every other error.
func TestAttackDeniedUserStrandsNativeApp(t *testing.T) {
	e := startAS(t, `upstream users {
			alice `+aliceHash+`
			bob `+aliceHash+`
		}
		allow users bob`)
	for _, redirect := range []string{
		"cursor://anysphere.cursor-mcp/oauth/callback",
		"com.example.app:/cb",
		"vscode://vscode.github-authentication/did-authenticate?windowId=1",
		"https://client.test/cb",
		clientRedirect,
	} {
		t.Run(redirect, func(t *testing.T) {
			c := e.publicClient(t, redirect)
			q := authParams(c, oauthtest.NewPKCE())
			q.Set("state", "s&t é/"+redirect)
			steps := walk(t, aliceBrowser(t), authorizeURL(q))
			raw := lastLocation(t, steps)
			if !strings.HasPrefix(raw, redirect+map[bool]string{true: "&", false: "?"}[strings.Contains(redirect, "?")]) {
				t.Fatalf("sent to %q, want the app's redirect URI %q", raw, redirect)
			}
			loc, _ := url.Parse(raw)
			if loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != q.Get("state") ||
				loc.Query().Get("iss") != siteAddr() || loc.Query().Has("code") {
				t.Errorf("response %s, want error=access_denied with state and iss, no code", raw)
			}
			for _, s := range steps {
				if strings.Contains(s.Body, "ZgotmplZ") {
					t.Errorf("%s %s: a page with a broken link", s.Method, s.URL)
				}
			}
		})
	}
}

// A registered redirect URI's query was decoded, re-encoded and sorted when
// the response parameters were added, so the client got back a URI it never
// registered. The registered URI must come back byte for byte, success and
// error alike, with the parameters appended.
func TestAttackRedirectQueryRewritten(t *testing.T) {
	e := usersAS(t, "")
	for _, redirect := range []string{
		"https://client.test/cb?z=1&a=2",
		"https://client.test/cb?tenant=a%2Fb+c%20d&tenant=x",
		"https://client.test/cb?flag&empty=",
		"https://client.test/cb?",
		"https://client.test/cb?x=1&",
		"https://client.test/cb?next=%2Fa%3Fb%3Dc",
		"https://client.test/cb??a=1",
		"com.example.app:/cb?Mixed=Case",
		"http://127.0.0.1:5555/cb?b=%7E&a=~",
	} {
		t.Run(redirect, func(t *testing.T) {
			c := e.publicClient(t, redirect)
			want := redirect
			if strings.HasPrefix(redirect, "http://127.0.0.1:") {
				// The loopback rule: the app listens on another port now.
				want = strings.Replace(redirect, ":5555", ":61234", 1)
			}
			for _, deny := range []bool{false, true} {
				p := oauthtest.NewPKCE()
				q := authParams(c, p)
				q.Set("redirect_uri", want)
				b := aliceBrowser(t)
				b.Deny = deny
				raw := lastLocation(t, walk(t, b, authorizeURL(q)))
				appended, ok := strings.CutPrefix(raw, want)
				if !ok {
					t.Fatalf("deny=%v: sent to %q, which does not start with the registered %q", deny, raw, want)
				}
				if want[len(want)-1] != '?' && want[len(want)-1] != '&' {
					if !strings.HasPrefix(appended, map[bool]string{true: "&", false: "?"}[strings.Contains(want, "?")]) {
						t.Fatalf("deny=%v: parameters appended as %q", deny, appended)
					}
					appended = appended[1:]
				}
				params, err := url.ParseQuery(appended)
				if err != nil || params.Get("iss") != siteAddr() || params.Get("state") != q.Get("state") {
					t.Fatalf("deny=%v: appended %q, want iss and state", deny, appended)
				}
				if deny {
					if params.Get("error") != "access_denied" {
						t.Errorf("deny: appended %q, want error=access_denied", appended)
					}
					continue
				}
				form := codeForm(c, params.Get("code"), p)
				form.Set("redirect_uri", want)
				if status, _, m := e.Token(t, form, nil); status != http.StatusOK {
					t.Errorf("the code sent to the registered URI does not redeem: %d %v", status, m)
				}
			}
		})
	}
}

// githubUpstream is an upstream block for the GitHub fake.
func githubUpstream(gh *fakeidp.GitHub) string {
	return fmt.Sprintf("upstream github {\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t\tbase_url %s\n\t\t\tapi_url %s\n\t\t}",
		gh.ClientID, gh.ClientSecret, gh.BaseURL, gh.APIURL)
}

// googleUpstream is an upstream block for the Google fake.
func googleUpstream(g *fakeidp.OIDC) string {
	return fmt.Sprintf("upstream google {\n\t\t\tissuer %s\n\t\t\tclient_id %s\n\t\t\tclient_secret %s\n\t\t}", g.URL, g.ClientID, g.ClientSecret)
}

// loginOutcome runs a login at an upstream fake in a fresh browser and
// reports whether the client got a code; a refusal must be access_denied
// sent back to the client.
func loginOutcome(t *testing.T, c oauthtest.Client, idpURL string) bool {
	t.Helper()
	q := authParams(c, oauthtest.NewPKCE())
	steps := walk(t, newBrowser(t), authorizeURL(q), idpURL)
	if loc := redirectedTo(t, steps); loc.Query().Has("code") {
		assertAuthzResponse(t, loc, c.Redirects[0], q.Get("state"), "")
		return true
	}
	deniedLogin(t, steps, c, q.Get("state"))
	return false
}

// Rule forms that matched names a user can choose are refused when the
// config loads, with an error that says what to write instead.
func TestAttackUnsafeIdentityRulesRefused(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 1, Login: "x"})
	g := fakeidp.NewGoogle(t, fakeidp.User{Subject: "1"})
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "1"})
	trusting := strings.Replace(oidcUpstream(idp), "\n\t\t}", "\n\t\t\ttrust_preferred_username\n\t\t}", 1)
	for _, tc := range []struct {
		name, auth string
		wantErr    []string // substrings of the error; none: loads
	}{
		{"oidc preferred_username", oidcUpstream(idp) + "\n\t\tallow users carol", []string{"preferred_username", "oidc:<sub>", "trust_preferred_username"}},
		{"oidc preferred_username in a grant", oidcUpstream(idp) + "\n\t\tgrant_scope mcp:admin to users carol", []string{"scope_grants", "preferred_username"}},
		{"oidc subject", oidcUpstream(idp) + "\n\t\tallow users oidc:attacker-777", nil},
		{"oidc preferred_username, trusted by the operator", trusting + "\n\t\tallow users carol", nil},
		{"google name", googleUpstream(g) + "\n\t\tallow users bob", []string{"google:<sub>"}},
		{"subject of another provider", googleUpstream(g) + "\n\t\tallow users github:583231", []string{"github account", "google"}},
		{"github login as subject", githubUpstream(gh) + "\n\t\tallow users github:octocat", []string{"numbers"}},
		{"github login, pinned", githubUpstream(gh) + "\n\t\tallow users octocat", nil},
		{"github email domain", githubUpstream(gh) + "\n\t\tallow emails *@example.com", []string{"use orgs"}},
		{"github email domain in a grant", githubUpstream(gh) + "\n\t\tallow everyone\n\t\tgrant_scope mcp:admin to emails *@example.com", []string{"use orgs"}},
		{"github email address", githubUpstream(gh) + "\n\t\tallow emails mona@example.com", nil},
		{"address list", oidcUpstream(idp) + "\n\t\tallow emails \"a@evil.com, b@example.com\"", []string{"one bare email address"}},
		{"display name", oidcUpstream(idp) + "\n\t\tallow emails \"Bob <bob@example.com>\"", []string{"one bare email address"}},
		{"domain pattern with a path", oidcUpstream(idp) + "\n\t\tallow emails *@example.com/x", []string{"domain name"}},
		{"partial domain pattern", oidcUpstream(idp) + "\n\t\tallow emails *@.example.com", []string{"domain name"}},
		{"hosted domain for oidc", oidcUpstream(idp) + "\n\t\tallow hosted_domains example.com", []string{"google only"}},
		{"orgs for google", googleUpstream(g) + "\n\t\tallow orgs acme", []string{"github only"}},
		{"emails for built-in users", usersUpstream() + "\n\t\tallow emails *@example.com", []string{"no email addresses"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assertConfigLoads(t, asSite(t, t.TempDir(), t.TempDir(), tc.auth), tc.wantErr)
		})
	}
}

// An OIDC account sub=attacker-777 that calls itself preferred_username
// "carol" passed `allow users carol`. Users are named by subject; a name
// is matched only where the operator vouches that the provider fixes it.
func TestAttackOIDCUsernameImpersonation(t *testing.T) {
	carol := fakeidp.User{Subject: "carol-sub", PreferredUsername: "carol"}
	idp := fakeidp.NewOIDC(t, carol)
	e := startAS(t, oidcUpstream(idp)+"\n\t\tallow users oidc:carol-sub")
	c := e.publicClient(t)
	if !loginOutcome(t, c, idp.URL) {
		t.Fatal("carol, named by subject, was refused")
	}
	for _, attacker := range []fakeidp.User{
		{Subject: "attacker-777", PreferredUsername: "carol"},
		{Subject: "attacker-777", PreferredUsername: "oidc:carol-sub"},
		{Subject: "Carol-Sub", PreferredUsername: "carol"},
		{Subject: "carol-sub ", PreferredUsername: "carol"},
	} {
		t.Run(attacker.Subject+"/"+attacker.PreferredUsername, func(t *testing.T) {
			idp.SetUser(attacker)
			defer idp.SetUser(carol)
			if loginOutcome(t, c, idp.URL) {
				t.Errorf("%+v logged in as carol", attacker)
			}
		})
	}
}

// A GitHub login can be renamed and then registered by anyone: the new
// owner of "octocat" passed `allow users octocat`. A login is pinned to the
// numeric id that first logs in with it; any other id presenting it, in
// any letter case, is refused.
func TestAttackGitHubReregisteredLogin(t *testing.T) {
	octocat := fakeidp.GitHubUser{ID: 583231, Login: "octocat"}
	gh := fakeidp.NewGitHub(t, octocat)
	e := startAS(t, githubUpstream(gh)+"\n\t\tallow users octocat")
	c := e.publicClient(t)
	if !loginOutcome(t, c, gh.BaseURL) {
		t.Fatal("octocat was refused")
	}
	for _, login := range []string{"octocat", "OctoCat", "OCTOCAT"} {
		t.Run(login, func(t *testing.T) {
			gh.SetUser(fakeidp.GitHubUser{ID: 9000001, Login: login})
			defer gh.SetUser(octocat)
			if loginOutcome(t, c, gh.BaseURL) {
				t.Errorf("account 9000001 with login %q passed the rule written for octocat", login)
			}
		})
	}
	// The account the login is pinned to keeps working, in any spelling.
	gh.SetUser(fakeidp.GitHubUser{ID: 583231, Login: "OctoCat"})
	if !loginOutcome(t, c, gh.BaseURL) {
		t.Error("octocat was refused after the attempts")
	}
}

// `allow emails *@example.com` was a bare suffix match on the address as
// sent: lists, display names, comments and look-alike domains passed.
// Addresses are parsed as exactly one bare address and compared by exact
// domain, verified only.
func TestAttackEmailRuleSmuggling(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "1"})
	e := startAS(t, oidcUpstream(idp)+"\n\t\tallow emails *@example.com *@xn--bcher-kva.example admin@example.org")
	c := e.publicClient(t)
	for _, tc := range []struct {
		email    string
		verified bool
		want     bool
	}{
		{"bob@example.com", true, true},
		{"bob@EXAMPLE.COM", true, true},
		{"bob@bücher.example", true, true},
		{"Admin@Example.org", true, true},
		{"bob@example.com", false, false},
		{"a@evil.com, b@example.com", true, false},
		{"b@example.com, a@evil.com", true, false},
		{`"b@example.com" <a@evil.com>`, true, false},
		{"Bob <bob@example.com>", true, false},
		{"<bob@example.com>", true, false},
		{"a@evil.com (b@example.com)", true, false},
		{`"b@example.com"@evil.com`, true, false},
		{"bob@evil-example.com", true, false},
		{"bob@sub.example.com", true, false},
		{"bob@example.com.evil.com", true, false},
		{"bob@example.com.", true, false},
		{"bob@example.co", true, false},
		{"bob@[127.0.0.1]", true, false},
		{"admin2@example.org", true, false},
		{" bob@example.com", true, false},
	} {
		t.Run(tc.email, func(t *testing.T) {
			idp.SetUser(fakeidp.User{Subject: "u-" + tc.email, Email: tc.email, EmailVerified: tc.verified})
			if got := loginOutcome(t, c, idp.URL); got != tc.want {
				t.Errorf("%q (verified %v): logged in %v, want %v", tc.email, tc.verified, got, tc.want)
			}
		})
	}
}

// A personal Google account can show a verified work address (kept after
// leaving, or added later): it passed the README's Workspace recipe. Google
// is trusted for an address only when it is authoritative for it (Gmail,
// or the account's own Workspace domain hd), and hosted_domains matches
// the Workspace itself.
func TestAttackGooglePersonalAccountWithWorkAddress(t *testing.T) {
	g := fakeidp.NewGoogle(t, fakeidp.User{Subject: "1"})
	for _, rules := range []string{"allow emails *@example.com", "allow hosted_domains example.com", "allow emails bob@example.com"} {
		t.Run(rules, func(t *testing.T) {
			e := startAS(t, googleUpstream(g)+"\n\t\t"+rules)
			c := e.publicClient(t)
			for _, tc := range []struct {
				name string
				user fakeidp.User
				want bool
			}{
				{"Workspace account", fakeidp.User{Subject: "10", Email: "bob@example.com", EmailVerified: true, HostedDomain: "example.com"}, true},
				{"personal account with the work address", fakeidp.User{Subject: "11", Email: "bob@example.com", EmailVerified: true}, false},
				{"another Workspace showing the address", fakeidp.User{Subject: "12", Email: "bob@example.com", EmailVerified: true, HostedDomain: "evil.example"}, false},
				{"sub-domain Workspace", fakeidp.User{Subject: "13", Email: "bob@example.com", EmailVerified: true, HostedDomain: "sub.example.com"}, false},
				{"unverified", fakeidp.User{Subject: "14", Email: "bob@example.com", HostedDomain: "evil.example"}, false},
			} {
				g.SetUser(tc.user)
				if got := loginOutcome(t, c, g.URL); got != tc.want {
					t.Errorf("%s: logged in %v, want %v", tc.name, got, tc.want)
				}
			}
		})
	}
}

// A user removed from allow by a config reload kept refreshing for the
// grant's whole life, with the same scopes. Every refresh applies the
// current allow and grant_scope rules to the identity recorded at login.
func TestAttackRemovedUserKeepsRefreshing(t *testing.T) {
	users := "upstream users {\n\t\t\talice " + aliceHash + "\n\t\t\tbob " + aliceHash + "\n\t\t}\n\t\t"
	rules := func(allow, admins string) string {
		return users + allow + "\n\t\tgrant_scope mcp:tools to everyone\n\t\tgrant_scope mcp:admin to users " + admins
	}
	e := startAS(t, rules("allow users alice bob", "alice"))
	reload := func(auth string) { reloadCaddy(t, asSite(t, e.storagePath, e.logDir, auth)) }
	c := e.publicClient(t)

	first := e.login(t, c, nil)
	if first.Scope != "mcp:tools mcp:admin" {
		t.Fatalf("scope %q at login", first.Scope)
	}
	current := e.mustRefresh(t, c, first.Refresh, nil)
	rt := current.Refresh

	t.Run("scopes shrink with the rules, for good", func(t *testing.T) {
		reload(rules("allow users alice bob", "bob"))
		ts := e.mustRefresh(t, c, rt, nil)
		if ts.Scope != "mcp:tools" {
			t.Errorf("scope %q after mcp:admin was taken away, want mcp:tools", ts.Scope)
		}
		if status := e.mcpStatus(t, current.Access); status != http.StatusUnauthorized {
			t.Errorf("an access token with the withdrawn scope still works: %d", status)
		}
		if status := e.mcpStatus(t, ts.Access); status != http.StatusOK {
			t.Errorf("the narrowed access token is refused: %d", status)
		}
		if status, m := e.refresh(t, c, ts.Refresh, url.Values{"scope": {"mcp:admin"}}); status == http.StatusOK {
			t.Errorf("asking for the withdrawn scope again: %d %v", status, m)
		}
		reload(rules("allow users alice bob", "alice"))
		ts = e.mustRefresh(t, c, ts.Refresh, nil)
		if ts.Scope != "mcp:tools" {
			t.Errorf("scope %q: a grant regained a scope without a new login", ts.Scope)
		}
		rt = ts.Refresh
	})

	t.Run("removed from allow", func(t *testing.T) {
		access := e.mustRefresh(t, c, rt, nil)
		reload(rules("allow users bob", "alice"))
		if status, m := e.refresh(t, c, access.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Fatalf("refresh after removal: %d %v, want invalid_grant", status, m)
		}
		if status := e.mcpStatus(t, access.Access); status != http.StatusUnauthorized {
			t.Errorf("the grant's access token still works after the refusal: %d", status)
		}
		// Let back in, the old grant stays revoked: a new login is needed.
		reload(rules("allow users alice bob", "alice"))
		if status, m := e.refresh(t, c, access.Refresh, nil); status != http.StatusBadRequest {
			t.Errorf("the revoked grant refreshed again: %d %v", status, m)
		}
	})

	t.Run("a code issued before the removal", func(t *testing.T) {
		p := oauthtest.NewPKCE()
		code := loginCode(t, authParams(c, p))
		reload(rules("allow users bob", "alice"))
		defer reload(rules("allow users alice bob", "alice"))
		if status, _, m := e.Token(t, codeForm(c, code, p), nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("code redeemed after removal: %d %v", status, m)
		}
	})
}

// The same for rules on what a grant recorded at login: GitHub
// organizations (as of the login) and a pinned login.
func TestAttackRemovedOrgKeepsRefreshing(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 42, Login: "mona", Orgs: []string{"acme"}})
	e := startAS(t, githubUpstream(gh)+"\n\t\tallow orgs ACME\n\t\tallow users mona")
	reload := func(rules string) {
		reloadCaddy(t, asSite(t, e.storagePath, e.logDir, githubUpstream(gh)+"\n\t\t"+rules))
	}
	c := e.publicClient(t)
	p := oauthtest.NewPKCE()
	ts := e.Exchange(t, codeForm(c, loginCode(t, authParams(c, p), gh.BaseURL), p), nil)

	for _, rules := range []string{"allow orgs acme", "allow users MONA", "allow users github:42"} {
		reload(rules)
		ts = e.mustRefresh(t, c, ts.Refresh, nil)
	}
	reload("allow orgs acme-admins\n\t\tallow users github:4")
	if status, m := e.refresh(t, c, ts.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh with neither the org nor the user allowed: %d %v", status, m)
	}
}

// A grant outlived the identity provider that vouched for its user: after
// the upstream changed (another provider, or another issuer of the same
// kind, where the same sub may be someone else), the old grants kept
// refreshing.
func TestAttackGrantOutlivesItsIdentityProvider(t *testing.T) {
	first := fakeidp.NewOIDC(t, fakeidp.User{Subject: "alice"})
	second := fakeidp.NewOIDC(t, fakeidp.User{Subject: "alice"})
	e := startAS(t, oidcUpstream(first)+"\n\t\tallow users oidc:alice")
	reload := func(auth string) { reloadCaddy(t, asSite(t, e.storagePath, e.logDir, auth)) }
	c := e.publicClient(t)
	login := func(idpURL string) oauthtest.TokenSet {
		p := oauthtest.NewPKCE()
		return e.Exchange(t, codeForm(c, loginCode(t, authParams(c, p), idpURL), p), nil)
	}

	ts := login(first.URL)
	reload(oidcUpstream(second) + "\n\t\tallow users oidc:alice")
	if status, m := e.refresh(t, c, ts.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("a grant of issuer %s refreshed under issuer %s: %d %v", first.URL, second.URL, status, m)
	}

	ts = login(second.URL)
	reload(usersUpstream() + "\n\t\tallow everyone")
	if status, m := e.refresh(t, c, ts.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("an oidc grant refreshed under the users upstream: %d %v", status, m)
	}
	// The new upstream's own logins work.
	e.mustRefresh(t, c, e.login(t, c, nil).Refresh, nil)
}
