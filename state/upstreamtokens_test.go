package state

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

func randomSealKey(t testing.TB) []byte {
	t.Helper()
	k := make([]byte, SealKeySize)
	_, _ = rand.Read(k)
	return k
}

func newSealer(t testing.TB, current []byte, old ...[]byte) *Sealer {
	t.Helper()
	s, err := NewSealer(current, old...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

const (
	secretAccess  = "gho_AccessTokenThatMustNeverBeStoredInTheClear"
	secretRefresh = "ghr_RefreshTokenThatMustNeverBeStoredInTheClear"
)

func keptToken(id string) *UpstreamToken {
	return &UpstreamToken{ID: id, AccessToken: secretAccess, RefreshToken: secretRefresh,
		Expiry: time.Now().Add(8 * time.Hour).Unix(), Scopes: []string{"repo"}, Until: time.Now().Add(time.Hour).Unix()}
}

// The stored bytes hold neither token, in any store; the key opens them,
// another key does not, and an older key configured for opening still
// does after rotation.
func TestUpstreamTokensSealedAtRest(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			db := openStore(t, kind)
			ctx := context.Background()
			oldKey, newKey := randomSealKey(t), randomSealKey(t)
			stores := openStores(t, db)
			stores.UpstreamTokens.Keep(newSealer(t, oldKey), nil)
			if err := stores.UpstreamTokens.Save(ctx, keptToken("u1")); err != nil {
				t.Fatal(err)
			}
			err := db.List(ctx, "", func(key string, v []byte) error {
				for _, secret := range []string{secretAccess, secretRefresh, "AccessTokenThatMust", "repo"} {
					if bytes.Contains(v, []byte(secret)) || strings.Contains(key, secret) {
						t.Errorf("%s holds %q in the clear", key, secret)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}

			// Another key opens nothing.
			wrong := &UpstreamTokens{store: db}
			wrong.Keep(newSealer(t, randomSealKey(t)), nil)
			if _, err := wrong.Get(ctx, "u1"); !errors.Is(err, ErrUnsealable) {
				t.Errorf("Get with another key: %v, want ErrUnsealable", err)
			}

			// Rotated: the new key seals, the old one still opens.
			rotated := &UpstreamTokens{store: db}
			rotated.Keep(newSealer(t, newKey, oldKey), nil)
			got, err := rotated.Get(ctx, "u1")
			if err != nil || got.AccessToken != secretAccess || got.RefreshToken != secretRefresh {
				t.Fatalf("Get after rotation: %+v %v", got, err)
			}
			next := *got
			next.AccessToken = "gho_Refreshed"
			if err := rotated.Replace(ctx, got, &next); err != nil {
				t.Fatal(err)
			}
			// Sealed again with the new key: the old key alone cannot open it.
			oldOnly := &UpstreamTokens{store: db}
			oldOnly.Keep(newSealer(t, oldKey), nil)
			if _, err := oldOnly.Get(ctx, "u1"); !errors.Is(err, ErrUnsealable) {
				t.Errorf("the replaced record still opens with the old key: %v", err)
			}
			newOnly := &UpstreamTokens{store: db}
			newOnly.Keep(newSealer(t, newKey), nil)
			if got, err := newOnly.Get(ctx, "u1"); err != nil || got.AccessToken != "gho_Refreshed" {
				t.Errorf("the replaced record with the new key: %+v %v", got, err)
			}
			// A replace from a stale reading loses.
			if err := rotated.Replace(ctx, got, &next); !errors.Is(err, storage.ErrConflict) {
				t.Errorf("Replace from a stale reading: %v, want ErrConflict", err)
			}
		})
	}
}

// A sealed record copied under another record's key does not open there:
// the key is the additional data.
func TestUpstreamTokenBoundToItsRecord(t *testing.T) {
	db := storagetest.Badger(t)
	ctx := context.Background()
	u := openStores(t, db).UpstreamTokens
	u.Keep(newSealer(t, randomSealKey(t)), nil)
	if err := u.Save(ctx, keptToken("alice")); err != nil {
		t.Fatal(err)
	}
	raw, err := db.Get(ctx, KindUpstreamToken.Key("alice"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Put(ctx, KindUpstreamToken.Key("mallory"), raw, time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := u.Get(ctx, "mallory"); !errors.Is(err, ErrUnsealable) {
		t.Errorf("a record moved to another key opened: %v", err)
	}
	for i := range raw {
		damaged := bytes.Clone(raw)
		damaged[i] ^= 0x40
		if err := db.Put(ctx, KindUpstreamToken.Key("alice"), damaged, time.Hour); err != nil {
			t.Fatal(err)
		}
		if _, err := u.Get(ctx, "alice"); !errors.Is(err, ErrUnsealable) {
			t.Fatalf("a record with byte %d changed opened: %v", i, err)
		}
	}
}

// Revoking a grant removes its upstream token, and hands it over once
// for revocation at the provider.
func TestGrantRevocationRemovesUpstreamToken(t *testing.T) {
	for _, kind := range storeKinds {
		t.Run(kind, func(t *testing.T) {
			db := openStore(t, kind)
			ctx := context.Background()
			stores := openStores(t, db)
			var mu sync.Mutex
			var handed []string
			stores.UpstreamTokens.Keep(newSealer(t, randomSealKey(t)), func(tok *UpstreamToken) {
				mu.Lock()
				defer mu.Unlock()
				handed = append(handed, tok.RefreshToken)
			})
			if err := stores.UpstreamTokens.Save(ctx, keptToken("u1")); err != nil {
				t.Fatal(err)
			}
			g := &Grant{ID: "g1", ClientID: "c1", User: User{Subject: "github:1"}, RefreshHash: Hash("rt"), UpstreamToken: "u1",
				ExpiresAt: time.Now().Add(time.Hour).Unix()}
			if err := stores.Grants.Create(ctx, g, time.Hour, time.Hour); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			for range 4 {
				wg.Go(func() {
					if _, err := stores.Grants.Revoke(ctx, "g1"); err != nil {
						t.Error(err)
					}
				})
			}
			wg.Wait()
			if ok, err := stores.UpstreamTokens.Exists(ctx, "u1"); ok || err != nil {
				t.Errorf("upstream token after revocation: exists %v, %v", ok, err)
			}
			if n := countKeys(t, db, string(KindUpstreamToken)); n != 0 {
				t.Errorf("%d upstream token records remain", n)
			}
			mu.Lock()
			defer mu.Unlock()
			if len(handed) != 1 || handed[0] != secretRefresh {
				t.Errorf("handed over for revocation at the provider: %d tokens, want exactly 1", len(handed))
			}
		})
	}
}

// One instance at a time holds the refresh lock.
func TestUpstreamRefreshLock(t *testing.T) {
	db := storagetest.Badger(t)
	ctx := context.Background()
	u := openStores(t, db).UpstreamTokens
	if ok, err := u.Lock(ctx, "u1", time.Minute); !ok || err != nil {
		t.Fatalf("first Lock: %v %v", ok, err)
	}
	if ok, _ := u.Lock(ctx, "u1", time.Minute); ok {
		t.Error("a second Lock succeeded while the first is held")
	}
	if ok, _ := u.Lock(ctx, "u2", time.Minute); !ok {
		t.Error("the lock of another token is taken")
	}
	u.Unlock(ctx, "u1")
	if ok, _ := u.Lock(ctx, "u1", time.Minute); !ok {
		t.Error("Lock after Unlock failed")
	}
}

func TestSealerKeys(t *testing.T) {
	k := randomSealKey(t)
	if _, err := NewSealer(k[:16]); err == nil {
		t.Error("a 16-byte key was accepted")
	}
	if _, err := NewSealer(k, k); err == nil {
		t.Error("the same key twice was accepted")
	}
	s := newSealer(t, k)
	for _, bad := range [][]byte{nil, {}, {sealVersion}, {2, 0, 0, 0, 0}, s.Seal([]byte("x"), []byte("a"))[:10]} {
		if _, _, err := s.Open(bad, []byte("a")); !errors.Is(err, ErrUnsealable) {
			t.Errorf("Open(%x): %v", bad, err)
		}
	}
	a, b := s.Seal([]byte("same"), nil), s.Seal([]byte("same"), nil)
	if bytes.Equal(a, b) {
		t.Error("two seals of one plaintext are equal: the nonce is not fresh")
	}
}

// Open never panics and opens only what Seal made.
func FuzzSealerOpen(f *testing.F) {
	s, _ := NewSealer(bytes.Repeat([]byte{7}, SealKeySize))
	f.Add(s.Seal([]byte("token"), []byte("k")), []byte("k"))
	f.Add([]byte{sealVersion, 1, 2, 3, 4}, []byte(""))
	f.Fuzz(func(t *testing.T, sealed, additional []byte) {
		plain, _, err := s.Open(sealed, additional)
		if err == nil && !bytes.Equal(s.Seal(plain, additional)[:1+sealKeyIDSize], sealed[:1+sealKeyIDSize]) {
			t.Fatalf("opened a value not sealed with the key")
		}
	})
}
