package state

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

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
