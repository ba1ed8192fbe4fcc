package authserver

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

func openBadger(t testing.TB) *storage.Badger {
	t.Helper()
	db, err := storage.OpenBadger(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

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

// codeGrant is the authorization-code grant of s.
func codeGrant(s *Server) *authorizationCodeGrant {
	return s.routes[pathToken].handler.(*tokenEndpoint).grants[clients.GrantAuthorizationCode].(*authorizationCodeGrant)
}
