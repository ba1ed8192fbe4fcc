// Package storetest opens stores for tests: a Badger database in the
// test's temporary directory, closed when the test ends.
package storetest

import (
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Badger opens a Badger database for the test's duration.
func Badger(t testing.TB) *storage.Badger {
	t.Helper()
	db, err := storage.OpenBadger(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
