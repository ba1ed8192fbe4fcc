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
// open; a build opens a store of its own version or an older one, raises
// the record of an older one to its own, and refuses a newer one, whose
// records it might misread or overwrite. A store never goes down a
// version: once a build has written to it, older builds refuse it.
//
// A store without a record was written before stores had one, in the
// layout of version 1.
//
// Version 2 added what a version 1 build would misread in ways that
// matter to security: the dpop_jkt of grants and of authorization
// requests and codes (a version 1 build would take a DPoP-bound public
// client's refresh token as unbound, so a stolen one would work without
// the key), the upstream token record named by a grant (a version 1
// build revoking the grant would leave the sealed token behind), and the
// key prefixes upstream-token/, upstream-refresh-lock/, id-jag-jti/,
// dpop-proof/ and dpop-nonce-key. Version 1 records read as version 2
// ones without those fields.
const SchemaVersion = 2

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

// schemaAccess is what checkSchema needs of a backend: a read, a
// create-if-missing and a compare-and-swap of a key outside the Store's
// key space.
type schemaAccess interface {
	Get(ctx context.Context, key string) ([]byte, error)
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) error
	Swap(ctx context.Context, key string, old, value []byte, ttl time.Duration) error
}

// checkSchema records SchemaVersion in a store that has no schema record
// yet or one of an older version, and refuses a store whose record names
// a newer version. where names the store in messages.
func checkSchema(ctx context.Context, store schemaAccess, where string) error {
	mine, _ := json.Marshal(schemaRecord{Version: SchemaVersion, WrittenBy: version.Module()})
	// Each write is conditional on what was read, so instances opening the
	// store at once all end on one record; the one that loses reads again.
	// Only a record changed again and again makes this loop more than twice.
	for range 3 {
		raw, err := store.Get(ctx, schemaKey)
		if errors.Is(err, ErrNotFound) {
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
		found, err := compareSchema(raw, where, SchemaVersion)
		if err != nil || found == SchemaVersion {
			return err
		}
		// An older store: raise its record, so that the builds that read
		// only its version, which would misread what this one writes,
		// refuse it from now on.
		err = store.Swap(ctx, schemaKey, raw, mine, 0)
		if errors.Is(err, ErrConflict) || errors.Is(err, ErrNotFound) {
			continue // another instance changed the record meanwhile
		}
		if err != nil {
			return fmt.Errorf("storage: raising the schema version of %s from %d to %d: %w", where, found, SchemaVersion, err)
		}
		return nil
	}
	return fmt.Errorf("storage: the schema record of %s keeps changing", where)
}

// compareSchema returns the version a schema record names, and refuses
// one newer than readable, the version of the build, or a record that is
// not one at all.
func compareSchema(raw []byte, where string, readable int) (int, error) {
	var rec schemaRecord
	if err := json.Unmarshal(raw, &rec); err != nil || rec.Version < 1 {
		return 0, fmt.Errorf("storage: %s has an unreadable schema record: it was not written by caddy-mcp-auth, or is damaged", where)
	}
	if rec.Version > readable {
		writer := rec.WrittenBy
		if writer == "" {
			writer = "(unknown)"
		}
		return 0, fmt.Errorf("storage: %s was written with schema version %d by caddy-mcp-auth %s, "+
			"but this build (caddy-mcp-auth %s) reads schema version %d or older: "+
			"run caddy-mcp-auth %[3]s or newer, or restore a backup taken before the upgrade",
			where, rec.Version, writer, version.Module(), readable)
	}
	return rec.Version, nil
}
