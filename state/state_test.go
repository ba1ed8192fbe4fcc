package state

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// storeKinds are the stores the state must work on alike.
var storeKinds = []string{"badger", "redis"}

// openStore opens an empty store of the kind for the test's duration:
// Badger in a temporary directory, or a redis-server of its own.
func openStore(t testing.TB, kind string) storage.Store {
	t.Helper()
	if kind == "badger" {
		return storagetest.Badger(t)
	}
	r, err := storage.OpenRedis(t.Context(), redistest.Start(t), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

// openStores opens the stores of an authorization server over store, for
// the test's duration.
func openStores(t testing.TB, store storage.Store) *Stores {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stores, err := Open(ctx, store, 0, time.Hour, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the store's cleanup, so it runs before it.
	t.Cleanup(func() { cancel(); stores.Revocations.Wait() })
	return stores
}

func countKeys(t testing.TB, st storage.Store, prefix string) int {
	t.Helper()
	n := 0
	if err := st.List(context.Background(), prefix, func(string, []byte) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}
