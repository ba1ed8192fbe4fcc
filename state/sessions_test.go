package state

import (
	"context"
	"crypto/sha256"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// An owner's use keeps a live session bound: once less than half of the
// binding's lifetime remains, the use extends it; others never do, and an
// unknown id is not written until the backend accepts it.
func TestSessionBindingExtendedByOwnersUse(t *testing.T) {
	db := storagetest.Badger(t)
	ctx := context.Background()
	s := NewSessions(db, "https://as.example")
	owner := s.owner("alice")
	expiry := func(id string) time.Time {
		stored, err := s.store.Get(ctx, Hash(id))
		if err != nil {
			t.Fatal(err)
		}
		_, at := parseBinding(stored)
		return at
	}
	soon := time.Now().Add(time.Hour)
	for id, value := range map[string][]byte{
		"expiring": append([]byte(strconv.FormatInt(soon.Unix(), 10)+" "), owner...),
		"legacy":   owner,
	} {
		if err := s.store.Put(ctx, Hash(id), value, time.Hour); err != nil {
			t.Fatal(err)
		}
		if owned, _, err := s.OwnedBy(ctx, id, "mallory"); err != nil || owned {
			t.Errorf("%s: mallory owns it (%v)", id, err)
		}
		if at := expiry(id); at.After(soon.Add(time.Second)) {
			t.Errorf("%s: mallory's use extended it to %v", id, at)
		}
		if owned, unbound, err := s.OwnedBy(ctx, id, "alice"); err != nil || !owned || unbound {
			t.Errorf("%s: alice: owned %v, unbound %v, %v", id, owned, unbound, err)
		}
		if at := expiry(id); time.Until(at) < sessionLifetime-time.Minute {
			t.Errorf("%s: alice's use left it expiring at %v", id, at)
		}
	}
	if owned, unbound, err := s.OwnedBy(ctx, "unknown", "mallory"); err != nil || !owned || !unbound {
		t.Errorf("unknown id: owned %v, unbound %v, %v", owned, unbound, err)
	}
	if n := countKeys(t, s.store, ""); n != 2 {
		t.Errorf("%d bindings stored, want 2: presenting an unknown id wrote one", n)
	}
	if ok, err := s.Claim(ctx, "unknown", "mallory"); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if ok, err := s.Claim(ctx, "unknown", "alice"); err != nil || ok {
		t.Errorf("alice claimed mallory's session: %v %v", ok, err)
	}
}

// countingStore counts reads.
type countingStore struct {
	storage.Store
	gets int
}

func (c *countingStore) Get(ctx context.Context, key string) ([]byte, error) {
	c.gets++
	return c.Store.Get(ctx, key)
}

// Known owners are answered from memory; anyone else is asked of the
// store every time, and a binding close to expiring goes back to the
// store so that it is extended.
func TestSessionOwnersCached(t *testing.T) {
	db := storagetest.Badger(t)
	ctx := context.Background()
	store := &countingStore{Store: storage.Prefixed(db, keySession)}
	s := &Sessions{store: store, issuer: "https://as.example"}
	s.owners.max = 2
	owned := func(id, sub string, want bool, wantGets int) {
		t.Helper()
		before := store.gets
		if got, _, err := s.OwnedBy(ctx, id, sub); err != nil || got != want {
			t.Errorf("%s by %s: %v %v, want %v", id, sub, got, err, want)
		}
		if got := store.gets - before; got != wantGets {
			t.Errorf("%s by %s: %d reads of the store, want %d", id, sub, got, wantGets)
		}
	}
	if err := s.Bind(ctx, "one", "alice"); err != nil {
		t.Fatal(err)
	}
	owned("one", "alice", true, 0)
	owned("one", "bob", false, 1)
	owned("one", "bob", false, 1)
	owned("one", "alice", true, 0)

	// Read once from the store, then from memory.
	value, _ := newBinding(s.owner("carol"))
	if err := store.Put(ctx, Hash("two"), value, sessionLifetime); err != nil {
		t.Fatal(err)
	}
	owned("two", "carol", true, 1)
	owned("two", "carol", true, 0)

	// The least recently used goes when a third is cached.
	if ok, err := s.Claim(ctx, "three", "dave"); err != nil || !ok {
		t.Fatal(ok, err)
	}
	owned("three", "dave", true, 0)
	owned("one", "alice", true, 1)

	// A binding due for extension is not answered from memory.
	soon := time.Now().Add(time.Hour)
	if err := store.Put(ctx, Hash("four"), append([]byte(strconv.FormatInt(soon.Unix(), 10)+" "), s.owner("erin")...), time.Hour); err != nil {
		t.Fatal(err)
	}
	s.owners.add(sha256.Sum256([]byte("four")), s.owner("erin"), soon)
	owned("four", "erin", true, 1)
	owned("four", "erin", true, 0) // extended, and cached as such
}
