package authserver

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

func openBadger(t testing.TB) *storage.Badger {
	t.Helper()
	db, err := storage.OpenBadger(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

// openState opens the stores of an authorization server over store, for
// the test's duration.
func openState(t testing.TB, store storage.Store) *state.Stores {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stores, err := state.Open(ctx, store, 0, time.Hour, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Registered after the store's cleanup, so it runs before it.
	t.Cleanup(func() { cancel(); stores.Revocations.Wait() })
	return stores
}
