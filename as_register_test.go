package mcpauth

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// Tests of /register (Dynamic Client Registration) through a real Caddy:
// the bodies real MCP clients send, what is refused, and the registration
// controls.

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
			status, hdr, m := e.Register(t, tc.body, nil)
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
			// Omitted means web (MCP SEP-837), loopback redirects or not.
			if want, _ := sent["application_type"].(string); m["application_type"] != want && (want != "" || m["application_type"] != "web") {
				t.Errorf("application_type %v, want %q echoed (web if omitted)", m["application_type"], want)
			}
			if gt := fmt.Sprint(m["grant_types"]); !strings.Contains(gt, "authorization_code") || strings.Contains(gt, "device_code") {
				t.Errorf("grant_types %s", gt)
			}
			if hasSecret {
				rec, err := st.Get(context.Background(), state.KindClient.Key(id))
				if err != nil || bytes.Contains(rec, []byte(secret)) {
					t.Errorf("stored client record holds the secret in clear (or is missing: %v)", err)
				}
			}
			redirect := tc.redirect
			if redirect == "" {
				redirect = fmt.Sprint(m["redirect_uris"].([]any)[0])
			}
			q := authParams(oauthtest.Client{ID: id, Redirects: []string{redirect}}, oauthtest.NewPKCE())
			if status, _, body := oauthtest.Get(t, e.HTTP, authorizeURL(q), nil); status != http.StatusOK || !strings.Contains(string(body), `name="decision"`) {
				t.Errorf("authorizing with %s: %d %.300s", redirect, status, body)
			}
		})
	}
}

func TestRegisterRejects(t *testing.T) {
	e := usersAS(t, "registration {\n\t\t\trate_limit 100\n\t\t}")
	st := testStore(t, e.storagePath)
	before := len(storeKeys(t, st, state.KindClient))
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
		{"web app with a loopback redirect", "application/json", `{"application_type":"web","token_endpoint_auth_method":"none","redirect_uris":["http://127.0.0.1:9/cb"]}`, "invalid_redirect_uri"},
		{"unknown application_type", "application/json", `{"application_type":"browser","token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb"]}`, "invalid_client_metadata"},
		{"redirect_uris not an array", "application/json", `{"token_endpoint_auth_method":"none","redirect_uris":"https://a.test/cb"}`, "invalid_redirect_uri"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, raw := oauthtest.Do(t, e.HTTP, http.MethodPost, siteAddr()+"/register", http.Header{"Content-Type": {tc.contentType}}, []byte(tc.body))
			var m map[string]any
			_ = json.Unmarshal(raw, &m)
			if status != http.StatusBadRequest || m["error"] != tc.error || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Errorf("%d %s, want 400 %s", status, raw, tc.error)
			}
		})
	}
	t.Run("GET is 405", func(t *testing.T) {
		if status, hdr, _ := oauthtest.Get(t, e.HTTP, siteAddr()+"/register", nil); status != http.StatusMethodNotAllowed || !strings.Contains(hdr.Get("Allow"), "POST") {
			t.Errorf("GET /register: %d %v", status, hdr)
		}
	})
	if after := len(storeKeys(t, st, state.KindClient)); after != before {
		t.Errorf("refused registrations stored %d clients", after-before)
	}
}

func TestRegistrationControls(t *testing.T) {
	e := usersAS(t, "registration {\n\t\t\tinitial_access_token s3cret-T\n\t\t\trate_limit 3\n\t\t\tunused_client_lifetime 2s\n\t\t}")
	body := `{"client_name":"x","token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"redirect_uris":["` + clientRedirect + `"]}`
	t.Run("initial access token required", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			header http.Header
		}{
			{"without token", nil},
			{"wrong token", http.Header{"Authorization": {"Bearer s3cret-X"}}},
			{"token as Basic", http.Header{"Authorization": {"Basic czNjcmV0LVQ="}}},
		} {
			status, hdr, m := e.Register(t, body, tc.header)
			if status != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") || m["client_id"] != nil {
				t.Errorf("%s: %d %v %v", tc.name, status, hdr, m)
			}
		}
	})
	auth := http.Header{"Authorization": {"Bearer s3cret-T"}}
	var registered []oauthtest.Client
	if !t.Run("rate limit per address", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			status, _, m := e.Register(t, body, auth)
			if status != http.StatusCreated {
				t.Fatalf("registration %d with the token: %d %v", i+1, status, m)
			}
			registered = append(registered, oauthtest.Client{ID: fmt.Sprint(m["client_id"]), Redirects: []string{clientRedirect}})
		}
		if status, hdr, m := e.Register(t, body, auth); status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
			t.Errorf("4th registration from one address: %d %v %v, want 429", status, hdr, m)
		}
	}) || len(registered) != 3 {
		return
	}
	t.Run("unused clients expire, used ones stay", func(t *testing.T) {
		used := registered[0]
		ts := e.login(t, used, nil)
		time.Sleep(3 * time.Second)
		for i, c := range registered {
			status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(c, oauthtest.NewPKCE())), nil)
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
		next := e.Exchange(t, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {ts.Refresh}, "client_id": {used.ID}}, nil)
		assertNoSecretsLogged(t, e.logDir, "s3cret-T", ts.Access, ts.Refresh, next.Access, next.Refresh)
	})
}
