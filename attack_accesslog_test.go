package mcpauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// readmeLogFilter is the access log filter README.md recommends: its
// `format filter { ... }` block, as written there.
func readmeLogFilter(t *testing.T) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	block := regexp.MustCompile(`(?s)\n(\t\tformat filter \{\n.*?\n\t\t\})\n`).FindSubmatch(readme)
	if block == nil {
		t.Fatal("README.md shows no `format filter` block for the access log")
	}
	return string(block[1])
}

// Someone who can read the access log (log shipping, a support bundle, a
// shared host) collects the authorization codes and states it records:
// the code in the Location of the consent POST and in the client's
// callback, the upstream provider's code in /authorize/callback's query,
// and tokens a client wrongly puts in the query. With README's filter,
// none of them is written; without it, they are.
func TestAttackAuthorizationCodeReadFromAccessLog(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-1", Email: "kc@example.com", EmailVerified: true})
	backend := httptest.NewServer(demomcp.Handler())
	t.Cleanup(backend.Close)
	e := &asEnv{storagePath: t.TempDir(), logDir: t.TempDir()}
	filtered, raw := filepath.Join(e.logDir, "filtered.log"), filepath.Join(e.logDir, "raw.log")
	startCaddy(t, globalOptions(e.storagePath, filepath.Join(e.logDir, "caddy.log"))+fmt.Sprintf(`
%s {
	log filtered {
		output file %s
%s
	}
	log raw {
		output file %s
	}
	mcp_auth {
		resource /mcp {
			scopes mcp:tools
		}
		%s
	}
	reverse_proxy %s
}
`, siteAddr(), filtered, readmeLogFilter(t), raw, oidcUpstream(idp), backend.Listener.Addr()))
	e.Server = siteServer(t)

	c := e.publicClient(t)
	p := oauthtest.NewPKCE()
	q := authParams(c, p)
	q.Set("state", "client-state-"+p.Verifier[:12])
	steps := walk(t, newBrowser(t), authorizeURL(q), idp.URL)
	loc := redirectedTo(t, steps)
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("no code: %s", loc)
	}
	// Every code, state and nonce the browser carried through the flow.
	secrets := map[string]bool{code: true, q.Get("state"): true}
	for _, s := range steps {
		for _, u := range []string{s.URL.String(), s.Header.Get("Location")} {
			if parsed, err := s.URL.Parse(u); err == nil {
				for _, name := range []string{"code", "state", "nonce"} {
					if v := parsed.Query().Get(name); v != "" {
						secrets[v] = true
					}
				}
			}
		}
	}
	// Spellings of the callback query the filter must catch as the server
	// reads them: an encoded name, a repeated parameter, a semicolon
	// (which makes Go drop the pair).
	for i, query := range []string{"co%64e=%s&st%61te=%s", "code=%s&code=%s", "code=%s;x=1&state=%s"} {
		a, b := fmt.Sprintf("variant-%d-first-secret", i), fmt.Sprintf("variant-%d-second-secret", i)
		oauthtest.Get(t, e.HTTP, siteAddr()+"/authorize/callback?"+fmt.Sprintf(query, a, b), nil)
		secrets[a], secrets[b] = true, true
	}
	tokens := e.Exchange(t, codeForm(c, code, p), nil)
	secrets[tokens.Access], secrets[tokens.Refresh] = true, true
	// A client that puts its token in the query (refused by the gate).
	oauthtest.Get(t, e.HTTP, siteAddr()+"/mcp?access_token="+tokens.Access, nil)
	if status := e.mcpStatus(t, tokens.Access); status != http.StatusOK {
		t.Fatalf("token refused: %d", status)
	}

	filteredLog, err := os.ReadFile(filtered)
	if err != nil {
		t.Fatal(err)
	}
	rawLog, err := os.ReadFile(raw)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{`"uri":"/authorize/callback?`, `"uri":"/authorize/consent"`, `"uri":"/token"`} {
		if !strings.Contains(string(filteredLog), path) {
			t.Errorf("the filtered access log has no entry %s", path)
		}
	}
	if !strings.Contains(string(rawLog), code) {
		t.Error("without the filter, the access log does not show the code: the attack is not reproduced")
	}
	// Nor does Caddy's own log above debug level. (At debug level, Caddy
	// logs the request of each refusal by the gate, query included: see
	// README.)
	serverLog, err := os.ReadFile(filepath.Join(e.logDir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	var above []byte
	for _, line := range bytes.SplitAfter(serverLog, []byte("\n")) {
		if !bytes.Contains(line, []byte(`"level":"debug"`)) {
			above = append(above, line...)
		}
	}
	for s := range secrets {
		for name, log := range map[string][]byte{"the filtered access log": filteredLog, "the server log": above} {
			if len(s) >= 8 && strings.Contains(string(log), s) {
				t.Errorf("%s contains %.8s…", name, s)
			}
		}
	}
}

// Someone who can read Caddy's logs, at debug level too, collects the
// users' GitHub tokens the backend is given. Caddy's access log records
// the client's request, never the request to the backend that header_up
// fills in; Caddy's debug log records the request to the backend with its
// headers, Authorization redacted (which is why README puts the token
// there). No GitHub access or refresh token is in any log, through a
// login, MCP calls and a refresh of the grant.
func TestAttackUpstreamTokenReadFromLogs(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 7, Login: "monalisa"})
	gh.ExpireTokens(time.Hour)
	e := &asEnv{storagePath: t.TempDir(), logDir: t.TempDir()}
	serverLog := filepath.Join(e.logDir, "caddy.log")
	startCaddy(t, githubTokensSite(t, gh, globalOptions(e.storagePath, serverLog), e.logDir))
	e.Server = siteServer(t)
	c := e.publicClient(t)
	ts := githubLogin(t, e, c, gh)
	for range 2 {
		if u, err := githubUser(t, &recordingTransport{token: ts.Access}); err != nil || u.Login != "monalisa" {
			t.Fatalf("github_user: %+v %v", u, err)
		}
	}
	next := e.mustRefresh(t, c, ts.Refresh, nil)
	if u, err := githubUser(t, &recordingTransport{token: next.Access}); err != nil || u.Login != "monalisa" {
		t.Fatalf("github_user after the grant's refresh: %+v %v", u, err)
	}
	issued := gh.Issued()
	if len(issued) != 1 || issued[0].RefreshToken == "" || lastAPIToken(gh) != issued[0].AccessToken {
		t.Fatalf("want one GitHub token with a refresh token, used at the API: %d issued", len(issued))
	}

	// The debug log shows the requests to the backend: the check below
	// reads them, and their Authorization is redacted.
	roundtrips := 0
	for _, line := range readLines(t, serverLog) {
		var entry struct {
			Msg     string `json:"msg"`
			Request struct {
				Headers http.Header `json:"headers"`
			} `json:"request"`
		}
		if json.Unmarshal(line, &entry) != nil || entry.Msg != "upstream roundtrip" {
			continue
		}
		roundtrips++
		if got := entry.Request.Headers["Authorization"]; len(got) != 1 || got[0] != "REDACTED" {
			t.Errorf("the debug log shows the backend's Authorization as %q, want it redacted", got)
		}
	}
	if roundtrips == 0 {
		t.Error("the debug log shows no request to the backend: the check proves nothing")
	}
	// The access log records the MCP requests, as the client sent them.
	mcpEntries := 0
	for _, line := range readLines(t, filepath.Join(e.logDir, "access.log")) {
		if bytes.Contains(line, []byte(`"uri":"/mcp"`)) {
			mcpEntries++
		}
	}
	if mcpEntries == 0 {
		t.Error("the access log records no MCP request: the check proves nothing")
	}
	assertNoSecretsLogged(t, e.logDir, issued[0].AccessToken, issued[0].RefreshToken)
}

// readLines returns the lines of the file at path.
func readLines(t *testing.T, path string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSpace(b), []byte("\n"))
}
