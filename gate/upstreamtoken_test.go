package gate

import (
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

func upstreamStore(t *testing.T, db storage.Store, keys ...[]byte) *state.UpstreamTokens {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stores, err := state.Open(ctx, db, 0, time.Hour, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); stores.Revocations.Wait() })
	sealer, err := state.NewSealer(keys[0], keys[1:]...)
	if err != nil {
		t.Fatal(err)
	}
	stores.UpstreamTokens.Keep(sealer, nil)
	return stores.UpstreamTokens
}

func sealKeyForTest() []byte {
	k := make([]byte, state.SealKeySize)
	_, _ = rand.Read(k)
	return k
}

// After a key rotation a token sealed with the old key is sealed again
// with the new one when it is first used, so the old key can be dropped;
// a token no configured key opens is gone, and removed.
func TestUpstreamTokenKeyRotation(t *testing.T) {
	db := storagetest.Badger(t)
	ctx := context.Background()
	oldKey, newKey := sealKeyForTest(), sealKeyForTest()
	tok := &state.UpstreamToken{ID: "u1", AccessToken: "gho_user", Obtained: time.Now().Unix(), Until: time.Now().Add(time.Hour).Unix()}
	if err := upstreamStore(t, db, oldKey).Save(ctx, tok); err != nil {
		t.Fatal(err)
	}
	claims := &tokens.AccessClaims{UpstreamTokenID: "u1"}

	rotated := NewUpstreamTokens(upstreamStore(t, db, newKey, oldKey), nil, zap.NewNop())
	if got, err := rotated.For(ctx, claims); err != nil || got != "gho_user" {
		t.Fatalf("For after rotation: %q %v", got, err)
	}
	newOnly := upstreamStore(t, db, newKey)
	if got, err := newOnly.Get(ctx, "u1"); err != nil || got.AccessToken != "gho_user" || got.SealedWithOldKey() {
		t.Fatalf("not sealed again with the new key: %+v %v", got, err)
	}

	lost := NewUpstreamTokens(upstreamStore(t, db, sealKeyForTest()), nil, zap.NewNop())
	if _, err := lost.For(ctx, claims); !errors.Is(err, ErrUpstreamTokenGone) {
		t.Errorf("For with none of the keys: %v, want ErrUpstreamTokenGone", err)
	}
	if ok, _ := newOnly.Exists(ctx, "u1"); ok {
		t.Error("a token no key opens is still stored: its grant would refresh forever")
	}
}

// An expired token without a refresh token is gone, and removed; an
// access token naming none gets none.
func TestUpstreamTokenExpiredWithoutRefresh(t *testing.T) {
	db := storagetest.Badger(t)
	ctx := context.Background()
	store := upstreamStore(t, db, sealKeyForTest())
	tok := &state.UpstreamToken{ID: "u1", AccessToken: "ya29.user", Obtained: time.Now().Add(-time.Hour).Unix(),
		Expiry: time.Now().Add(-time.Second).Unix(), Until: time.Now().Add(time.Hour).Unix()}
	if err := store.Save(ctx, tok); err != nil {
		t.Fatal(err)
	}
	found := NewUpstreamTokens(store, nil, zap.NewNop())
	if _, err := found.For(ctx, &tokens.AccessClaims{UpstreamTokenID: "u1"}); !errors.Is(err, ErrUpstreamTokenGone) {
		t.Errorf("expired token: %v, want ErrUpstreamTokenGone", err)
	}
	if ok, _ := store.Exists(ctx, "u1"); ok {
		t.Error("the expired token is still stored")
	}
	if got, err := found.For(ctx, &tokens.AccessClaims{}); got != "" || err != nil {
		t.Errorf("access token naming no upstream token: %q %v", got, err)
	}
}

// Instances sharing a Redis store refresh a due token once between them:
// the one that takes the store's lock refreshes at GitHub, the others
// wait for its result.
func TestUpstreamTokenRefreshedOnceAcrossInstances(t *testing.T) {
	gh := fakeidp.NewGitHub(t, fakeidp.GitHubUser{ID: 7, Login: "monalisa"})
	gh.ExpireTokens(time.Hour)
	provider := upstream.NewGitHub(upstream.GitHubConfig{ClientID: gh.ClientID, ClientSecret: gh.ClientSecret, BaseURL: gh.BaseURL, APIURL: gh.APIURL}, nil)
	verifier := strings.Repeat("v", 43)
	loc := fakeidp.Authorize(t, provider.AuthCodeURL("state", verifier, "", "http://127.0.0.1/callback"))
	id, err := provider.Exchange(t.Context(), loc.Query().Get("code"), verifier, "", "http://127.0.0.1/callback")
	if err != nil {
		t.Fatal(err)
	}

	url := redistest.Start(t)
	key := sealKeyForTest()
	var instances []*UpstreamTokens
	for range 3 {
		r, err := storage.OpenRedis(t.Context(), url, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Close() })
		instances = append(instances, NewUpstreamTokens(upstreamStore(t, r, key), provider, zap.NewNop()))
	}
	// Due: obtained an hour ago, expiring now.
	due := &state.UpstreamToken{ID: "u1", AccessToken: id.Token.AccessToken, RefreshToken: id.Token.RefreshToken,
		Obtained: time.Now().Add(-time.Hour).Unix(), Expiry: time.Now().Add(time.Second).Unix(), Until: time.Now().Add(time.Hour).Unix()}
	if err := upstreamStore(t, storeOf(t, url), key).Save(t.Context(), due); err != nil {
		t.Fatal(err)
	}
	before := gh.TokenRequests()
	var wg sync.WaitGroup
	got := make(chan string, 12)
	for _, inst := range instances {
		for range 4 {
			wg.Go(func() {
				tok, err := inst.For(t.Context(), &tokens.AccessClaims{UpstreamTokenID: "u1"})
				if err != nil {
					t.Error(err)
				}
				got <- tok
			})
		}
	}
	wg.Wait()
	close(got)
	if n := gh.TokenRequests() - before; n != 1 {
		t.Errorf("%d refreshes at GitHub for 3 instances, want 1", n)
	}
	issued := gh.Issued()
	for tok := range got {
		if tok != issued[len(issued)-1].AccessToken {
			t.Errorf("a request got a token other than the refreshed one")
		}
	}
}

func storeOf(t *testing.T, url string) storage.Store {
	t.Helper()
	r, err := storage.OpenRedis(t.Context(), url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}
