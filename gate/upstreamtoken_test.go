package gate

import (
	"context"
	"crypto/rand"
	"errors"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
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
