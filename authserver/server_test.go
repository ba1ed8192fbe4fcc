package authserver

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"path"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// openState opens the stores of an authorization server over store, for
// the test's duration.
func openState(t testing.TB, store storage.Store) *state.Stores {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stores, err := state.Open(ctx, store, 0, time.Hour, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the store's cleanup, so it runs before it.
	t.Cleanup(func() { cancel(); stores.Revocations.Wait() })
	return stores
}

// testIssuer is the issuer of the servers under test; testResource their
// one protected resource.
const (
	testIssuer   = "https://h.example"
	testResource = testIssuer + "/mcp"
)

// testConfig configures an authorization server, over store, whose one
// user is alice (password "pw") of the built-in login, allowed
// everything, for the resource testResource with the scopes mcp:read and
// mcp:write.
func testConfig(t testing.TB, store storage.Store) Config {
	t.Helper()
	hash, _ := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	users, err := upstream.NewUsers(map[string]string{"alice": string(hash)})
	if err != nil {
		t.Fatal(err)
	}
	ring, err := tokens.NewKeyRing(context.Background(), store, tokens.KeyRingConfig{RotationPeriod: 24 * time.Hour, RetainPeriod: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	resources, err := gate.NewResources(testIssuer, []gate.ResourceConfig{{Path: "/mcp", Scopes: []string{"mcp:read", "mcp:write"}}})
	if err != nil {
		t.Fatal(err)
	}
	return Config{
		Issuer: testIssuer, Realm: "mcp", Resources: resources, Ring: ring, Verifier: tokens.NewVerifier(ring, testIssuer),
		State: openState(t, store), Passwords: users, UpstreamIdentity: "users", Allow: AllowList{Everyone: true},
		AccessTokenLifetime: time.Hour, RefreshTokenLifetime: 24 * time.Hour, RefreshTokenIdle: 24 * time.Hour,
		UnusedClientLifetime: time.Hour, Logger: zap.NewNop(),
	}
}

// newServer builds the server cfg describes.
func newServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// serve runs s on an httptest server, answering 404 where it has no
// endpoint, and returns it as an MCP client reaches it.
func serve(t testing.TB, s *Server) *oauthtest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, h := s.Route(path.Clean("/" + r.URL.Path)); h != nil {
			h.ServeHTTP(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(srv.Close)
	noRedirects := *srv.Client()
	noRedirects.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &oauthtest.Server{URL: srv.URL, HTTP: &noRedirects}
}

// codeGrant is the authorization-code grant of s.
func codeGrant(s *Server) *authorizationCodeGrant {
	return s.routes[pathToken].handler.(*tokenEndpoint).grants[clients.GrantAuthorizationCode].(*authorizationCodeGrant)
}

// errorCode is the error of a JSON OAuth error body, failing the test if
// the body is none.
func errorCode(t testing.TB, body []byte) oauth.ErrorCode {
	t.Helper()
	var e struct {
		Error oauth.ErrorCode `json:"error"`
	}
	if err := json.Unmarshal(body, &e); err != nil || e.Error == "" {
		t.Fatalf("not an OAuth error: %q", body)
	}
	return e.Error
}

// publicClient registers a public client of the code flow at as, with
// refresh tokens.
func publicClient(t testing.TB, as *oauthtest.Server) oauthtest.Client {
	t.Helper()
	return as.RegisterClient(t, map[string]any{"redirect_uris": []string{"https://c.example/cb"}, "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}})
}

// confidentialClient registers a client_secret_basic client at as.
func confidentialClient(t testing.TB, as *oauthtest.Server) oauthtest.Client {
	t.Helper()
	return as.RegisterClient(t, map[string]any{"redirect_uris": []string{"https://c.example/cb"}, "token_endpoint_auth_method": "client_secret_basic"})
}

// basic is the Authorization header of c's HTTP Basic credentials.
func basic(c oauthtest.Client) http.Header {
	return http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(c.ID, c.Secret)}}
}

// accessToken issues an access token for alice to clientID with scopes,
// as a redemption at s does.
func accessToken(t testing.TB, s *Server, cfg Config, clientID string, scopes ...string) string {
	t.Helper()
	alice := state.User{Subject: "users:alice", Username: "alice", Email: "alice@example.com"}
	resp, _, err := codeGrant(s).mint.accessToken(context.Background(), &clients.Client{ClientID: clientID}, alice, cfg.Resources[0], scopes, "")
	if err != nil {
		t.Fatal(err)
	}
	return resp.AccessToken
}

// tokensOf is how s looks up the tokens presented to it.
func tokensOf(s *Server) *tokenLookup {
	return s.routes[pathRevoke].handler.(*revocationEndpoint).lookup
}

// refreshGrant is the refresh-token grant of s.
func refreshGrant(s *Server) *refreshTokenGrant {
	return s.routes[pathToken].handler.(*tokenEndpoint).grants[clients.GrantRefreshToken].(*refreshTokenGrant)
}
