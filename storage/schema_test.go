package storage_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/version"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// newerSchema is a schema record of the version after this build's.
func newerSchema(t *testing.T) []byte {
	t.Helper()
	raw, err := json.Marshal(map[string]any{"version": storage.SchemaVersion + 1, "written_by": "v99.0.0"})
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// assertSchemaRecord checks that s records this build's schema version.
func assertSchemaRecord(t *testing.T, s storage.Store) {
	t.Helper()
	raw, err := s.Get(t.Context(), storage.SchemaKey)
	if err != nil {
		t.Fatalf("schema record: %v", err)
	}
	var rec struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(raw, &rec); err != nil || rec.Version != storage.SchemaVersion {
		t.Fatalf("schema record %s, want version %d", raw, storage.SchemaVersion)
	}
}

// assertNewerRefused checks that err refuses a store of newerSchema with a
// message that names where, both versions and what to do.
func assertNewerRefused(t *testing.T, err error, where string) {
	t.Helper()
	if err == nil {
		t.Fatal("a store written with a newer schema was opened")
	}
	msg := err.Error()
	for _, want := range []string{where, fmt.Sprintf("schema version %d by caddy-mcp-auth v99.0.0", storage.SchemaVersion+1),
		fmt.Sprintf("reads schema version %d or older", storage.SchemaVersion), "restore a backup"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
}

// copyFixture copies a committed store directory to a temporary one, as
// opening a store writes to it.
func copyFixture(t *testing.T, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dir, os.DirFS(filepath.Join("testdata", name))); err != nil {
		t.Fatal(err)
	}
	return dir
}

// testdata/badger-unversioned was written by the release before stores
// recorded a schema version (see the entries below), in the layout of
// version 1: this build reads it and records its own version in it.
func TestBadgerReadsStoreWithoutSchemaRecord(t *testing.T) {
	dir := copyFixture(t, "badger-unversioned")
	want := []string{
		`keys/ring={"keys":["fixture"]}`,
		`site/0123456789abcdef/client/fixture-client={"client_id":"fixture-client"}`,
		"", // the counter, below
		`site/0123456789abcdef/grant/fixture-grant={"id":"fixture-grant"}`,
		// site/0123456789abcdef/code/expired expired long ago.
	}
	for pass := range 2 { // the second time with the record written
		// The counter counts on from the fixture's 1.
		want[2] = fmt.Sprintf("site/0123456789abcdef/count/fixture=%d", 1+pass)
		b, err := storage.OpenBadger(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if err := b.List(t.Context(), "", func(k string, v []byte) error {
			got = append(got, k+"="+string(v))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("fixture lists\n%q\nwant\n%q", got, want)
		}
		if n, err := b.Increment(t.Context(), "site/0123456789abcdef/count/fixture", 0); err != nil || n != int64(2+pass) {
			t.Errorf("Increment of the fixture's counter = %d, %v", n, err)
		}
		assertSchemaRecord(t, b)
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// testdata/badger-newer-schema records schema version 3, written by a
// future release.
func TestBadgerRefusesNewerSchema(t *testing.T) {
	dir := copyFixture(t, "badger-newer-schema")
	// Refused each time: the refusal closes the database again.
	for range 2 {
		_, err := storage.OpenBadger(dir, nil)
		assertNewerRefused(t, err, dir)
	}
}

func TestBadgerRefusesUnreadableSchema(t *testing.T) {
	for _, bad := range []string{`not json`, `{"version":0}`, `{"version":"1"}`, `{}`} {
		dir := t.TempDir()
		b, err := storage.OpenBadger(dir, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := b.Put(t.Context(), storage.SchemaKey, []byte(bad), 0); err != nil {
			t.Fatal(err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = storage.OpenBadger(dir, nil)
		if err == nil || !strings.Contains(err.Error(), "unreadable schema record") {
			t.Errorf("record %s: %v, want an unreadable schema record", bad, err)
		}
	}
}

// A Redis store written before stores recorded a schema version holds
// plain strings under the prefix; this build reads them and records its
// version. Instances opening a new store at once agree on one record.
func TestRedisReadsStoreWithoutSchemaRecord(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	raw := rawClient(t, url)
	if err := raw.Set(ctx, storage.DefaultRedisPrefix+"keys/ring", `{"keys":["fixture"]}`, 0).Err(); err != nil {
		t.Fatal(err)
	}
	s := openRedis(t, url, "")
	if v, err := s.Get(ctx, "keys/ring"); err != nil || string(v) != `{"keys":["fixture"]}` {
		t.Fatalf("Get = %q, %v", v, err)
	}
	assertSchemaRecord(t, s)
	if got := listKeys(t, s, ""); !slices.Equal(got, []string{"keys/ring"}) {
		t.Errorf("List = %q: the schema record is not a Store entry", got)
	}

	openAtOnce(t, 8, func() error {
		r, err := storage.OpenRedis(ctx, url, "fresh:", nil)
		if err == nil {
			err = r.Close()
		}
		return err
	})
}

func TestRedisRefusesNewerSchema(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	if err := rawClient(t, url).Set(ctx, "newer:"+storage.SchemaKey, newerSchema(t), 0).Err(); err != nil {
		t.Fatal(err)
	}
	_, err := storage.OpenRedis(ctx, url, "newer:", nil)
	assertNewerRefused(t, err, `prefix "newer:"`)
	// Another prefix is another store.
	if r, err := storage.OpenRedis(ctx, url, "older:", nil); err != nil {
		t.Errorf("store under another prefix: %v", err)
	} else {
		r.Close()
	}
}

// version1Schema is the schema record a build of schema version 1 wrote.
const version1Schema = `{"version":1,"written_by":"v1.0.0"}`

// assertRefusedByVersion1 checks that a build reading only schema version
// 1 refuses s now, naming both versions.
func assertRefusedByVersion1(t *testing.T, s storage.Store, where string) {
	t.Helper()
	raw, err := s.Get(t.Context(), storage.SchemaKey)
	if err != nil {
		t.Fatal(err)
	}
	err = storage.CompareSchema(raw, where, 1)
	if err == nil {
		t.Fatalf("a build of schema version 1 would open the store, whose record is %s", raw)
	}
	for _, want := range []string{where, fmt.Sprintf("written with schema version %d by caddy-mcp-auth %s", storage.SchemaVersion, version.Module()),
		"reads schema version 1 or older"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// Before the raise, the same build read the record.
	if err := storage.CompareSchema([]byte(version1Schema), where, 1); err != nil {
		t.Errorf("a version 1 record refused by a version 1 build: %v", err)
	}
}

// openAtOnce runs open n times at once, as n instances opening a store,
// and fails on any error.
func openAtOnce(t *testing.T, n int, open func() error) {
	t.Helper()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() { errs <- open() })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("instances opening a store at once: %v", err)
		}
	}
}

// openRaisingSchema runs the schema check of n instances opening s at once.
func openRaisingSchema(t *testing.T, s storage.Store, n int) {
	t.Helper()
	openAtOnce(t, n, func() error { return storage.CheckSchema(t.Context(), s, "store") })
}

// A Badger store of schema version 1 opened by this build is raised to
// this build's version, entries untouched, after which a version 1 build
// refuses it; a store without a record (above) is raised the same way.
func TestBadgerRaisesVersion1Schema(t *testing.T) {
	dir := t.TempDir()
	b, err := storage.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := b.Put(ctx, storage.SchemaKey, []byte(version1Schema), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "site/a/grant/1", []byte(`{"id":"1"}`), 0); err != nil {
		t.Fatal(err)
	}
	// Instances opening at once: only one process opens a Badger
	// directory, so they are checks on one open database.
	openRaisingSchema(t, b, 8)
	assertSchemaRecord(t, b)
	if err := b.Put(ctx, storage.SchemaKey, []byte(version1Schema), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b, err = storage.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	assertSchemaRecord(t, b)
	if v, err := b.Get(ctx, "site/a/grant/1"); err != nil || string(v) != `{"id":"1"}` {
		t.Errorf("grant after the raise = %q, %v", v, err)
	}
	assertRefusedByVersion1(t, b, dir)
}

// Instances opening a Redis store of schema version 1 at once all open it
// and leave one record of this build's version, which a version 1 build
// refuses.
func TestRedisRaisesVersion1Schema(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	raw := rawClient(t, url)
	if err := raw.Set(ctx, "old:"+storage.SchemaKey, version1Schema, 0).Err(); err != nil {
		t.Fatal(err)
	}
	openAtOnce(t, 8, func() error {
		r, err := storage.OpenRedis(ctx, url, "old:", nil)
		if err == nil {
			err = r.Close()
		}
		return err
	})
	s := openRedis(t, url, "old:")
	assertSchemaRecord(t, s)
	assertRefusedByVersion1(t, s, `prefix "old:"`)

	// The same through the check alone, so that the instances race on the
	// record rather than on connecting.
	if err := raw.Set(ctx, "old:"+storage.SchemaKey, version1Schema, 0).Err(); err != nil {
		t.Fatal(err)
	}
	openRaisingSchema(t, s, 8)
	assertSchemaRecord(t, s)
}

// A build never lowers a record: one of its own version or of a newer one
// is left as it is.
func TestSchemaRecordNeverGoesDown(t *testing.T) {
	b, err := storage.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx := t.Context()
	before, err := b.Get(ctx, storage.SchemaKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := storage.CheckSchema(ctx, b, "store"); err != nil {
		t.Fatal(err)
	}
	if after, err := b.Get(ctx, storage.SchemaKey); err != nil || !bytes.Equal(after, before) {
		t.Errorf("record of this build's version rewritten: %s, %v", after, err)
	}
	newer := newerSchema(t)
	if err := b.Put(ctx, storage.SchemaKey, newer, 0); err != nil {
		t.Fatal(err)
	}
	assertNewerRefused(t, storage.CheckSchema(ctx, b, "store"), "store")
	if after, err := b.Get(ctx, storage.SchemaKey); err != nil || !bytes.Equal(after, newer) {
		t.Errorf("newer record changed to %s, %v", after, err)
	}
}
