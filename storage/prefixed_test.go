package storage_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

func TestPrefixedContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		b := openBadger(t, t.TempDir())
		t.Cleanup(func() { _ = b.Close() })
		// A neighbour with a prefix that shares a beginning must stay
		// invisible to the suite.
		if err := b.Put(context.Background(), "site/ab/k/neighbour", []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		return storage.Prefixed(b, "site/a/")
	})
}

// FuzzPrefixedIsolation writes a key through one prefixed view and checks
// that it lands at exactly prefix+key underneath, that the view lists it
// back under its own name, and that a view with another prefix can neither
// read, list, take, swap nor delete it.
func FuzzPrefixedIsolation(f *testing.F) {
	f.Add("site/a/", "site/b/", "client/x", "")
	f.Add("site/a/", "site/ab/", "client/x", "client/")
	f.Add("site/a/", "site/", "a/client/x", "a/")
	f.Add("site/0123456789abcdef/", "site/fedcba9876543210/", "grant/\x00\xff", "grant/")
	// Not openBadger: its test logger must not be called from the fuzz
	// function.
	b, err := storage.OpenBadger(f.TempDir(), zap.NewNop())
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = b.Close() })
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, prefixA, prefixB, key, listPrefix string) {
		// Views are separate when neither prefix begins the other, which
		// is what Prefixed asks of its callers. Store keys are printable:
		// a key that begins with NUL is the store's own, which List skips.
		if prefixA == "" || prefixB == "" || strings.HasPrefix(prefixA, prefixB) || strings.HasPrefix(prefixB, prefixA) || key == "" ||
			prefixA[0] == 0 || prefixB[0] == 0 {
			t.Skip()
		}
		a, other := storage.Prefixed(b, prefixA), storage.Prefixed(b, prefixB)
		value := []byte("value of " + key)
		if err := a.Put(ctx, key, value, 0); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = b.Delete(ctx, prefixA+key) })
		if raw, err := b.Get(ctx, prefixA+key); err != nil || string(raw) != string(value) {
			t.Fatalf("underlying key %q: %q %v", prefixA+key, raw, err)
		}
		var listed []string
		if err := a.List(ctx, listPrefix, func(k string, _ []byte) error {
			listed = append(listed, k)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if want := strings.HasPrefix(key, listPrefix); slices.Contains(listed, key) != want {
			t.Fatalf("List(%q) = %q; lists %q: %v", listPrefix, listed, key, want)
		}
		if _, err := other.Get(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("another view reads %q: %v", key, err)
		}
		if err := other.List(ctx, "", func(k string, _ []byte) error {
			if prefixB+k == prefixA+key {
				t.Fatalf("another view lists %q", key)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if _, err := other.Take(ctx, key); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("another view takes %q: %v", key, err)
		}
		if err := other.Swap(ctx, key, value, []byte("stolen"), 0); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("another view swaps %q: %v", key, err)
		}
		if err := other.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
		if raw, err := a.Get(ctx, key); err != nil || string(raw) != string(value) {
			t.Fatalf("after another view's writes: %q %v", raw, err)
		}
	})
}
