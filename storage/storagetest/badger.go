package storagetest

import (
	"testing"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Badger opens a Badger database in the test's temporary directory, for
// the tests of packages that store through a storage.Store; it is closed
// when the test ends.
func Badger(t testing.TB) *storage.Badger {
	t.Helper()
	db, err := storage.OpenBadger(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}
