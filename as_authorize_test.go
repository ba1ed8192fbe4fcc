package mcpauth

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Tests of /authorize through a real Caddy: which clients and redirect URIs
// it trusts, which errors go back to the client, and what a successful
// authorization response carries.

func TestAuthorizeRejectsUntrustedClientsAndRedirects(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t, "https://client.test/cb", "http://127.0.0.1:5555/cb")
	one := e.publicClient(t, "https://client.test/only")
	p := oauthtest.NewPKCE()

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
			status, hdr, body := oauthtest.Get(t, e.HTTP, u, nil)
			assertErrorPage(t, u, status, hdr, body, http.StatusBadRequest)
		})
	}

	t.Run("loopback redirect on any port", func(t *testing.T) {
		p := oauthtest.NewPKCE()
		q := authParams(c, p)
		q.Set("redirect_uri", "http://127.0.0.1:61234/cb")
		loc := redirectedTo(t, walk(t, aliceBrowser(t), authorizeURL(q)))
		assertAuthzResponse(t, loc, "http://127.0.0.1:61234/cb", q.Get("state"), "")
		form := codeForm(c, loc.Query().Get("code"), p)
		form.Set("redirect_uri", "http://127.0.0.1:5555/cb")
		if status, _, m := e.Token(t, form, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("redeeming with the registered port instead of the one used: %d %v, want invalid_grant", status, m)
		}
	})

	t.Run("missing redirect_uri with one registered", func(t *testing.T) {
		p := oauthtest.NewPKCE()
		q := authParams(one, p)
		q.Del("redirect_uri")
		loc := redirectedTo(t, walk(t, aliceBrowser(t), authorizeURL(q)))
		assertAuthzResponse(t, loc, one.Redirects[0], q.Get("state"), "")
		form := codeForm(one, loc.Query().Get("code"), p)
		form.Del("redirect_uri")
		ts := e.Exchange(t, form, nil)
		if _, claims := oauthtest.DecodeJWT(t, ts.Access); claims["aud"] != canonicalResource() {
			t.Errorf("aud = %v", claims["aud"])
		}
	})
}

func TestAuthorizeErrorsGoBackToTheClient(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	p := oauthtest.NewPKCE()
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
		{"code_challenge_method plain", func(q url.Values) { q.Set("code_challenge_method", "plain"); q.Set("code_challenge", p.Verifier) }, "", "invalid_request"},
		{"code_challenge_method lower case", set("code_challenge_method", "s256"), "", "invalid_request"},
		{"code_challenge 42 chars", set("code_challenge", p.Challenge[:42]), "", "invalid_request"},
		{"code_challenge padded", set("code_challenge", p.Challenge[:42]+"="), "", "invalid_request"},
		{"code_challenge 44 chars", set("code_challenge", p.Challenge+"A"), "", "invalid_request"},
		{"code_challenge with +", set("code_challenge", "+"+p.Challenge[1:]), "", "invalid_request"},
		{"duplicated state", nil, "&state=other", "invalid_request"},
		{"duplicated response_type", nil, "&response_type=code", "invalid_request"},
		{"duplicated code_challenge", nil, "&code_challenge=" + p.Challenge, "invalid_request"},
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
			status, hdr, body := oauthtest.Get(t, e.HTTP, u, http.Header{"Origin": {"https://evil.test"}})
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

	t.Run("code, state and iss go to the registered redirect URI", func(t *testing.T) {
		p := oauthtest.NewPKCE()
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
		ts := e.Exchange(t, codeForm(c, loc.Query().Get("code"), p), nil)
		if _, claims := oauthtest.DecodeJWT(t, ts.Access); claims["aud"] != canonicalResource() {
			t.Errorf("aud = %v", claims["aud"])
		}
	})

	t.Run("no CORS headers", func(t *testing.T) {
		status, hdr, _ := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(c, oauthtest.NewPKCE())), http.Header{"Origin": {"https://x.test"}})
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
			p := oauthtest.NewPKCE()
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
			ts := e.Exchange(t, form, nil)
			if _, claims := oauthtest.DecodeJWT(t, ts.Access); claims["aud"] != canonicalResource() {
				t.Errorf("resource %q: aud = %v, want %q", res, claims["aud"], canonicalResource())
			}
		}
	})

	t.Run("resource omitted at the token endpoint", func(t *testing.T) {
		p := oauthtest.NewPKCE()
		form := codeForm(c, loginCode(t, authParams(c, p)), p)
		form.Del("resource")
		if _, claims := oauthtest.DecodeJWT(t, e.Exchange(t, form, nil).Access); claims["aud"] != canonicalResource() {
			t.Errorf("aud = %v", claims["aud"])
		}
	})

	t.Run("scope keeps the configured scopes, in their order", func(t *testing.T) {
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
			p := oauthtest.NewPKCE()
			q := authParams(c, p)
			if tc.scope != nil {
				q.Set("scope", *tc.scope)
			}
			ts := e.Exchange(t, codeForm(c, loginCode(t, q), p), nil)
			_, claims := oauthtest.DecodeJWT(t, ts.Access)
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
	p := oauthtest.NewPKCE()
	ts := e.Exchange(t, codeForm(c, loginCode(t, authParams(c, p)), p), nil)
	if e.mcpStatus(t, ts.Access) != http.StatusOK {
		t.Error("token from the flow refused")
	}
}
