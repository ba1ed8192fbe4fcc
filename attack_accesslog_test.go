package mcpauth

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

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
