package state

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

func newDenied(t testing.TB, store storage.Store, bound time.Duration) *Revocations {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	d, err := newRevocations(ctx, store, bound, time.Hour, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the store's cleanup, so it runs before it.
	t.Cleanup(func() { cancel(); d.Wait() })
	return d
}

func wantRevoked(t *testing.T, d *Revocations, jti string, want bool) {
	t.Helper()
	if got, err := d.Revoked(jti); err != nil || got != want {
		t.Errorf("Revoked(%q) = %v, %v; want %v", jti, got, err, want)
	}
}

func TestDeniedTokensLoadedKeptAndShared(t *testing.T) {
	db := storagetest.Badger(t)
	site := storage.Prefixed(db, "site/a/")
	ctx := context.Background()
	// Recorded by an older release, without its expiry.
	if err := site.Put(ctx, keyDenied+"old", nil, time.Hour); err != nil {
		t.Fatal(err)
	}
	// Another site's revocation is not this one's.
	other := newDenied(t, storage.Prefixed(db, "site/b/"), 0)
	if err := other.deny(ctx, "elsewhere", time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	first, second := newDenied(t, site, 0), newDenied(t, site, 0)
	wantRevoked(t, first, "old", true)
	wantRevoked(t, first, "elsewhere", false)

	if err := first.deny(ctx, "new", time.Now().Add(time.Hour).Unix()); err != nil {
		t.Fatal(err)
	}
	// The other set of the same key space (a config being replaced by a
	// reload) hears of it before deny returns.
	wantRevoked(t, second, "new", true)
	wantRevoked(t, newDenied(t, site, 0), "new", true)
	// Expired tokens need no denial, and are not kept.
	if err := first.deny(ctx, "expired", time.Now().Add(-time.Second).Unix()); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, first, "expired", false)
}

func TestDeniedTokensFullFailsClosed(t *testing.T) {
	db := storagetest.Badger(t)
	d := newDenied(t, db, 0)
	d.mu.Lock()
	d.limit = 2
	d.mu.Unlock()
	ctx := context.Background()
	for _, jti := range []string{"a", "b", "c"} {
		if err := d.deny(ctx, jti, time.Now().Add(time.Hour).Unix()); err != nil {
			t.Fatal(err)
		}
	}
	for _, jti := range []string{"a", "c", "unknown"} {
		if _, err := d.Revoked(jti); !errors.Is(err, errDeniedFull) {
			t.Errorf("Revoked(%q) with more revocations than the set holds: %v, want it to fail", jti, err)
		}
	}
	// Reading the store again does not forget the excess either.
	if err := d.reconcile(ctx); !errors.Is(err, errDeniedFull) {
		t.Errorf("reconcile: %v", err)
	}
	if _, err := d.Revoked("unknown"); !errors.Is(err, errDeniedFull) {
		t.Errorf("after reconcile: %v, want it to fail", err)
	}
	// Room again: the set is whole and trusted.
	d.mu.Lock()
	d.limit = 3
	d.mu.Unlock()
	if err := d.reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	wantRevoked(t, d, "c", true)
	wantRevoked(t, d, "unknown", false)
}

// unreachable is a store whose List fails while down is set, and that has
// no notifier: only reading it vouches for the set.
type unreachable struct {
	storage.Store
	down atomic.Bool
}

func (u *unreachable) List(ctx context.Context, prefix string, fn func(string, []byte) error) error {
	if u.down.Load() {
		return errors.New("connection refused")
	}
	return u.Store.List(ctx, prefix, fn)
}

func TestDeniedTokensStaleFailsClosed(t *testing.T) {
	store := &unreachable{Store: storagetest.Badger(t)}
	const bound = 100 * time.Millisecond
	d := newDenied(t, store, bound)
	wantRevoked(t, d, "x", false)
	store.down.Store(true)
	time.Sleep(bound + 20*time.Millisecond)
	if _, err := d.Revoked("x"); !errors.Is(err, errDeniedStale) {
		t.Errorf("Revoked with the store out of reach for longer than the bound: %v, want it to fail", err)
	}
	store.down.Store(false)
	deadline := time.Now().Add(time.Second) // it reads the store twice per bound
	for {
		if _, err := d.Revoked("x"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the set did not recover once the store was back")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestDeniedTokensIgnoresUnreadableNotification(t *testing.T) {
	d := newDenied(t, storagetest.Badger(t), 0)
	for _, m := range []string{"", " 123", "jti", "jti x", "jti 1 2"} {
		d.onMessage([]byte(m))
	}
	wantRevoked(t, d, "jti", false)
	wantRevoked(t, d, "", false)
}

// A notification names one revoked token and until when: any other
// message changes nothing, and one that reads so denies exactly that
// token, for exactly that long, however its bytes are spelled.
func FuzzDeniedTokensMessage(f *testing.F) {
	later := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
	for _, seed := range []string{"jti " + later, "jti 1", "jti", " " + later, "a b c", "jti +" + later, "jti -1", "jti 0x10", "é " + later, "jti  " + later, ""} {
		f.Add(seed)
	}
	d := newDenied(f, storagetest.Badger(f), 0)
	size := func() int {
		d.mu.RLock()
		defer d.mu.RUnlock()
		return len(d.until)
	}
	f.Fuzz(func(t *testing.T, message string) {
		before := size()
		// The reference reading: "<jti> <Unix seconds>", split at the first space.
		jti, value, _ := strings.Cut(message, " ")
		until, err := strconv.ParseInt(value, 10, 64)
		readable := jti != "" && err == nil
		var wasRevoked bool
		if readable {
			wasRevoked, _ = d.Revoked(jti)
		}
		d.onMessage([]byte(message))
		if !readable {
			if after := size(); after > before { // expired ones may go meanwhile
				t.Fatalf("unreadable message %q grew the set from %d to %d tokens", message, before, after)
			}
			return
		}
		revoked, err := d.Revoked(jti)
		if err != nil {
			t.Fatal(err)
		}
		if want := wasRevoked || time.Now().Unix() < until; revoked != want {
			t.Fatalf("message %q: revoked %v, want %v", message, revoked, want)
		}
	})
}
