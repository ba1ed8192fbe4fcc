package mcpauth

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/auth"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
)

// clientRedirect is where the test MCP clients want the user sent back; the
// browser stops there, so nothing needs to listen.
const clientRedirect = "http://127.0.0.1:33418/callback"

// asSite is a Caddyfile whose mcp_auth logs users in with the given
// upstream block, in front of the demo MCP server.
func asSite(t *testing.T, storagePath, logDir, authConfig string) string {
	mcpBackend := httptest.NewServer(demomcp.Handler())
	t.Cleanup(mcpBackend.Close)
	return globalOptions(storagePath, filepath.Join(logDir, "caddy.log")) + fmt.Sprintf(`
%s {
	log {
		output file %s
	}
	mcp_auth {
		resource /mcp {
			scopes mcp:tools mcp:admin
		}
		%s
	}
	reverse_proxy %s {
		header_up X-MCP-User {http.auth.user.id}
		header_up X-MCP-Email {http.auth.user.email}
		header_up X-MCP-Client {http.auth.client_id}
		header_up X-MCP-Scopes {http.auth.scopes}
	}
}
`, siteAddr(), filepath.Join(logDir, "access.log"), authConfig, mcpBackend.Listener.Addr())
}

func oidcUpstream(idp *fakeidp.OIDC) string {
	return fmt.Sprintf(`upstream oidc {
			issuer %s
			client_id %s
			client_secret %s
		}`, idp.URL, idp.ClientID, idp.ClientSecret)
}

// sdkClient returns a Go MCP SDK client transport whose OAuth handler
// registers (DCR, or the given metadata document URL), sends the browser
// through the login and exchanges the code, exactly as the SDK does for a
// real user.
func sdkClient(t *testing.T, b *browser, metadataURL string, servers ...string) (*mcp.StreamableClientTransport, *auth.AuthorizationCodeHandler) {
	handler, err := auth.NewAuthorizationCodeHandler(sdkConfig(b, metadataURL, servers...))
	if err != nil {
		t.Fatal(err)
	}
	// The MCP traffic uses a client without the browser's cookies.
	return &mcp.StreamableClientTransport{Endpoint: siteAddr() + "/mcp", HTTPClient: mustTLSClient(t), OAuthHandler: handler}, handler
}

// sdkConfig is the Go MCP SDK's OAuth configuration of sdkClient.
func sdkConfig(b *browser, metadataURL string, servers ...string) *auth.AuthorizationCodeHandlerConfig {
	cfg := &auth.AuthorizationCodeHandlerConfig{
		RedirectURL: clientRedirect,
		Client:      b.client,
		AuthorizationCodeFetcher: func(ctx context.Context, args *auth.AuthorizationArgs) (*auth.AuthorizationResult, error) {
			loc := b.authorize(args.URL, servers...)
			q := loc.Query()
			if q.Get("error") != "" {
				return nil, fmt.Errorf("authorization failed: %s", q.Get("error"))
			}
			return &auth.AuthorizationResult{Code: q.Get("code"), State: q.Get("state"), Iss: q.Get("iss")}, nil
		},
	}
	if metadataURL != "" {
		cfg.ClientIDMetadataDocumentConfig = &auth.ClientIDMetadataDocumentConfig{URL: metadataURL}
	} else {
		cfg.DynamicClientRegistrationConfig = &auth.DynamicClientRegistrationConfig{Metadata: &oauthex.ClientRegistrationMetadata{
			ClientName:              "Go SDK test client",
			RedirectURIs:            []string{clientRedirect},
			GrantTypes:              []string{"authorization_code", "refresh_token"},
			TokenEndpointAuthMethod: "none",
		}}
	}
	return cfg
}

// whoami connects and returns what the backend saw.
func whoami(t *testing.T, transport mcp.Transport) demomcp.Identity {
	t.Helper()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "flow-test", Version: "0"}, nil).Connect(t.Context(), transport, nil)
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer cs.Close()
	return callWhoami(t, cs)
}

// callWhoami calls the demo server's whoami tool in a session.
func callWhoami(t *testing.T, cs *mcp.ClientSession) demomcp.Identity {
	t.Helper()
	res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
	if err != nil || res.IsError {
		t.Fatalf("whoami: %v %v", err, res)
	}
	var id demomcp.Identity
	b, _ := json.Marshal(res.StructuredContent)
	if err := json.Unmarshal(b, &id); err != nil {
		t.Fatal(err)
	}
	return id
}

func TestLoginWithOIDCAndGoSDK(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "u-123", Email: "alice@example.com", EmailVerified: true, Name: "Alice", PreferredUsername: "alice"})
	storagePath, logDir := t.TempDir(), t.TempDir()
	startCaddy(t, asSite(t, storagePath, logDir, oidcUpstream(idp)))

	b := newBrowser(t)
	transport, _ := sdkClient(t, b, "", idp.URL)
	id := whoami(t, transport)
	want := demomcp.Identity{User: "oidc:u-123", Email: "alice@example.com", Scopes: "mcp:tools mcp:admin"}
	if id.User != want.User || id.Email != want.Email || id.Scopes != want.Scopes || id.Client == "" || id.AuthorizationHeaderPresent {
		t.Errorf("backend saw %+v, want %+v with a client id", id, want)
	}
	consent := b.Pages["/authorize"]
	if consent == nil {
		t.Fatal("no consent page was shown before the upstream login")
	}
	for h, want := range map[string]string{"X-Frame-Options": "DENY", "Cache-Control": "no-store"} {
		if consent.Header.Get(h) != want {
			t.Errorf("consent page %s = %q, want %q", h, consent.Header.Get(h), want)
		}
	}
	if csp := consent.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "frame-ancestors 'none'") || !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("consent page CSP %q", csp)
	}
}

func TestLoginWithBuiltInUsers(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	startCaddy(t, asSite(t, storagePath, logDir, usersUpstream()))

	b := newBrowser(t)
	b.Username, b.Password = "alice", "correct horse"
	transport, _ := sdkClient(t, b, "")
	if id := whoami(t, transport); id.User != "users:alice" {
		t.Errorf("backend saw %+v", id)
	}
	if b.Pages["/authorize/login"] == nil {
		t.Error("the built-in login page was not shown")
	}
}
