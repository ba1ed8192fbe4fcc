package mcpauth

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// loadExample reads an example Caddyfile and points it at this test's
// world: the site at siteAddr(), backends at demo MCP servers, and each
// replacements pair applied in order.
func loadExample(t *testing.T, name string, replacements ...string) {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("example", name))
	if err != nil {
		t.Fatal(err)
	}
	cf := strings.ReplaceAll(string(raw), "mcp.example.com", strings.TrimPrefix(siteAddr(), "https://"))
	for _, port := range []string{"3000", "3001", "3002"} {
		backend := httptest.NewServer(demomcp.Handler())
		t.Cleanup(backend.Close)
		cf = strings.ReplaceAll(cf, "localhost:"+port, backend.Listener.Addr().String())
	}
	cf = strings.NewReplacer(replacements...).Replace(cf)
	startCaddy(t, globalOptions(t.TempDir(), filepath.Join(t.TempDir(), "caddy.log"))+cf)
}

// exampleLogin logs in with the Go SDK client at the given MCP path and
// returns what the backend saw.
func exampleLogin(t *testing.T, b *browser, path string, servers ...string) demomcp.Identity {
	t.Helper()
	transport, _ := sdkClient(t, b, "", servers...)
	transport.Endpoint = siteAddr() + path
	return whoami(t, transport)
}

func TestExampleGitHub(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 583231, Login: "octocat", Orgs: []string{"acme"},
		Emails: []fakeidp.GitHubEmail{{Email: "octo@example.com", Primary: true, Verified: true}}})
	t.Setenv("GITHUB_CLIENT_ID", gh.ClientID)
	t.Setenv("GITHUB_CLIENT_SECRET", gh.ClientSecret)
	loadExample(t, "github.Caddyfile", "client_secret {env.GITHUB_CLIENT_SECRET}",
		fmt.Sprintf("client_secret {env.GITHUB_CLIENT_SECRET}\n\t\t\tbase_url %s\n\t\t\tapi_url %s", gh.BaseURL, gh.APIURL))
	if id := exampleLogin(t, newBrowser(t), "/mcp", gh.BaseURL); id.User != "github:583231" || id.Email != "octo@example.com" {
		t.Errorf("backend saw %+v", id)
	}
}

func TestExampleGoogle(t *testing.T) {
	g := fakeidp.NewGoogle(t, fakeidp.User{Subject: "10769150350006150715113082367", Email: "jo@example.com", EmailVerified: true, HostedDomain: "example.com"})
	t.Setenv("GOOGLE_CLIENT_ID", g.ClientID)
	t.Setenv("GOOGLE_CLIENT_SECRET", g.ClientSecret)
	loadExample(t, "google.Caddyfile", "client_secret {env.GOOGLE_CLIENT_SECRET}",
		"client_secret {env.GOOGLE_CLIENT_SECRET}\n\t\t\tissuer "+g.URL)
	if id := exampleLogin(t, newBrowser(t), "/mcp", g.URL); id.User != "google:10769150350006150715113082367" || id.Email != "jo@example.com" {
		t.Errorf("backend saw %+v", id)
	}
}

func TestExampleKeycloak(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-admin", Email: "admin@example.com", EmailVerified: true})
	t.Setenv("OIDC_CLIENT_ID", idp.ClientID)
	t.Setenv("OIDC_CLIENT_SECRET", idp.ClientSecret)
	loadExample(t, "keycloak.Caddyfile", "https://keycloak.example.com/realms/mcp", idp.URL)
	if id := exampleLogin(t, newBrowser(t), "/mcp", idp.URL); id.User != "oidc:kc-admin" || id.Scopes != "mcp:read mcp:write" {
		t.Errorf("admin: backend saw %+v", id)
	}
	idp.SetUser(fakeidp.User{Subject: "kc-user", Email: "user@example.com", EmailVerified: true})
	if id := exampleLogin(t, newBrowser(t), "/mcp", idp.URL); id.User != "oidc:kc-user" || id.Scopes != "mcp:read" {
		t.Errorf("user: backend saw %+v", id)
	}
}

func TestExampleUsers(t *testing.T) {
	t.Setenv("ALICE_PASSWORD_HASH", aliceHash)
	t.Setenv("BOB_PASSWORD_HASH", aliceHash)
	loadExample(t, "users.Caddyfile")
	b := newBrowser(t)
	b.Username, b.Password = "bob", "correct horse"
	if id := exampleLogin(t, b, "/mcp"); id.User != "users:bob" {
		t.Errorf("backend saw %+v", id)
	}
}

func TestExampleExternalAuthorizationServer(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-1"})
	loadExample(t, "external-as.Caddyfile", "https://keycloak.example.com/realms/mcp", idp.URL)
	client := mustTLSClient(t)
	tok, err := fakeidp.SignRS256(idp.SigningKey(), idp.KeyID(), map[string]any{"iss": idp.URL, "sub": "kc-1",
		"aud": siteAddr() + "/mcp", "scope": "mcp:tools", "azp": "c", "iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()})
	if err != nil {
		t.Fatal(err)
	}
	transport := &mcp.StreamableClientTransport{Endpoint: siteAddr() + "/mcp", HTTPClient: client, OAuthHandler: staticToken(tok)}
	if id := whoami(t, transport); id.User != "kc-1" {
		t.Errorf("backend saw %+v", id)
	}
	if status, _, _ := oauthtest.Get(t, client, siteAddr()+"/mcp", nil); status != http.StatusUnauthorized {
		t.Errorf("no token: %d", status)
	}
}

func TestExampleSeveralServers(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 7, Login: "dev", Orgs: []string{"acme"}})
	t.Setenv("GITHUB_CLIENT_ID", gh.ClientID)
	t.Setenv("GITHUB_CLIENT_SECRET", gh.ClientSecret)
	loadExample(t, "multi.Caddyfile", "client_secret {env.GITHUB_CLIENT_SECRET}",
		fmt.Sprintf("client_secret {env.GITHUB_CLIENT_SECRET}\n\t\t\tbase_url %s\n\t\t\tapi_url %s", gh.BaseURL, gh.APIURL))
	if id := exampleLogin(t, newBrowser(t), "/todos/mcp", gh.BaseURL); id.User != "github:7" || id.Scopes != "todos:read" {
		t.Errorf("todos: backend saw %+v (todos:delete is only for acme-admins)", id)
	}
	if id := exampleLogin(t, newBrowser(t), "/notes/mcp", gh.BaseURL); id.Scopes != "notes:read notes:write" {
		t.Errorf("notes: backend saw %+v", id)
	}
}
