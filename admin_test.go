package mcpauth

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// adminRequest calls Caddy's admin API.
func adminRequest(t *testing.T, method, path string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+adminAddr+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// runCLI runs `caddy mcp-auth <args>` against the test Caddy and returns
// what it printed.
func runCLI(t *testing.T, args ...string) string {
	t.Helper()
	fs := pflag.NewFlagSet("mcp-auth", pflag.ContinueOnError)
	fs.String("address", "", "")
	fs.String("issuer", "", "")
	fs.Bool("revoke", false, "")
	// Flags first, then the rest after "--": ids may begin with "-".
	flags, positional := []string{"--address", adminAddr}, []string{"--"}
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--issuer" && i+1 < len(args):
			flags = append(flags, args[i], args[i+1])
			i++
		case args[i] == "--revoke":
			flags = append(flags, args[i])
		default:
			positional = append(positional, args[i])
		}
	}
	if err := fs.Parse(append(flags, positional...)); err != nil {
		t.Fatal(err)
	}
	r, w, _ := os.Pipe()
	stdout := os.Stdout
	os.Stdout = w
	code, err := cmdMCPAuth(caddycmd.Flags{FlagSet: fs})
	os.Stdout = stdout
	w.Close()
	out, _ := io.ReadAll(r)
	if err != nil || code != 0 {
		t.Fatalf("caddy mcp-auth %v: %d %v", args, code, err)
	}
	return string(out)
}

func TestAdminAPIAndCommands(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	ts := e.login(t, c, nil)

	if out := runCLI(t, "clients"); !strings.Contains(out, c.ID) || strings.Contains(out, "secret") {
		t.Errorf("clients: %s", out)
	}
	var grants []map[string]any
	if err := json.Unmarshal([]byte(runCLI(t, "grants", "users:alice")), &grants); err != nil || len(grants) != 1 || grants[0]["client_id"] != c.ID {
		t.Fatalf("grants: %v %v", grants, err)
	}
	if status, body := adminRequest(t, http.MethodGet, "/mcp_auth/grants?sub="+url.QueryEscape("users:nobody")); status != 200 || strings.TrimSpace(string(body)) != "[]" {
		t.Errorf("grants of nobody: %d %s", status, body)
	}

	// Revoking a user's grants ends their tokens.
	if out := runCLI(t, "revoke", "users:alice"); !strings.Contains(out, `"revoked":1`) {
		t.Errorf("revoke: %s", out)
	}
	if status := e.mcpStatus(t, ts.Access); status != http.StatusUnauthorized {
		t.Errorf("access token after revoking the user: %d", status)
	}
	if status, _, _ := e.Token(t, refreshForm(c, ts.Refresh), nil); status != 400 {
		t.Errorf("refresh after revoking the user: %d", status)
	}

	// Rotating the keys: new tokens use the new key, old ones still work.
	before := e.login(t, c, nil)
	hdrBefore, _ := oauthtest.DecodeJWT(t, before.Access)
	var rotated map[string]string
	if err := json.Unmarshal([]byte(runCLI(t, "rotate-keys")), &rotated); err != nil || rotated["kid"] == "" || rotated["kid"] == hdrBefore["kid"] {
		t.Fatalf("rotate-keys: %v %v", rotated, err)
	}
	after := e.login(t, c, nil)
	if hdr, _ := oauthtest.DecodeJWT(t, after.Access); hdr["kid"] != rotated["kid"] {
		t.Errorf("new token signed by %v, want %v", hdr["kid"], rotated["kid"])
	}
	if e.mcpStatus(t, before.Access) != http.StatusOK || e.mcpStatus(t, after.Access) != http.StatusOK {
		t.Error("tokens from before or after the rotation refused")
	}

	// Deleting a client revokes its grants and ends its logins.
	runCLI(t, "delete-client", c.ID)
	if status := e.mcpStatus(t, after.Access); status != http.StatusUnauthorized {
		t.Errorf("token of a deleted client: %d", status)
	}
	status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(c, oauthtest.NewPKCE())), nil)
	assertErrorPage(t, "authorize with a deleted client", status, hdr, body, http.StatusBadRequest)

	for _, tc := range []struct{ method, path string }{
		{http.MethodDelete, "/mcp_auth/clients/no-such-client"},
		{http.MethodDelete, "/mcp_auth/grants/no-such-grant"},
		{http.MethodDelete, "/mcp_auth/grants"},
		{http.MethodPut, "/mcp_auth/clients"},
		{http.MethodGet, "/mcp_auth/nothing"},
	} {
		if status, body := adminRequest(t, tc.method, tc.path); status < 400 || status >= 500 {
			t.Errorf("%s %s: %d %s, want a 4xx", tc.method, tc.path, status, body)
		}
	}
}
