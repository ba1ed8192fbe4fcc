package mcpauth

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// The tests in this file run real clients in Node against the in-process
// Caddy: Debian's Chromium driven by playwright-core plays the user, and the
// TypeScript MCP SDK plays the MCP client. scripts/setup-e2e.sh installs
// what they need; without it they are skipped, except in CI.

// e2eChromium is the browser the Node scripts drive.
const e2eChromium = "/usr/bin/chromium"

// e2eNode returns the node binary, or skips the test (fails it in CI) when
// something the Node end-to-end tests need is missing, or one of the npm
// modules the test needs besides.
func e2eNode(t *testing.T, modules ...string) string {
	t.Helper()
	var missing []string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = append(missing, "node")
	}
	for _, m := range append([]string{"playwright-core", "@modelcontextprotocol/sdk"}, modules...) {
		if _, err := os.Stat(filepath.Join("e2e", "node_modules", m, "package.json")); err != nil {
			missing = append(missing, "e2e/node_modules/"+m)
		}
	}
	if _, err := os.Stat(e2eChromium); err != nil {
		missing = append(missing, e2eChromium)
	}
	if _, err := exec.LookPath("certutil"); err != nil {
		missing = append(missing, "certutil (libnss3-tools)")
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("missing %s: run scripts/setup-e2e.sh", strings.Join(missing, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI runs it before the tests, so this is a failure there)")
		}
		t.Skip(msg)
	}
	return node
}

// e2eCACert is Caddy's local root certificate, the one CA the clients trust.
func e2eCACert() string {
	return filepath.Join(dataHome, "caddy", "pki", "authorities", "local", "root.crt")
}

// e2eScreenshot is where a script saves the consent page: in
// $E2E_SCREENSHOT_DIR when set, for a person to look at, or else in a
// temporary directory.
func e2eScreenshot(t *testing.T, name string) string {
	dir := os.Getenv("E2E_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// startNode runs a script of e2e/ with the given environment added and
// returns its output and exit error.
func startNode(t *testing.T, node, script string, env map[string]string) (stdout, stderr string, err error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join("e2e", script))
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	start := time.Now()
	err = cmd.Run()
	t.Logf("node %s: %v", script, time.Since(start).Round(time.Millisecond))
	return out.String(), errOut.String(), err
}

// runNode runs a script of e2e/ and decodes the JSON line it prints.
func runNode(t *testing.T, node, script string, env map[string]string, out any) {
	t.Helper()
	stdout, stderr, err := startNode(t, node, script, env)
	if err != nil {
		t.Fatalf("node %s: %v\nstderr:\n%s\nstdout:\n%s", script, err, stderr, stdout)
	}
	if stderr != "" {
		t.Logf("node %s stderr:\n%s", script, stderr)
	}
	t.Logf("node %s printed: %s", script, stdout)
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), out); err != nil {
		t.Fatalf("node %s printed %q: %v", script, stdout, err)
	}
}

// e2eRandom returns n random bytes, base64url-encoded.
func e2eRandom(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// e2eOtherCA returns a self-signed CA certificate in PEM that issued
// nothing the site serves.
func e2eOtherCA(t *testing.T) []byte {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "Not Caddy's CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// browserResult is what e2e/browser.mjs prints.
type browserResult struct {
	Decision string            `json:"decision"`
	URL      string            `json:"url"`
	Query    map[string]string `json:"query"`
	Headers  struct {
		Consent map[string]string `json:"consent"`
		Login   map[string]string `json:"login"`
	} `json:"headers"`
	Consent struct {
		Text   string   `json:"text"`
		Scopes []string `json:"scopes"`
	} `json:"consent"`
	Pages   []string `json:"pages"`
	Console []string `json:"console"` // errors and warnings, such as CSP violations
	Failed  []string `json:"failedRequests"`
	Cookies []struct {
		Name     string `json:"name"`
		Path     string `json:"path"`
		Secure   bool   `json:"secure"`
		HTTPOnly bool   `json:"httpOnly"`
		SameSite string `json:"sameSite"`
	} `json:"cookies"`
	Screenshot string `json:"screenshot"`
}

// checkBrowserRun checks what every browser run must show: no console
// errors (a CSP violation would be one), no failed requests, and only the
// authorization server's browser-binding cookie, set as a __Host- cookie.
func checkBrowserRun(t *testing.T, res browserResult) {
	t.Helper()
	if len(res.Console) > 0 || len(res.Failed) > 0 {
		t.Errorf("console %q, failed requests %q", res.Console, res.Failed)
	}
	if len(res.Cookies) != 1 {
		t.Fatalf("cookies %+v, want the one browser-binding cookie", res.Cookies)
	}
	if c := res.Cookies[0]; !strings.HasPrefix(c.Name, "__Host-") || c.Path != "/" || !c.Secure || !c.HTTPOnly || c.SameSite != "Lax" {
		t.Errorf("cookie %+v", c)
	}
}

func checkSecurityHeaders(t *testing.T, page string, h map[string]string) {
	t.Helper()
	if h == nil {
		t.Errorf("%s page: no headers reported", page)
		return
	}
	if h["x-frame-options"] != "DENY" {
		t.Errorf("%s page X-Frame-Options = %q", page, h["x-frame-options"])
	}
	if !strings.Contains(h["content-security-policy"], "frame-ancestors 'none'") {
		t.Errorf("%s page Content-Security-Policy = %q", page, h["content-security-policy"])
	}
	if h["cache-control"] != "no-store" {
		t.Errorf("%s page Cache-Control = %q", page, h["cache-control"])
	}
}

// TestBrowserConsentAndLogin registers a client as MCP Inspector does and
// has a real browser approve and log in, then deny; the code it brings back
// is exchanged and the access token used at the gate.
func TestBrowserConsentAndLogin(t *testing.T) {
	node := e2eNode(t)
	storagePath, logDir := t.TempDir(), t.TempDir()
	startCaddy(t, asSite(t, storagePath, logDir, usersUpstream()))
	c := mustTLSClient(t)
	resource := siteAddr() + "/mcp"
	redirectURI := fmt.Sprintf("http://127.0.0.1:%d/callback", freeport.One())

	// Dynamic client registration with the body MCP Inspector sends.
	reg, _ := json.Marshal(map[string]any{
		"redirect_uris":              []string{redirectURI},
		"token_endpoint_auth_method": "none",
		"grant_types":                []string{"authorization_code", "refresh_token"},
		"response_types":             []string{"code"},
		"client_name":                "MCP Inspector",
		"client_uri":                 "https://github.com/modelcontextprotocol/inspector",
		"scope":                      "mcp:tools mcp:admin",
	})
	status, _, body := oauthtest.Do(t, c, http.MethodPost, siteAddr()+"/register", http.Header{"Content-Type": {"application/json"}}, reg)
	if status != http.StatusCreated {
		t.Fatalf("register: %d %s", status, body)
	}
	var client struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(body, &client); err != nil || client.ClientID == "" {
		t.Fatalf("register: %s", body)
	}

	authorize := func(decision string) (browserResult, string, string) {
		verifier, state := e2eRandom(32), e2eRandom(16)
		q := url.Values{
			"response_type":         {"code"},
			"client_id":             {client.ClientID},
			"redirect_uri":          {redirectURI},
			"code_challenge":        {oauthtest.S256(verifier)},
			"code_challenge_method": {"S256"},
			"state":                 {state},
			"resource":              {resource},
			"scope":                 {"mcp:tools mcp:admin"},
		}
		var res browserResult
		runNode(t, node, "browser.mjs", map[string]string{
			"E2E_AUTH_URL":    siteAddr() + "/authorize?" + q.Encode(),
			"E2E_CA_CERT":     e2eCACert(),
			"E2E_USERNAME":    "alice",
			"E2E_PASSWORD":    "correct horse",
			"E2E_DECISION":    decision,
			"E2E_CLIENT_NAME": "MCP Inspector",
			"E2E_SCREENSHOT":  e2eScreenshot(t, "consent-"+decision+".png"),
		}, &res)
		return res, verifier, state
	}

	t.Run("approve", func(t *testing.T) {
		res, verifier, state := authorize("approve")
		checkBrowserRun(t, res)
		checkSecurityHeaders(t, "consent", res.Headers.Consent)
		checkSecurityHeaders(t, "login", res.Headers.Login)
		if !strings.HasPrefix(res.URL, redirectURI+"?") {
			t.Errorf("browser ended at %q, want the redirect URI %s", res.URL, redirectURI)
		}
		q := res.Query
		if q["code"] == "" || q["error"] != "" {
			t.Fatalf("authorization response %v", q)
		}
		if q["state"] != state {
			t.Errorf("state = %q, want %q", q["state"], state)
		}
		if q["iss"] != siteAddr() {
			t.Errorf("iss = %q, want %q", q["iss"], siteAddr())
		}
		if !slices.ContainsFunc(res.Pages, func(p string) bool { return strings.HasSuffix(p, "/authorize/login") }) {
			t.Errorf("the built-in login page was not shown: %v", res.Pages)
		}
		if fi, err := os.Stat(res.Screenshot); err != nil || fi.Size() == 0 {
			t.Errorf("no consent screenshot at %q: %v", res.Screenshot, err)
		}

		form := url.Values{
			"grant_type":    {"authorization_code"},
			"code":          {q["code"]},
			"redirect_uri":  {redirectURI},
			"client_id":     {client.ClientID},
			"code_verifier": {verifier},
			"resource":      {resource},
		}
		status, _, body := oauthtest.Do(t, c, http.MethodPost, siteAddr()+"/token",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte(form.Encode()))
		if status != http.StatusOK {
			t.Fatalf("token: %d %s", status, body)
		}
		var tok struct {
			AccessToken  string `json:"access_token"`
			TokenType    string `json:"token_type"`
			RefreshToken string `json:"refresh_token"`
			Scope        string `json:"scope"`
		}
		if err := json.Unmarshal(body, &tok); err != nil || tok.AccessToken == "" || !strings.EqualFold(tok.TokenType, "Bearer") || tok.RefreshToken == "" {
			t.Fatalf("token response %s", body)
		}

		// The access token opens the gate: an MCP initialize answered by the demo server.
		h := oauthtest.MCPHeader(tok.AccessToken)
		status, _, body = oauthtest.Do(t, c, http.MethodPost, resource, h, []byte(oauthtest.MCPInitialize))
		if status != http.StatusOK || !bytes.Contains(body, []byte(`"serverInfo"`)) {
			t.Errorf("initialize with the access token: %d %s", status, body)
		}
		h.Set("Authorization", "Bearer "+tok.RefreshToken)
		if status, _, _ := oauthtest.Do(t, c, http.MethodPost, resource, h, []byte(oauthtest.MCPInitialize)); status != http.StatusUnauthorized {
			t.Errorf("initialize with the refresh token as bearer: %d, want 401", status)
		}
		// The code is single use.
		status, _, body = oauthtest.Do(t, c, http.MethodPost, siteAddr()+"/token",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte(form.Encode()))
		if status != http.StatusBadRequest || !bytes.Contains(body, []byte("invalid_grant")) {
			t.Errorf("second exchange of the code: %d %s", status, body)
		}
	})

	// Chromium trusts Caddy's CA because the script adds it to Chromium's
	// NSS database, not because certificate errors are ignored: with
	// another CA the page does not load.
	t.Run("other CA", func(t *testing.T) {
		other := filepath.Join(t.TempDir(), "other-ca.pem")
		if err := os.WriteFile(other, e2eOtherCA(t), 0o644); err != nil {
			t.Fatal(err)
		}
		stdout, stderr, err := startNode(t, node, "browser.mjs", map[string]string{
			"E2E_AUTH_URL": siteAddr() + "/authorize?" + url.Values{"client_id": {client.ClientID}, "redirect_uri": {redirectURI}}.Encode(),
			"E2E_CA_CERT":  other,
			"E2E_DECISION": "deny",
		})
		if err == nil || !strings.Contains(stderr, "ERR_CERT_AUTHORITY_INVALID") {
			t.Errorf("browser with another CA: %v\nstderr:\n%s\nstdout:\n%s", err, stderr, stdout)
		}
	})

	t.Run("deny", func(t *testing.T) {
		res, _, state := authorize("deny")
		checkBrowserRun(t, res)
		checkSecurityHeaders(t, "consent", res.Headers.Consent)
		q := res.Query
		if q["error"] != "access_denied" || q["code"] != "" {
			t.Errorf("authorization response %v, want error=access_denied and no code", q)
		}
		if q["state"] != state {
			t.Errorf("state = %q, want %q", q["state"], state)
		}
		if q["iss"] != siteAddr() {
			t.Errorf("iss = %q, want %q", q["iss"], siteAddr())
		}
		for _, p := range res.Pages {
			if strings.HasSuffix(p, "/authorize/login") {
				t.Errorf("the login page was shown after Deny: %v", res.Pages)
			}
		}
	})
}

// tsClientResult is what e2e/ts-client.mjs prints.
type tsClientResult struct {
	Tools  []string `json:"tools"`
	Whoami struct {
		User   string `json:"user"`
		Email  string `json:"email"`
		Client string `json:"client"`
		Scopes string `json:"scopes"`
		Auth   bool   `json:"authorization_header_present"`
	} `json:"whoami"`
	Add                   float64 `json:"add"`
	Add2                  float64 `json:"add2"`
	ClientID              string  `json:"clientId"`
	AuthorizationResponse struct {
		Iss string `json:"iss"`
	} `json:"authorizationResponse"`
	Refresh struct {
		Refreshed bool `json:"refreshed"`
		SDKOn401  struct {
			Whoami struct {
				User string `json:"user"`
			} `json:"whoami"`
		} `json:"sdkOn401"`
		AuthFunction struct {
			Whoami struct {
				User string `json:"user"`
			} `json:"whoami"`
		} `json:"authFunction"`
		BrowserRuns int `json:"browserRuns"`
	} `json:"refresh"`
}

// TestTypeScriptSDKClient connects the TypeScript MCP SDK's client, which
// discovers the authorization server, registers, sends Chromium through
// consent and login, exchanges the code, calls tools and refreshes.
func TestTypeScriptSDKClient(t *testing.T) {
	node := e2eNode(t)
	storagePath, logDir := t.TempDir(), t.TempDir()
	startCaddy(t, asSite(t, storagePath, logDir, usersUpstream()))

	var res tsClientResult
	runNode(t, node, "ts-client.mjs", map[string]string{
		"E2E_SERVER_URL":      siteAddr() + "/mcp",
		"E2E_CA_CERT":         e2eCACert(),
		"NODE_EXTRA_CA_CERTS": e2eCACert(),
		"E2E_REDIRECT_PORT":   fmt.Sprint(freeport.One()),
		"E2E_USERNAME":        "alice",
		"E2E_PASSWORD":        "correct horse",
		"E2E_SCREENSHOT":      e2eScreenshot(t, "consent-ts-client.png"),
	}, &res)

	for _, want := range []string{"add", "echo", "whoami"} {
		if !strings.Contains(" "+strings.Join(res.Tools, " ")+" ", " "+want+" ") {
			t.Errorf("tools %v lack %s", res.Tools, want)
		}
	}
	if res.Whoami.User != "users:alice" || res.Whoami.Client != res.ClientID || res.Whoami.Auth {
		t.Errorf("whoami = %+v (client %s)", res.Whoami, res.ClientID)
	}
	if scopes := strings.Fields(res.Whoami.Scopes); len(scopes) != 2 || !slices.Contains(scopes, "mcp:tools") || !slices.Contains(scopes, "mcp:admin") {
		t.Errorf("scopes = %q", res.Whoami.Scopes)
	}
	if res.Add != 42 || res.Add2 != 42 {
		t.Errorf("add 2 40 = %v, after refresh %v", res.Add, res.Add2)
	}
	if res.AuthorizationResponse.Iss != siteAddr() {
		t.Errorf("iss = %q", res.AuthorizationResponse.Iss)
	}
	r := res.Refresh
	if !r.Refreshed || r.SDKOn401.Whoami.User != "users:alice" || r.AuthFunction.Whoami.User != "users:alice" || r.BrowserRuns != 1 {
		t.Errorf("refresh: %+v", r)
	}
}

// dpopClientResult is what e2e/dpop-client.mjs prints.
type dpopClientResult struct {
	Requests         []string `json:"requests"`
	NonceRetries     int      `json:"nonceRetries"`
	TokenType        string   `json:"tokenType"`
	RefreshTokenType string   `json:"refreshedTokenType"`
	JKT              string   `json:"jkt"`
	Whoami           struct {
		User string `json:"user"`
		Auth bool   `json:"authorization_header_present"`
	} `json:"whoami"`
	WhoamiAfterRefresh struct {
		User string `json:"user"`
	} `json:"whoamiAfterRefresh"`
	CopiedWithOtherKey string `json:"copiedWithOtherKey"`
	CopiedAsBearer     int    `json:"copiedAsBearer"`
}

// TestDPoPClient runs oauth4webapi, an independent RFC 9449 client, through
// real Caddy: registration, login with dpop_jkt, DPoP-bound tokens, calls to
// the real MCP backend, a refresh, and the token refused to a client without
// the key, with server nonces off and on (the library retries once when
// told use_dpop_nonce).
func TestDPoPClient(t *testing.T) {
	node := e2eNode(t, "oauth4webapi")
	for _, nonces := range []bool{false, true} {
		t.Run(fmt.Sprintf("nonce=%v", nonces), func(t *testing.T) {
			storagePath, logDir := t.TempDir(), t.TempDir()
			config := usersUpstream()
			if nonces {
				config += "\n\t\tdpop {\n\t\t\tnonce\n\t\t}"
			}
			startCaddy(t, asSite(t, storagePath, logDir, config))
			var res dpopClientResult
			runNode(t, node, "dpop-client.mjs", map[string]string{
				"E2E_SERVER_URL":      siteAddr() + "/mcp",
				"E2E_CA_CERT":         e2eCACert(),
				"NODE_EXTRA_CA_CERTS": e2eCACert(),
				"E2E_REDIRECT_PORT":   fmt.Sprint(freeport.One()),
				"E2E_USERNAME":        "alice",
				"E2E_PASSWORD":        "correct horse",
			}, &res)
			if res.TokenType != "dpop" && res.TokenType != "DPoP" || res.RefreshTokenType != res.TokenType || res.JKT == "" {
				t.Errorf("token types %q, %q; jkt %q", res.TokenType, res.RefreshTokenType, res.JKT)
			}
			if res.Whoami.User != "users:alice" || res.Whoami.Auth || res.WhoamiAfterRefresh.User != "users:alice" {
				t.Errorf("whoami %+v, after refresh %+v", res.Whoami, res.WhoamiAfterRefresh)
			}
			if res.CopiedWithOtherKey != "dpop invalid_dpop_proof" || res.CopiedAsBearer != http.StatusUnauthorized {
				t.Errorf("copied token: with another key %q, as Bearer %d", res.CopiedWithOtherKey, res.CopiedAsBearer)
			}
			// Without nonces nothing is retried; with them, the first token
			// request is told to use one, and every later request, at the
			// token endpoint and at the resource of the same origin,
			// carries the latest nonce the library was handed.
			if want := map[bool]int{false: 0, true: 1}[nonces]; res.NonceRetries != want {
				t.Errorf("nonce retries %d, want %d: %v", res.NonceRetries, want, res.Requests)
			}
		})
	}
}
