package mcpauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Black-box tests for rows of the acceptance list (spec-requirements.md),
// named after the row IDs: introspection, revocation, registration, the
// HTML pages, Client ID Metadata Documents and refresh token expiry.

func TestSpec_Endpoints(t *testing.T) {
	srv, hits := metadataServer(t, map[string]func(string) any{"/local.json": cimdDoc("/local.json", nil)})
	e := usersAS(t, "introspection_client rs-1 rs-secret-0123456789abc")
	c := e.publicClient(t)
	ts := e.login(t, c, nil)
	rs := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("rs-1", "rs-secret-0123456789abc")}}

	t.Run("INT-01_IntrospectionNeedsAuthorization", func(t *testing.T) {
		status, _, m := e.PostForm(t, "/introspect", url.Values{"token": {ts.Access}}, nil)
		if status != http.StatusUnauthorized || m["error"] != "invalid_client" || m["active"] != nil {
			t.Errorf("introspection without credentials: %d %v, want 401 invalid_client", status, m)
		}
	})

	t.Run("INT-04_WrongHintStillFindsToken", func(t *testing.T) {
		status, _, m := e.PostForm(t, "/introspect", url.Values{"token": {ts.Refresh}, "token_type_hint": {"access_token"}}, rs)
		if status != http.StatusOK || m["active"] != true || m["token_type"] != "refresh_token" {
			t.Errorf("refresh token with hint access_token: %d %v", status, m)
		}
		status, _, m = e.PostForm(t, "/introspect", url.Values{"token": {ts.Access}, "token_type_hint": {"refresh_token"}}, rs)
		if status != http.StatusOK || m["active"] != true || m["token_type"] != "Bearer" {
			t.Errorf("access token with hint refresh_token: %d %v", status, m)
		}
	})

	t.Run("REV-06_BadClientCredentials", func(t *testing.T) {
		conf := e.RegisterClient(t, map[string]any{"client_name": "conf", "redirect_uris": []string{"https://client.test/cb"}})
		status, hdr, m := e.PostForm(t, "/revoke", url.Values{"token": {"x"}}, http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(conf.ID, conf.Secret+"x")}})
		if status != http.StatusUnauthorized || m["error"] != "invalid_client" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("revoke with a wrong Basic secret: %d %v %q", status, m, hdr.Get("WWW-Authenticate"))
		}
	})

	t.Run("DCR-05_InconsistentMetadata", func(t *testing.T) {
		for name, body := range map[string]string{
			"authorization_code without code": `{"token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb"],"grant_types":["authorization_code"],"response_types":[]}`,
			"jwks and jwks_uri":               `{"token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb"],"jwks":{"keys":[]},"jwks_uri":"https://a.test/jwks"}`,
		} {
			status, hdr, m := e.Register(t, body, nil)
			if status != http.StatusBadRequest || m["error"] != "invalid_client_metadata" || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Errorf("%s: %d %v, want 400 invalid_client_metadata", name, status, m)
			}
		}
	})

	noFraming := func(t *testing.T, what string, hdr http.Header) {
		t.Helper()
		if hdr.Get("X-Frame-Options") != "DENY" || !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s can be framed: X-Frame-Options %q, CSP %q", what, hdr.Get("X-Frame-Options"), hdr.Get("Content-Security-Policy"))
		}
	}

	t.Run("AZ-20_PagesCannotBeFramed", func(t *testing.T) {
		q := authParams(c, oauthtest.NewPKCE())
		q.Set("client_id", "no-such-client")
		status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(q), nil)
		assertErrorPage(t, "unknown client", status, hdr, body, http.StatusBadRequest)
		noFraming(t, "the error page", hdr)

		b := aliceBrowser(t)
		form := consentForm(t, b, authParams(c, oauthtest.NewPKCE()))
		form.Set("decision", "approve")
		status, hdr, _ = postConsent(t, b, form)
		if status != http.StatusSeeOther {
			t.Fatalf("approve: %d", status)
		}
		status, hdr, body = oauthtest.Get(t, b.client, hdr.Get("Location"), nil)
		if status != http.StatusOK || !strings.Contains(string(body), `name="password"`) {
			t.Fatalf("login page: %d %.200s", status, body)
		}
		noFraming(t, "the login page", hdr)
	})

	t.Run("FED-02_ConsentShowsTheRequest", func(t *testing.T) {
		status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(c, oauthtest.NewPKCE())), nil)
		page := string(body)
		if status != http.StatusOK {
			t.Fatalf("%d %.300s", status, page)
		}
		noFraming(t, "the consent page", hdr)
		for _, want := range []string{"AS test client", "not verified", "127.0.0.1:33418", "<li>mcp:tools</li>", "<li>mcp:admin</li>", canonicalResource()} {
			if !strings.Contains(page, want) {
				t.Errorf("consent page lacks %q", want)
			}
		}
	})

	t.Run("CIMD-11_ConsentShowsHostsAndLocalhostWarning", func(t *testing.T) {
		const warning = "on this device (localhost)"
		cimd := oauthtest.Client{ID: srv.URL + "/local.json", Redirects: []string{clientRedirect}}
		_, _, body := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(cimd, oauthtest.NewPKCE())), nil)
		page := string(body)
		for _, want := range []string{`metadata document at <span class="host">` + strings.TrimPrefix(srv.URL, "https://") + `</span>`,
			`<span class="host">127.0.0.1:33418</span>`, warning} {
			if !strings.Contains(page, want) {
				t.Errorf("consent page for a CIMD client with a loopback redirect lacks %q: %s", want, page)
			}
		}
		web := e.publicClient(t, "https://client.test/cb")
		if _, _, body := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(web, oauthtest.NewPKCE())), nil); strings.Contains(string(body), warning) || !strings.Contains(string(body), "client.test") {
			t.Errorf("consent page for an https redirect: %s", body)
		}
	})

	t.Run("CIMD-02_InvalidURLNeverFetched", func(t *testing.T) {
		before := hits.Load()
		host := strings.TrimPrefix(srv.URL, "https://")
		for _, id := range []string{
			"http://" + host + "/local.json",
			"https://" + host,
			"https://" + host + "/",
			"https://u:p@" + host + "/local.json",
			"https://" + host + "/a/../local.json",
			"https://" + host + "/a/%2e%2e/local.json",
			"https://" + host + "/local.json#f",
		} {
			q := authParams(oauthtest.Client{ID: id, Redirects: []string{clientRedirect}}, oauthtest.NewPKCE())
			status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(q), nil)
			assertErrorPage(t, id, status, hdr, body, http.StatusBadRequest)
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("invalid client_id URLs caused %d fetches", n)
		}
	})
}

func TestSpec_RT08_IdleExpiry(t *testing.T) {
	e := usersAS(t, "refresh_token_idle 1s")
	c := e.publicClient(t)
	first := e.login(t, c, nil)
	next := e.mustRefresh(t, c, first.Refresh, nil) // within the idle time
	time.Sleep(1100 * time.Millisecond)
	if status, m := e.refresh(t, c, next.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh token idle past refresh_token_idle: %d %v, want 400 invalid_grant", status, m)
	}
}
