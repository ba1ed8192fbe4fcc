package mcpauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// Tests of the consent step through a real Caddy: its CSRF protection, the
// upstream login it starts, the callback, the page itself and remembered
// consent.

func TestConsent(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "u-1", Email: "alice@example.com", EmailVerified: true})
	e := startAS(t, oidcUpstream(idp))
	st := testStore(t, e.storagePath)
	c := e.publicClient(t)

	t.Run("GET is 405", func(t *testing.T) {
		status, hdr, body := oauthtest.Get(t, e.HTTP, siteAddr()+"/authorize/consent?decision=approve", nil)
		assertErrorPage(t, "GET /authorize/consent", status, hdr, body, http.StatusMethodNotAllowed)
	})

	t.Run("forged approvals are refused before the upstream is visited", func(t *testing.T) {
		b := newBrowser(t)
		q := authParams(c, oauthtest.NewPKCE())
		form := consentForm(t, b, q)
		form.Set("decision", "approve")

		other := newBrowser(t) // another browser, without a cookie
		withOwnCookie := newBrowser(t)
		consentForm(t, withOwnCookie, authParams(c, oauthtest.NewPKCE()))
		for _, tc := range []struct {
			name string
			b    *browser
			form func() url.Values
		}{
			{"no csrf", b, func() url.Values { f := oauthtest.CloneValues(form); f.Del("csrf"); return f }},
			{"wrong csrf", b, func() url.Values {
				f := oauthtest.CloneValues(form)
				f.Set("csrf", oauthtest.NewPKCE().Verifier)
				return f
			}},
			{"csrf of the request id", b, func() url.Values { f := oauthtest.CloneValues(form); f.Set("csrf", form.Get("request")); return f }},
			{"another browser", other, func() url.Values { return oauthtest.CloneValues(form) }},
			{"another browser with its own session", withOwnCookie, func() url.Values { return oauthtest.CloneValues(form) }},
			// A reader taking the first value would deny, another the last.
			{"repeated decision", b, func() url.Values {
				f := oauthtest.CloneValues(form)
				f["decision"] = []string{"deny", "approve"}
				return f
			}},
			{"repeated request", b, func() url.Values { f := oauthtest.CloneValues(form); f.Add("request", form.Get("request")); return f }},
		} {
			status, hdr, body := postConsent(t, tc.b, tc.form())
			if (status != http.StatusForbidden && status != http.StatusBadRequest) || hdr.Get("Location") != "" {
				t.Errorf("%s: %d Location=%q, want 403/400 without redirect: %.200s", tc.name, status, hdr.Get("Location"), body)
			}
		}
		if n := idp.Requests(idp.Paths.Authorize); n != 0 {
			t.Errorf("the upstream was visited %d times before consent", n)
		}
		if keys := storeKeys(t, st, state.KindLogin); len(keys) != 0 {
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
		if keys := storeKeys(t, st, state.KindLogin); len(keys) != 1 {
			t.Errorf("%d login states stored after consent, want 1", len(keys))
		}
		if status, hdr, body := postConsent(t, b, form); status != http.StatusBadRequest || hdr.Get("Location") != "" {
			t.Errorf("consent posted twice: %d %q %.200s", status, hdr.Get("Location"), body)
		}
	})

	t.Run("deny goes back to the client without the upstream", func(t *testing.T) {
		b := newBrowser(t)
		b.Deny = true
		q := authParams(c, oauthtest.NewPKCE())
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
		form := consentForm(t, b, authParams(c, oauthtest.NewPKCE()))
		form.Set("decision", "approve")
		status, hdr, _ := postConsent(t, b, form)
		if status != http.StatusSeeOther {
			t.Fatalf("approval: %d", status)
		}
		status, hdr, _ = oauthtest.Get(t, b.client, hdr.Get("Location"), nil)
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
			siteAddr() + "/authorize/callback?code=abc&state=" + oauthtest.NewPKCE().Verifier,
			siteAddr() + "/authorize/callback?code=abc",
			siteAddr() + "/authorize/callback?error=access_denied&state=made-up",
		} {
			status, hdr, body := oauthtest.Get(t, b.client, u, nil)
			assertErrorPage(t, u, status, hdr, body, http.StatusBadRequest)
		}
	})

	t.Run("callback is single use", func(t *testing.T) {
		b := newBrowser(t)
		cb := upToCallback(t, b)
		status, hdr, _ := oauthtest.Get(t, b.client, cb, nil)
		loc, _ := url.Parse(hdr.Get("Location"))
		if status != http.StatusFound || loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("callback: %d %q", status, hdr.Get("Location"))
		}
		status, hdr, body := oauthtest.Get(t, b.client, cb, nil)
		assertErrorPage(t, "replayed callback", status, hdr, body, http.StatusBadRequest)
	})

	t.Run("callback in another browser", func(t *testing.T) {
		cb := upToCallback(t, newBrowser(t))
		status, hdr, body := oauthtest.Get(t, newBrowser(t).client, cb, nil)
		assertErrorPage(t, "callback in another browser", status, hdr, body, http.StatusBadRequest)
	})

	t.Run("page shows the client safely", func(t *testing.T) {
		hostile := e.RegisterClient(t, map[string]any{
			"client_name":                "<script>alert(1)</script>",
			"redirect_uris":              []string{"https://attacker.test/cb"},
			"token_endpoint_auth_method": "none",
		})
		status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(hostile, oauthtest.NewPKCE())), nil)
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

func TestRememberConsent(t *testing.T) {
	e := usersAS(t, "remember_consent 1h")
	c := e.publicClient(t, clientRedirect, "http://127.0.0.1:33418/other")
	c2 := e.publicClient(t)
	b := aliceBrowser(t)

	consentShown := func(steps []step) bool {
		return steps[0].Status == http.StatusOK && strings.Contains(steps[0].Body, `name="decision"`)
	}
	run := func(t *testing.T, b *browser, c oauthtest.Client, redirect string) []step {
		t.Helper()
		q := authParams(c, oauthtest.NewPKCE())
		q.Set("redirect_uri", redirect)
		steps := walk(t, b, authorizeURL(q))
		assertAuthzResponse(t, redirectedTo(t, steps), redirect, q.Get("state"), "")
		return steps
	}
	if !t.Run("first authorization asks for consent", func(t *testing.T) {
		if !consentShown(run(t, b, c, clientRedirect)) {
			t.Fatal("first authorization skipped consent")
		}
	}) {
		return
	}
	t.Run("same client and redirect URI go straight to the login", func(t *testing.T) {
		steps := run(t, b, c, clientRedirect)
		if consentShown(steps) {
			t.Error("consent asked again for the same client and redirect URI")
		}
		if loc := steps[0].location(); steps[0].Status != http.StatusSeeOther || loc == nil || loc.Path != "/authorize/login" {
			t.Errorf("remembered consent: first answer %d %v, want 303 to the login", steps[0].Status, loc)
		}
	})
	t.Run("another redirect URI asks again", func(t *testing.T) {
		if !consentShown(run(t, b, c, "http://127.0.0.1:33418/other")) {
			t.Error("remembered consent applied to another redirect URI")
		}
	})
	t.Run("another client asks again", func(t *testing.T) {
		if !consentShown(run(t, b, c2, clientRedirect)) {
			t.Error("remembered consent applied to another client")
		}
	})
	t.Run("another browser asks again", func(t *testing.T) {
		if !consentShown(run(t, aliceBrowser(t), c, clientRedirect)) {
			t.Error("remembered consent applied to another browser")
		}
	})
}
