package mcpauth

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// staticToken is an MCP client's OAuth side holding one access token.
type staticToken string

func (s staticToken) TokenSource(context.Context) (oauth2.TokenSource, error) {
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: string(s)}), nil
}

func (s staticToken) Authorize(_ context.Context, _ *http.Request, resp *http.Response) error {
	resp.Body.Close()
	return errors.New(resp.Header.Get("WWW-Authenticate"))
}

func TestToolScopes(t *testing.T) {
	client, ring, _ := startGate(t, "tool_scope add mcp:admin")
	basic := mint(t, ring, nil)
	admin := mint(t, ring, func(c *tokens.AccessClaims) { c.Scope = "mcp:tools mcp:admin" })

	connect := func(token string) *mcp.ClientSession {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "tools-test", Version: "0"}, nil).Connect(t.Context(),
			&mcp.StreamableClientTransport{Endpoint: siteAddr() + "/mcp", HTTPClient: client, OAuthHandler: staticToken(token)}, nil)
		if err != nil {
			t.Fatalf("connect: %v", err)
		}
		t.Cleanup(func() { cs.Close() })
		return cs
	}

	cs := connect(basic)
	if res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err != nil || res.IsError {
		t.Fatalf("whoami needs no extra scope: %v", err)
	}
	_, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 2}})
	if err == nil || !strings.Contains(err.Error(), `error="insufficient_scope"`) || !strings.Contains(err.Error(), `scope="mcp:admin"`) {
		t.Fatalf("add without mcp:admin: %v", err)
	}
	if res, err := connect(admin).CallTool(t.Context(), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 1, "b": 2}}); err != nil || res.IsError {
		t.Fatalf("add with mcp:admin: %v", err)
	}

	post := func(token, body string, header http.Header) (int, http.Header) {
		h := oauthtest.MCPHeader(token)
		for k, v := range header {
			h[k] = v
		}
		status, hdr, _ := oauthtest.Do(t, client, http.MethodPost, siteAddr()+"/mcp", h, []byte(body))
		return status, hdr
	}
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}`
	for name, tc := range map[string]struct {
		token, body string
		header      http.Header
		status      int
	}{
		"batch hiding a call":      {basic, `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},` + call + `]`, nil, 403},
		"malformed JSON":           {basic, `{"jsonrpc":"2.0","method":"tools/call",`, nil, 400},
		"body too large":           {basic, `{"x":"` + strings.Repeat("a", 5<<20) + `"}`, nil, 413},
		"Mcp-Name disagrees":       {admin, call, http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"whoami"}}, 400},
		"Mcp-Method disagrees":     {admin, call, http.Header{"Mcp-Method": {"tools/list"}}, 400},
		"other methods unaffected": {basic, `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`, nil, 0},
	} {
		t.Run(name, func(t *testing.T) {
			status, hdr := post(tc.token, tc.body, tc.header)
			if tc.status == 0 {
				if status == 403 || status == 400 || status == 413 || status == 401 {
					t.Errorf("status %d: the gate interfered", status)
				}
				return
			}
			if status != tc.status {
				t.Errorf("status %d, want %d", status, tc.status)
			}
			if tc.status == 403 && !strings.Contains(hdr.Get("WWW-Authenticate"), `scope="mcp:admin"`) {
				t.Errorf("challenge %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}
}

// A broad scope includes the narrow ones it is declared to (RS-08): a token
// with admin may call a tool that needs mcp:admin, transitively.
func TestScopeHierarchy(t *testing.T) {
	client, ring, _ := startGate(t, "tool_scope add mcp:admin\n\t\tscope_includes owner admin\n\t\tscope_includes admin mcp:admin")
	call := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"b":2}}}`)
	for scope, want := range map[string]int{
		"mcp:tools":       http.StatusForbidden,
		"mcp:tools admin": 0,
		"mcp:tools owner": 0,
	} {
		token := mint(t, ring, func(c *tokens.AccessClaims) { c.Scope = scope })
		h := oauthtest.MCPHeader(token)
		status, _, _ := oauthtest.Do(t, client, http.MethodPost, siteAddr()+"/mcp", h, call)
		if (want == 0 && status == http.StatusForbidden) || (want != 0 && status != want) {
			t.Errorf("token with %q: %d", scope, status)
		}
	}
	// /admin/* needs admin (gatedSite); owner includes it.
	if status, _, _ := oauthtest.Get(t, client, siteAddr()+"/admin/x", oauthtest.Bearer(mint(t, ring, func(c *tokens.AccessClaims) { c.Scope = "owner" }))); status != http.StatusOK {
		t.Errorf("owner on an admin path: %d", status)
	}
}
