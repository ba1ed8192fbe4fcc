package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/version"
)

// SchemaVersion is the version of the layout of keys and values that this
// build writes. A store records the version it was written with at first
// open; a build opens a store of its own version or an older one, and
// refuses a newer one, whose records it might misread or overwrite.
//
// A store without a record was written before stores had one, in the
// layout of version 1.
const SchemaVersion = 1

// schemaKey holds a store's schema record. It is no Store key, as those are
// printable, so no caller can name it, and List skips it.
const schemaKey = "\x00schema"

// isInternalKey reports whether a backend key is the store's own rather
// than a Store key.
func isInternalKey(key string) bool { return len(key) > 0 && key[0] == 0 }

// schemaRecord is the value under schemaKey.
type schemaRecord struct {
	// Version is the store's SchemaVersion.
	Version int `json:"version"`
	// WrittenBy is the module version of the build that wrote the record,
	// for messages.
	WrittenBy string `json:"written_by,omitempty"`
}

// schemaAccess is what checkSchema needs of a backend: a read and a
// create-if-missing of a key outside the Store's key space.
type schemaAccess interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) error
}

// checkSchema records SchemaVersion in a store that has no schema record
// yet, and refuses a store whose record names a newer version. where names
// the store in messages.
func checkSchema(ctx context.Context, store schemaAccess, where string) error {
	// Only a record deleted again and again makes this loop more than twice.
	for range 3 {
		raw, err := store.Get(ctx, schemaKey)
		if errors.Is(err, ErrNotFound) {
			mine, _ := json.Marshal(schemaRecord{Version: SchemaVersion, WrittenBy: version.Module()})
			err = store.Create(ctx, schemaKey, mine, 0)
			if errors.Is(err, ErrConflict) {
				continue // another instance opening the store at once wrote it
			}
			if err != nil {
				return fmt.Errorf("storage: recording schema version in %s: %w", where, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("storage: reading schema version of %s: %w", where, err)
		}
		return compareSchema(raw, where)
	}
	return fmt.Errorf("storage: the schema record of %s keeps disappearing", where)
}

// compareSchema refuses a schema record that names a version newer than
// SchemaVersion, or that is not a record at all.
func compareSchema(raw []byte, where string) error {
	var rec schemaRecord
	if err := json.Unmarshal(raw, &rec); err != nil || rec.Version < 1 {
		return fmt.Errorf("storage: %s has an unreadable schema record: it was not written by caddy-mcp-auth, or is damaged", where)
	}
	if rec.Version > SchemaVersion {
		writer := rec.WrittenBy
		if writer == "" {
			writer = "(unknown)"
		}
		return fmt.Errorf("storage: %s was written with schema version %d by caddy-mcp-auth %s, "+
			"but this build (caddy-mcp-auth %s) reads schema version %d or older: "+
			"run caddy-mcp-auth %[3]s or newer, or restore a backup taken before the upgrade",
			where, rec.Version, writer, version.Module(), SchemaVersion)
	}
	return nil
}
