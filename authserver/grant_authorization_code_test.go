package authserver

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// hookedStore runs beforePut once, just before the first Put of a key
// with the prefix, so that a test can interleave another request with the
// writes of one.
type hookedStore struct {
	storage.Store
	prefix    string
	once      sync.Once
	beforePut func()
}

func (h *hookedStore) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if h.beforePut != nil && strings.HasPrefix(key, h.prefix) {
		h.once.Do(h.beforePut)
	}
	return h.Store.Put(ctx, key, value, ttl)
}

// codeServer is an authorization server that issues refresh tokens to
// alice, with store as its store, and its stores.
func codeServer(t *testing.T, store storage.Store) (*Server, *state.Stores) {
	t.Helper()
	cfg := testConfig(t, store)
	return newServer(t, cfg), cfg.State
}

// testClient is the client c1 of the code and refresh-token grants,
// registered for and authenticated with method.
func testClient(method string) *authenticatedClient {
	return &authenticatedClient{Method: method, Client: &clients.Client{ClientID: "c1", TokenEndpointAuthMethod: method,
		GrantTypes: []string{clients.GrantAuthorizationCode, clients.GrantRefreshToken}}}
}

// issueCode stores an authorization code for alice to client, for the
// scope mcp:read, as a login does, and returns a function that redeems it.
func issueCode(t *testing.T, s *Server, stores *state.Stores, client *authenticatedClient) func() (*tokenResponse, *oauth.Error) {
	t.Helper()
	ctx := context.Background()
	verifier := randomToken()
	code := state.Code{
		Request: state.Request{ClientID: client.ClientID, RedirectURI: "https://c.example/cb", CodeChallenge: s256(verifier),
			Resource: testResource, Scopes: []string{"mcp:read"}},
		User:     state.User{Subject: "users:alice", Username: "alice", Upstream: "users"},
		IssuedAt: time.Now().UnixNano(),
	}
	raw := randomToken()
	if err := stores.Codes.Issue(ctx, raw, &code); err != nil {
		t.Fatal(err)
	}
	return func() (*tokenResponse, *oauth.Error) {
		return codeGrant(s).grant(ctx, client, map[string]string{"code": raw, "code_verifier": verifier}, nil)
	}
}

// redeemCode issues an authorization code for alice to the public client
// c1 and redeems it.
func redeemCode(t *testing.T, s *Server, stores *state.Stores) (*tokenResponse, *oauth.Error) {
	t.Helper()
	return issueCode(t, s, stores, testClient(clients.AuthMethodNone))()
}

// revokeAlice revokes alice, or deletes her client.
func revokeAlice(t *testing.T, admin *Admin, by string) {
	var err error
	if by == "user" {
		_, err = admin.RevokeUser(context.Background(), "users:alice")
	} else {
		_, err = admin.DeleteClient(context.Background(), "c1")
	}
	if err != nil && err != ErrNotFound {
		t.Errorf("revoking: %v", err)
	}
}

// A code issued before a revocation of its user or client and redeemed
// after it is part of what was revoked.
func TestCodeIssuedBeforeRevocationIssuesNothing(t *testing.T) {
	for _, by := range []string{"user", "client"} {
		t.Run(by, func(t *testing.T) {
			db := storagetest.Badger(t)
			s, stores := codeServer(t, db)
			redeem := issueCode(t, s, stores, testClient(clients.AuthMethodNone))
			revokeAlice(t, &Admin{Issuer: testIssuer, State: stores}, by)
			if resp, oerr := redeem(); oerr == nil || oerr.Code != oauth.InvalidGrant {
				t.Fatalf("code from before the revocation: %+v %v, want invalid_grant", resp, oerr)
			}
			if n := countKeys(t, db, string(state.KindGrant)); n != 0 {
				t.Errorf("%d grants outlive the revocation", n)
			}
			if resp, oerr := redeemCode(t, s, stores); oerr != nil || resp.RefreshToken == "" {
				t.Fatalf("code from after the revocation: %+v %v", resp, oerr)
			}
		})
	}
}

func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func countKeys(t *testing.T, st storage.Store, prefix string) int {
	t.Helper()
	n := 0
	if err := st.List(context.Background(), prefix, func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// An operator revokes a user while a code of theirs is being redeemed,
// after the redemption indexed its access token and before it stored its
// grant: the revocation's listing finds the token but not the grant. The
// redemption must notice and issue nothing, or the refresh token would
// outlive the revocation.
func TestCodeRedeemedDuringUserRevocationIssuesNothing(t *testing.T) {
	for _, by := range []string{"user", "client"} {
		t.Run(by, func(t *testing.T) {
			db := storagetest.Badger(t)
			hooked := &hookedStore{Store: db, prefix: string(state.KindGrant)}
			s, stores := codeServer(t, hooked)
			admin := &Admin{Issuer: testIssuer, State: openState(t, db)}
			hooked.beforePut = func() { revokeAlice(t, admin, by) }
			resp, oerr := redeemCode(t, s, stores)
			if oerr == nil || oerr.Code != oauth.InvalidGrant {
				t.Fatalf("redemption during the revocation: %+v %v, want invalid_grant", resp, oerr)
			}
			if n := countKeys(t, db, string(state.KindGrant)); n != 0 {
				t.Errorf("%d grants outlive the revocation", n)
			}
			if n := countKeys(t, db, string(state.KindDenied)); n != 1 {
				t.Errorf("%d access tokens denied, want the one indexed", n)
			}

			// Later redemptions are new authorizations and work.
			hooked.beforePut = nil
			if resp, oerr := redeemCode(t, s, stores); oerr != nil || resp.RefreshToken == "" {
				t.Fatalf("redemption after the revocation: %+v %v", resp, oerr)
			}
		})
	}
}
