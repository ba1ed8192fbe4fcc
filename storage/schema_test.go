package storage_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
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
	for _, want := range []string{where, "schema version 2 by caddy-mcp-auth v99.0.0", "reads schema version 1 or older", "restore a backup"} {
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
// recorded a schema version (see the entries below): this build reads it
// and records version 1 in it.
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

// testdata/badger-newer-schema records schema version 2, written by a
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

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			r, err := storage.OpenRedis(ctx, url, "fresh:", nil)
			if err == nil {
				err = r.Close()
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent open of a new store: %v", err)
		}
	}
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
