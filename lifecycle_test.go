package mcpauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

func TestRevocation(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	other := e.publicClient(t)

	revoke := func(client oauthtest.Client, token, hint string) int {
		form := url.Values{"token": {token}, "client_id": {client.ID}}
		if hint != "" {
			form.Set("token_type_hint", hint)
		}
		status, hdr, _ := e.PostForm(t, "/revoke", form, nil)
		if status == http.StatusOK && hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("revocation response without Cache-Control: no-store")
		}
		return status
	}

	t.Run("refresh token ends the grant and its access tokens", func(t *testing.T) {
		ts := e.login(t, c, nil)
		if e.mcpStatus(t, ts.Access) != http.StatusOK {
			t.Fatal("fresh access token refused")
		}
		if status := revoke(c, ts.Refresh, "access_token"); status != http.StatusOK { // a wrong hint is only a hint
			t.Fatalf("revoke: %d", status)
		}
		if status, _, m := e.Token(t, refreshForm(c, ts.Refresh), nil); status != 400 || m["error"] != "invalid_grant" {
			t.Errorf("refresh after revocation: %d %v", status, m)
		}
		if status := e.mcpStatus(t, ts.Access); status != http.StatusUnauthorized {
			t.Errorf("access token of a revoked grant: %d, want 401", status)
		}
	})
	t.Run("access token is refused at once", func(t *testing.T) {
		ts := e.login(t, c, nil)
		if status := revoke(c, ts.Access, ""); status != http.StatusOK {
			t.Fatalf("revoke: %d", status)
		}
		if status := e.mcpStatus(t, ts.Access); status != http.StatusUnauthorized {
			t.Errorf("revoked access token: %d, want 401", status)
		}
		// The grant lives on: the client refreshes to a working token.
		next := e.Exchange(t, refreshForm(c, ts.Refresh), nil)
		if e.mcpStatus(t, next.Access) != http.StatusOK {
			t.Error("refreshed access token refused")
		}
	})
	t.Run("another client's token is not revoked", func(t *testing.T) {
		ts := e.login(t, c, nil)
		if status := revoke(other, ts.Access, ""); status != http.StatusOK {
			t.Errorf("revoke of a foreign token: %d, want 200", status)
		}
		if status := revoke(other, ts.Refresh, ""); status != http.StatusOK {
			t.Errorf("revoke of a foreign token: %d, want 200", status)
		}
		if e.mcpStatus(t, ts.Access) != http.StatusOK {
			t.Error("another client revoked this client's access token")
		}
		e.Exchange(t, refreshForm(c, ts.Refresh), nil)
	})
	t.Run("bad input", func(t *testing.T) {
		if status := revoke(c, "no-such-token", ""); status != http.StatusOK {
			t.Errorf("unknown token: %d, want 200", status)
		}
		if status, _, m := e.PostForm(t, "/revoke", url.Values{"client_id": {c.ID}}, nil); status != 400 || m["error"] != "invalid_request" {
			t.Errorf("missing token: %d %v", status, m)
		}
		if status, _, m := e.PostForm(t, "/revoke", url.Values{"token": {"x"}, "client_id": {"unknown"}}, nil); status != 401 || m["error"] != "invalid_client" {
			t.Errorf("unknown client: %d %v", status, m)
		}
		if status, _, _ := oauthtest.Get(t, e.HTTP, siteAddr()+"/revoke", nil); status != http.StatusMethodNotAllowed {
			t.Errorf("GET /revoke: %d", status)
		}
	})
}

func TestIntrospection(t *testing.T) {
	e := usersAS(t, "introspection_client rs-1 rs-secret-0123456789abc")
	c := e.publicClient(t)
	conf := e.RegisterClient(t, map[string]any{
		"client_name": "confidential", "redirect_uris": []string{clientRedirect},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "client_secret_post",
	})
	ts := e.login(t, c, nil)
	rs := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("rs-1", "rs-secret-0123456789abc")}}

	status, hdr, m := e.PostForm(t, "/introspect", url.Values{"token": {ts.Access}}, rs)
	if status != 200 || m["active"] != true || hdr.Get("Cache-Control") != "no-store" {
		t.Fatalf("introspect access token: %d %v", status, m)
	}
	_, claims := oauthtest.DecodeJWT(t, ts.Access)
	for _, k := range []string{"sub", "client_id", "scope", "iss", "exp", "iat"} {
		if m[k] != claims[k] {
			t.Errorf("introspection %s = %v, token has %v", k, m[k], claims[k])
		}
	}
	if m["aud"] != canonicalResource() || m["username"] != "alice" || m["token_type"] != "Bearer" {
		t.Errorf("introspection %v", m)
	}
	if _, _, m := e.PostForm(t, "/introspect", url.Values{"token": {ts.Refresh}}, rs); m["active"] != true || m["token_type"] != "refresh_token" {
		t.Errorf("introspect refresh token: %v", m)
	}

	inactive := func(name, token string, header http.Header, form url.Values) {
		t.Helper()
		f := url.Values{"token": {token}}
		for k, v := range form {
			f[k] = v
		}
		status, _, m := e.PostForm(t, "/introspect", f, header)
		if status != 200 || len(m) != 1 || m["active"] != false {
			t.Errorf("%s: %d %v, want exactly {\"active\":false}", name, status, m)
		}
	}
	inactive("garbage", "garbage", rs, nil)
	inactive("tampered", ts.Access[:len(ts.Access)-3]+"AAA", rs, nil)
	inactive("another client's token", ts.Access, nil, url.Values{"client_id": {conf.ID}, "client_secret": {conf.Secret}})

	if status, _, _ := e.PostForm(t, "/introspect", url.Values{"token": {ts.Access}, "client_id": {c.ID}}, nil); status != 401 {
		t.Errorf("public client may not introspect: %d", status)
	}
	if status, hdr, _ := e.PostForm(t, "/introspect", url.Values{"token": {ts.Access}}, http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("rs-1", "wrong")}}); status != 401 || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("wrong resource-server secret: %d %v", status, hdr)
	}

	// A confidential client sees its own tokens.
	p := oauthtest.NewPKCE()
	code := loginCode(t, authParams(conf, p))
	own := e.Exchange(t, url.Values{"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {p.Verifier},
		"client_id": {conf.ID}, "client_secret": {conf.Secret}, "redirect_uri": {clientRedirect}}, nil)
	if _, _, m := e.PostForm(t, "/introspect", url.Values{"token": {own.Access}, "client_id": {conf.ID}, "client_secret": {conf.Secret}}, nil); m["active"] != true {
		t.Errorf("own token: %v", m)
	}

	// Revoked tokens are inactive.
	e.PostForm(t, "/revoke", url.Values{"token": {ts.Access}, "client_id": {c.ID}}, nil)
	inactive("revoked", ts.Access, rs, nil)
}

func TestUserinfoAndIDToken(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "u-9", Email: "carol@example.com", EmailVerified: true, Name: "Carol", PreferredUsername: "carol", Picture: "https://img.example.com/c.png"})
	e := startAS(t, oidcUpstream(idp))
	c := e.publicClient(t)
	p := oauthtest.NewPKCE()
	q := authParams(c, p)
	q.Set("scope", "mcp:tools openid profile email")
	q.Set("nonce", "n-0S6_WzA2Mj")
	status, _, m := e.Token(t, codeForm(c, loginCode(t, q, idp.URL), p), nil)
	if status != 200 {
		t.Fatalf("token: %d %v", status, m)
	}
	access, _ := m["access_token"].(string)
	idToken, _ := m["id_token"].(string)
	if idToken == "" {
		t.Fatalf("no id_token with the openid scope: %v", m)
	}

	// The ID token verifies with the published keys, is typed JWT and
	// meant for the client.
	_, _, jwks := oauthtest.Get(t, e.HTTP, siteAddr()+"/jwks", nil)
	set, _ := jwk.Parse(jwks)
	if _, err := jws.Verify([]byte(idToken), jws.WithKeySet(set)); err != nil {
		t.Errorf("id_token does not verify: %v", err)
	}
	header, claims := oauthtest.DecodeJWT(t, idToken)
	if header["typ"] != "JWT" || claims["aud"] != c.ID || claims["nonce"] != "n-0S6_WzA2Mj" || claims["iss"] != siteAddr() ||
		claims["sub"] != "oidc:u-9" || claims["email"] != "carol@example.com" || claims["auth_time"] == nil {
		t.Errorf("id_token header %v claims %v", header, claims)
	}
	if status := e.mcpStatus(t, idToken); status != http.StatusUnauthorized {
		t.Errorf("ID token accepted at the gate: %d", status)
	}

	for _, method := range []string{http.MethodGet, http.MethodPost} {
		status, _, raw := oauthtest.Do(t, e.HTTP, method, siteAddr()+"/userinfo", oauthtest.Bearer(access), nil)
		var info map[string]any
		if status != 200 || json.Unmarshal(raw, &info) != nil {
			t.Fatalf("%s /userinfo: %d %s", method, status, raw)
		}
		want := map[string]any{"sub": "oidc:u-9", "email": "carol@example.com", "email_verified": true, "name": "Carol",
			"preferred_username": "carol", "picture": "https://img.example.com/c.png"}
		for k, v := range want {
			if info[k] != v {
				t.Errorf("%s /userinfo %s = %v, want %v", method, k, info[k], v)
			}
		}
	}

	// With openid but without the email and profile scopes, only sub.
	p2 := oauthtest.NewPKCE()
	q2 := authParams(c, p2)
	q2.Set("scope", "mcp:tools openid")
	narrow := e.Exchange(t, codeForm(c, loginCode(t, q2, idp.URL), p2), nil)
	status, _, raw := oauthtest.Get(t, e.HTTP, siteAddr()+"/userinfo", oauthtest.Bearer(narrow.Access))
	var info map[string]any
	_ = json.Unmarshal(raw, &info)
	if status != 200 || len(info) != 1 || info["sub"] != "oidc:u-9" {
		t.Errorf("userinfo without email/profile scopes: %d %v", status, info)
	}

	// Without openid, the token is no OpenID Connect token (UI-03).
	p3 := oauthtest.NewPKCE()
	q3 := authParams(c, p3)
	q3.Set("scope", "mcp:tools email")
	noOpenID := e.Exchange(t, codeForm(c, loginCode(t, q3, idp.URL), p3), nil)
	status, hdr, _ := oauthtest.Get(t, e.HTTP, siteAddr()+"/userinfo", oauthtest.Bearer(noOpenID.Access))
	if status != http.StatusForbidden || !strings.Contains(hdr.Get("WWW-Authenticate"), `error="insufficient_scope"`) {
		t.Errorf("userinfo without openid: %d %v, want 403 insufficient_scope", status, hdr)
	}

	for name, h := range map[string]http.Header{
		"no token":      nil,
		"refresh token": oauthtest.Bearer(narrow.Refresh),
		"garbage":       oauthtest.Bearer("garbage"),
	} {
		status, hdr, _ := oauthtest.Get(t, e.HTTP, siteAddr()+"/userinfo", h)
		if status != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("userinfo with %s: %d %v", name, status, hdr)
		}
	}
}

// TestConcurrentTokenTraffic runs refreshes, MCP requests and a revocation
// at once: every refresh yields a working token until the revocation, and
// afterwards no token of the grant is accepted.
func TestConcurrentTokenTraffic(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	ts := e.login(t, c, nil)

	var mu sync.Mutex
	current := ts
	issued := []string{ts.Access}
	var revoked atomic.Bool
	var wg sync.WaitGroup
	stop := make(chan struct{})

	// Requests with the latest access token while it rotates.
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				mu.Lock()
				at := current.Access
				mu.Unlock()
				wasRevoked := revoked.Load()
				status := e.mcpStatus(t, at)
				if status != http.StatusOK && !wasRevoked && !revoked.Load() {
					t.Errorf("live access token refused: %d", status)
				}
			}
		}()
	}
	// Refreshes, two at a time with the same token (grace window).
	for i := 0; i < 10; i++ {
		mu.Lock()
		rt := current.Refresh
		mu.Unlock()
		var pair [2]oauthtest.TokenSet
		var rwg sync.WaitGroup
		for j := range pair {
			rwg.Add(1)
			go func() {
				defer rwg.Done()
				pair[j] = e.Exchange(t, refreshForm(c, rt), nil)
			}()
		}
		rwg.Wait()
		if pair[0].Refresh != pair[1].Refresh || pair[0].Access != pair[1].Access {
			t.Fatalf("concurrent refreshes of one token forked the grant")
		}
		mu.Lock()
		current = pair[0]
		issued = append(issued, pair[0].Access)
		mu.Unlock()
	}
	mu.Lock()
	rt := current.Refresh
	mu.Unlock()
	revoked.Store(true)
	if status, _, _ := e.PostForm(t, "/revoke", url.Values{"token": {rt}, "client_id": {c.ID}}, nil); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	close(stop)
	wg.Wait()
	time.Sleep(10 * time.Millisecond)
	for i, at := range issued {
		if status := e.mcpStatus(t, at); status != http.StatusUnauthorized {
			t.Errorf("access token %d of the revoked grant: %d, want 401", i, status)
		}
	}
	if status, _, _ := e.Token(t, refreshForm(c, rt), nil); status != 400 {
		t.Errorf("refresh after revocation: %d", status)
	}
}

// Guessing a client secret is throttled (OAuth 2.1 section 2.4.1), and the
// client with the right secret is not locked out for long.
func TestSecretGuessingIsThrottled(t *testing.T) {
	e := usersAS(t, "")
	conf := e.RegisterClient(t, map[string]any{
		"client_name": "confidential", "redirect_uris": []string{clientRedirect}, "token_endpoint_auth_method": "client_secret_basic",
	})
	form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {oauthtest.NewPKCE().Verifier}}
	statuses := map[int]int{}
	for i := 0; i < 15; i++ {
		status, _, _ := e.Token(t, form, http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(conf.ID, "wrong")}})
		statuses[status]++
	}
	if statuses[http.StatusUnauthorized] != 10 || statuses[http.StatusTooManyRequests] != 5 {
		t.Errorf("15 wrong secrets: %v, want 10×401 then 429", statuses)
	}
	if status, _, m := e.Token(t, form, http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(conf.ID, conf.Secret)}}); status != http.StatusTooManyRequests {
		t.Errorf("right secret while throttled: %d %v", status, m)
	}
	time.Sleep(6100 * time.Millisecond) // one attempt back every 6 s
	if status, _, m := e.Token(t, form, http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(conf.ID, conf.Secret)}}); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("right secret after the window: %d %v, want the client authenticated (invalid_grant for the bogus code)", status, m)
	}
}

// A client that asks only for scopes of other servers (older Claude Code
// asked for offline_access alone) gets the resource's default scopes, and
// discovery locations this server does not use answer 404, not 401.
func TestScopeFallbackAndUnknownDiscoveryPaths(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	ts := e.login(t, c, url.Values{"scope": {"offline_access"}})
	if ts.Scope != "mcp:tools mcp:admin" {
		t.Errorf("scope=offline_access granted %q, want the resource's defaults", ts.Scope)
	}
	ts = e.login(t, c, url.Values{"scope": {"openid offline_access"}})
	if ts.Scope != "mcp:tools mcp:admin openid" {
		t.Errorf("scope=openid offline_access granted %q", ts.Scope)
	}
	for _, path := range []string{"/.well-known/oauth-authorization-server/mcp", "/.well-known/openid-configuration/mcp", "/.well-known/oauth-protected-resource/other"} {
		status, hdr, body := oauthtest.Get(t, e.HTTP, siteAddr()+path, nil)
		if status != http.StatusNotFound || hdr.Get("WWW-Authenticate") != "" || !strings.Contains(string(body), `"error"`) {
			t.Errorf("%s: %d %s", path, status, body)
		}
	}
}
