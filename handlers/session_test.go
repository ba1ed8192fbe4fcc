package handlers

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"go.uber.org/zap"
)

// An owner's use keeps a live session bound: once less than half of the
// binding's lifetime remains, the use extends it; others never do, and an
// unknown id is not written until the backend accepts it.
func TestSessionBindingExtendedByOwnersUse(t *testing.T) {
	db, err := storage.OpenBadger(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ctx := context.Background()
	s := &Site{Issuer: "https://as.example", Sessions: SessionStore(db)}
	owner := s.sessionOwner("alice")
	expiry := func(id string) time.Time {
		stored, err := s.Sessions.Get(ctx, hashKey(id))
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
		if err := s.Sessions.Put(ctx, hashKey(id), value, time.Hour); err != nil {
			t.Fatal(err)
		}
		if owned, _, err := s.SessionOwnedBy(ctx, id, "mallory"); err != nil || owned {
			t.Errorf("%s: mallory owns it (%v)", id, err)
		}
		if at := expiry(id); at.After(soon.Add(time.Second)) {
			t.Errorf("%s: mallory's use extended it to %v", id, at)
		}
		if owned, unbound, err := s.SessionOwnedBy(ctx, id, "alice"); err != nil || !owned || unbound {
			t.Errorf("%s: alice: owned %v, unbound %v, %v", id, owned, unbound, err)
		}
		if at := expiry(id); time.Until(at) < sessionLifetime-time.Minute {
			t.Errorf("%s: alice's use left it expiring at %v", id, at)
		}
	}
	if owned, unbound, err := s.SessionOwnedBy(ctx, "unknown", "mallory"); err != nil || !owned || !unbound {
		t.Errorf("unknown id: owned %v, unbound %v, %v", owned, unbound, err)
	}
	if n := countKeys(t, s.Sessions, ""); n != 2 {
		t.Errorf("%d bindings stored, want 2: presenting an unknown id wrote one", n)
	}
	if ok, err := s.ClaimSession(ctx, "unknown", "mallory"); err != nil || !ok {
		t.Fatalf("claim: %v %v", ok, err)
	}
	if ok, err := s.ClaimSession(ctx, "unknown", "alice"); err != nil || ok {
		t.Errorf("alice claimed mallory's session: %v %v", ok, err)
	}
}
