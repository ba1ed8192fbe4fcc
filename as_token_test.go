package mcpauth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// Tests of /token through a real Caddy: client authentication, PKCE, code
// binding and replay, and the token response.

func TestTokenEndpoint(t *testing.T) {
	e := usersAS(t, "")
	st := testStore(t, e.storagePath)
	pub := e.publicClient(t)
	codeOnly := e.RegisterClient(t, map[string]any{
		"client_name": "no refresh", "redirect_uris": []string{clientRedirect},
		"grant_types": []string{"authorization_code"}, "token_endpoint_auth_method": "none",
	})
	// Like ChatGPT: no token_endpoint_auth_method, so client_secret_basic.
	basic := e.RegisterClient(t, map[string]any{"client_name": "ChatGPT", "redirect_uris": []string{"https://chatgpt.com/connector_platform_oauth_redirect"}})
	// Like Claude: client_secret_post.
	post := e.RegisterClient(t, map[string]any{
		"client_name": "Claude", "redirect_uris": []string{"https://claude.ai/api/mcp/auth_callback"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "client_secret_post",
	})
	if basic.Secret == "" || post.Secret == "" {
		t.Fatal("confidential clients got no secret")
	}
	// A client whose id and secret need form-urlencoding inside Basic.
	special := oauthtest.Client{ID: "tenant:special", Secret: "p+q%41:r/s é", Redirects: []string{clientRedirect}}
	raw, _ := json.Marshal(clients.Client{
		ClientID: special.ID, SecretHash: clients.HashSecret(special.Secret), RedirectURIs: special.Redirects,
		GrantTypes: []string{"authorization_code"}, ResponseTypes: []string{"code"},
		TokenEndpointAuthMethod: clients.AuthMethodClientSecretBasic, IssuedAt: time.Now().Unix(),
	})
	if err := st.Put(context.Background(), state.KindClient.Key(special.ID), raw, 0); err != nil {
		t.Fatal(err)
	}
	var secrets, codes []string // checked against the logs at the end
	secrets = append(secrets, basic.Secret, post.Secret, special.Secret)
	basicCredentials := func(id, secret string) http.Header {
		credentials := oauthtest.BasicAuth(id, secret)
		secrets = append(secrets, credentials)
		return http.Header{"Authorization": {"Basic " + credentials}}
	}
	newCode := func(t *testing.T, c oauthtest.Client) (string, oauthtest.PKCE) {
		t.Helper()
		p := oauthtest.NewPKCE()
		code := loginCode(t, authParams(c, p))
		codes = append(codes, code)
		return code, p
	}
	keep := func(ts oauthtest.TokenSet) oauthtest.TokenSet {
		secrets = append(secrets, ts.Access)
		if ts.Refresh != "" {
			secrets = append(secrets, ts.Refresh)
		}
		return ts
	}
	wantError := func(t *testing.T, what string, form url.Values, header http.Header, status int, code string) {
		t.Helper()
		got, hdr, m := e.Token(t, form, header)
		if got != status || m["error"] != code {
			t.Errorf("%s: %d %v, want %d %s", what, got, m, status, code)
		}
		if hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: error without Cache-Control: no-store", what)
		}
	}

	t.Run("GET is 405", func(t *testing.T) {
		status, hdr, _ := oauthtest.Get(t, e.HTTP, siteAddr()+"/token?grant_type=authorization_code", nil)
		if status != http.StatusMethodNotAllowed || !strings.Contains(hdr.Get("Allow"), "POST") {
			t.Errorf("GET /token: %d %v", status, hdr)
		}
	})

	t.Run("JSON body is refused", func(t *testing.T) {
		status, _, body := oauthtest.Do(t, e.HTTP, http.MethodPost, siteAddr()+"/token", http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"grant_type":"authorization_code","code":"x","client_id":"`+pub.ID+`"}`))
		if status != http.StatusBadRequest || !strings.Contains(string(body), `"invalid_request"`) {
			t.Errorf("%d %s", status, body)
		}
	})

	t.Run("malformed requests and unsupported grants are refused", func(t *testing.T) {
		wantError(t, "duplicated code", url.Values{"grant_type": {"authorization_code"}, "code": {"a", "a"}, "client_id": {pub.ID}}, nil, 400, "invalid_request")
		wantError(t, "duplicated grant_type", url.Values{"grant_type": {"authorization_code", "refresh_token"}, "client_id": {pub.ID}}, nil, 400, "invalid_request")
		wantError(t, "password grant", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"correct horse"}, "client_id": {pub.ID}}, nil, 400, "unsupported_grant_type")
		wantError(t, "client_credentials grant", url.Values{"grant_type": {"client_credentials"}}, basicCredentials(basic.ID, basic.Secret), 400, "unsupported_grant_type")
		wantError(t, "no grant_type", url.Values{"code": {"a"}, "client_id": {pub.ID}}, nil, 400, "invalid_request")
		wantError(t, "unknown client", url.Values{"grant_type": {"authorization_code"}, "code": {"a"}, "client_id": {"nobody"}}, nil, 401, "invalid_client")
		wantError(t, "refresh grant not registered", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}, "client_id": {codeOnly.ID}}, nil, 400, "unauthorized_client")
	})

	t.Run("client_secret_basic is form-urlencoded", func(t *testing.T) {
		code, p := newCode(t, special)
		form := codeForm(special, code, p)
		form.Del("client_id")
		ts := keep(e.Exchange(t, form, basicCredentials(special.ID, special.Secret)))
		if _, claims := oauthtest.DecodeJWT(t, ts.Access); claims["client_id"] != special.ID {
			t.Errorf("client_id claim %v", claims["client_id"])
		}
	})

	t.Run("client_secret_basic refuses wrong credentials", func(t *testing.T) {
		code, p := newCode(t, basic)
		form := codeForm(basic, code, p)
		form.Del("client_id")
		for _, tc := range []struct {
			name   string
			header http.Header
		}{
			{"wrong secret", basicCredentials(basic.ID, basic.Secret+"x")},
			{"secret not urlencoded-decoded twice", basicCredentials(special.ID, url.QueryEscape(special.Secret))},
			{"raw secret of the special client", http.Header{"Authorization": {"Basic " + base64.StdEncoding.EncodeToString([]byte(special.ID+":"+special.Secret))}}},
			{"unknown client", basicCredentials("nobody", "secret")},
			{"malformed", http.Header{"Authorization": {"Basic !!!"}}},
		} {
			status, hdr, m := e.Token(t, form, tc.header)
			if status != http.StatusUnauthorized || m["error"] != "invalid_client" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
				t.Errorf("%s: %d %v WWW-Authenticate=%q, want 401 invalid_client with a Basic challenge", tc.name, status, m, hdr.Get("WWW-Authenticate"))
			}
		}
		both := oauthtest.CloneValues(form)
		both.Set("client_secret", basic.Secret)
		wantError(t, "Basic and client_secret in the body", both, basicCredentials(basic.ID, basic.Secret), 400, "invalid_request")
		// None of that used the code up.
		keep(e.Exchange(t, form, basicCredentials(basic.ID, basic.Secret)))
	})

	t.Run("client_secret_post needs the secret", func(t *testing.T) {
		code, p := newCode(t, post)
		form := codeForm(post, code, p)
		noSecret := oauthtest.CloneValues(form)
		wantError(t, "confidential client without a secret", noSecret, nil, 401, "invalid_client")
		wrong := oauthtest.CloneValues(form)
		wrong.Set("client_secret", post.Secret[1:])
		wantError(t, "wrong client_secret", wrong, nil, 401, "invalid_client")
		form.Set("client_secret", post.Secret)
		ts := keep(e.Exchange(t, form, nil))
		if ts.Refresh == "" {
			t.Error("client registered refresh_token but got none")
		}
	})

	t.Run("PKCE verifier is checked", func(t *testing.T) {
		code, p := newCode(t, pub)
		form := codeForm(pub, code, p)
		missing := oauthtest.CloneValues(form)
		missing.Del("code_verifier")
		wantError(t, "missing verifier", missing, nil, 400, "invalid_request")
		short := oauthtest.CloneValues(form)
		short.Set("code_verifier", p.Verifier[:42])
		wantError(t, "42-char verifier", short, nil, 400, "invalid_request")
		bad := oauthtest.CloneValues(form)
		bad.Set("code_verifier", p.Verifier[:42]+"+")
		wantError(t, "verifier with +", bad, nil, 400, "invalid_request")
		keep(e.Exchange(t, form, nil)) // malformed requests did not use the code up

		code, p = newCode(t, pub)
		form = codeForm(pub, code, p)
		form.Set("code_verifier", oauthtest.NewPKCE().Verifier)
		wantError(t, "wrong verifier", form, nil, 400, "invalid_grant")
	})

	t.Run("code is bound to client, redirect URI and resource", func(t *testing.T) {
		code, p := newCode(t, pub)
		form := codeForm(pub, code, p)
		other := oauthtest.CloneValues(form)
		other.Set("client_id", codeOnly.ID)
		wantError(t, "another client", other, nil, 400, "invalid_grant")
		redirect := oauthtest.CloneValues(form)
		redirect.Set("redirect_uri", "http://127.0.0.1:33418/other")
		wantError(t, "another redirect_uri", redirect, nil, 400, "invalid_grant")
		for _, res := range []string{"https://evil.test/mcp", siteAddr() + "/other", canonicalResource() + "#f"} {
			r := oauthtest.CloneValues(form)
			r.Set("resource", res)
			wantError(t, "resource "+res, r, nil, 400, "invalid_target")
		}
		// The refused requests did not use the code up.
		form.Set("resource", canonicalResource()+"/")
		keep(e.Exchange(t, form, nil))
	})

	t.Run("replay revokes the tokens the code gave", func(t *testing.T) {
		code, p := newCode(t, pub)
		form := codeForm(pub, code, p)
		first := keep(e.Exchange(t, form, nil))
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
		first := keep(e.Exchange(t, form, nil))
		replay := oauthtest.CloneValues(form)
		replay.Set("code_verifier", oauthtest.NewPKCE().Verifier)
		wantError(t, "replay with a wrong verifier", replay, nil, 400, "invalid_grant")
		other := oauthtest.CloneValues(form)
		other.Set("client_id", codeOnly.ID)
		wantError(t, "replay by another client", other, nil, 400, "invalid_grant")
		if status := e.mcpStatus(t, first.Access); status != http.StatusOK {
			t.Errorf("access token after a bogus replay: %d", status)
		}
		keep(e.Exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {first.Refresh}, "client_id": {pub.ID}}, nil))
	})

	t.Run("parallel redemptions: exactly one succeeds", func(t *testing.T) {
		code, p := newCode(t, pub)
		form := codeForm(pub, code, p)
		var wg sync.WaitGroup
		results := make([]int, 4)
		bodies := make([]string, 4)
		for i := range results {
			wg.Go(func() {
				req, _ := http.NewRequest(http.MethodPost, siteAddr()+"/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				resp, err := e.HTTP.Do(req)
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

	t.Run("expired code is refused and stored only as a hash", func(t *testing.T) {
		code, p := newCode(t, pub)
		key := state.KindCode.Key(code)
		raw, err := st.Get(context.Background(), key)
		if err != nil {
			t.Fatalf("the code is not stored under its hash: %v", err)
		}
		if bytes.Contains(raw, []byte(p.Verifier)) || bytes.Contains(raw, []byte(code)) {
			t.Error("the stored code record holds the code or the verifier")
		}
		if err := st.Put(context.Background(), key, raw, 10*time.Millisecond); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		wantError(t, "expired code", codeForm(pub, code, p), nil, 400, "invalid_grant")
	})

	t.Run("response and access token claims", func(t *testing.T) {
		code, p := newCode(t, pub)
		ts := keep(e.Exchange(t, codeForm(pub, code, p), nil))
		for h, want := range map[string]string{"Cache-Control": "no-store", "Content-Type": "application/json"} {
			if got := ts.Header.Get(h); !strings.HasPrefix(got, want) {
				t.Errorf("%s = %q, want %q", h, got, want)
			}
		}
		if ts.TokenType != "Bearer" || ts.Refresh == "" || ts.Scope != "mcp:tools mcp:admin" {
			t.Errorf("token response %+v", ts)
		}
		hdr, claims := oauthtest.DecodeJWT(t, ts.Access)
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
		ts2 := keep(e.Exchange(t, codeForm(codeOnly, code, p), nil))
		if ts2.Refresh != "" {
			t.Error("a client without the refresh_token grant got a refresh token")
		}
		if _, c2 := oauthtest.DecodeJWT(t, ts2.Access); c2["jti"] == claims["jti"] {
			t.Error("two tokens share a jti")
		}
	})

	assertNoSecretsLogged(t, e.logDir, secrets...)
	reportLoggedCodes(t, e.logDir, codes...)
}
