package storage_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// dumpEntries lists what Dump gives, with TTLs rounded to the second so
// that stores can be compared.
func dumpEntries(t *testing.T, s storage.Dumper) []string {
	t.Helper()
	var out []string
	if err := s.Dump(t.Context(), func(e storage.Entry) error {
		out = append(out, fmt.Sprintf("%s=%q ttl=%v", e.Key, e.Value, e.TTL.Round(time.Minute)))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A store moves from Badger to Redis and back through the dump format:
// every live entry arrives with its value and deadline, expired ones do
// not, and the store's own schema record is not an entry.
func TestExportImportBadgerRedisAndBack(t *testing.T) {
	ctx := t.Context()
	src, err := storage.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	for key, ttl := range map[string]time.Duration{
		"keys/ring": 0, "site/a/client/1": 0, "site/a/grant/1": time.Hour,
		"site/a/code/1": 10 * time.Minute, "site/a/code/expiring": 50 * time.Millisecond,
	} {
		if err := src.Put(ctx, key, []byte("value of "+key), ttl); err != nil {
			t.Fatal(err)
		}
	}
	if err := src.Put(ctx, "site/a/binary", []byte{0, 1, 0xff, '\n'}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Increment(ctx, "site/a/count/1", time.Hour); err != nil {
		t.Fatal(err)
	}
	var dump bytes.Buffer
	if _, err := storage.Export(ctx, src, &dump); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the expiring code expires in transit
	want := dumpEntries(t, src)
	if len(want) != 6 {
		t.Fatalf("source holds %q", want)
	}

	url := redistest.Start(t)
	dst := openRedis(t, url, "moved:")
	if n, err := storage.Import(ctx, dst, bytes.NewReader(dump.Bytes())); err != nil || n != 6 {
		t.Fatalf("Import into Redis = %d, %v", n, err)
	}
	if got := dumpEntries(t, dst); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Redis holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if n, err := dst.Increment(ctx, "site/a/count/1", time.Hour); err != nil || n != 2 {
		t.Errorf("imported counter counts on to %d, %v", n, err)
	}

	// And back into a new Badger database.
	dump.Reset()
	if _, err := storage.Export(ctx, dst, &dump); err != nil {
		t.Fatal(err)
	}
	back, err := storage.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer back.Close()
	if _, err := storage.Import(ctx, back, bytes.NewReader(dump.Bytes())); err != nil {
		t.Fatal(err)
	}
	for i, w := range want { // the counter counted once more
		want[i] = strings.Replace(w, `count/1="1"`, `count/1="2"`, 1)
	}
	if got := dumpEntries(t, back); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("Badger holds\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	// A store that holds anything is not overwritten.
	if _, err := storage.Import(ctx, back, bytes.NewReader(dump.Bytes())); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Import into a full store: %v", err)
	}
}

// Dumps of a newer format or store schema, and malformed ones, are refused
// before anything is written.
func TestImportRefusesNewerAndMalformedDumps(t *testing.T) {
	header := func(version, schema int) string {
		h, _ := json.Marshal(map[string]any{"format": "caddy-mcp-auth-store", "version": version,
			"schema": schema, "written_by": "v99.0.0", "exported_at": time.Now()})
		return string(h) + "\n"
	}
	entry := `{"key":"k","value":"dg=="}` + "\n"
	newerSchema := fmt.Sprintf("schema version %d, written by caddy-mcp-auth v99.0.0; this build reads schema versions up to %d",
		storage.SchemaVersion+1, storage.SchemaVersion)
	for name, tc := range map[string]struct{ dump, want string }{
		"newer format":    {header(storage.DumpVersion+1, 1) + entry, "format version 2, written by caddy-mcp-auth v99.0.0; this build reads versions up to 1"},
		"newer schema":    {header(1, storage.SchemaVersion+1) + entry, newerSchema},
		"no header":       {entry, "not a caddy-mcp-auth-store header"},
		"empty":           {"", "no header"},
		"internal key":    {header(1, 1) + `{"key":"\u0000schema","value":"dg=="}` + "\n", "not printable"},
		"duplicate key":   {header(1, 1) + entry + entry, "line 3: the key appears twice"},
		"negative ttl":    {header(1, 1) + `{"key":"k","value":"dg==","ttl_ms":-1}` + "\n", "ttl_ms"},
		"unknown field":   {header(1, 1) + `{"key":"k","value":"dg==","expires":1}` + "\n", "unknown field"},
		"bad base64":      {header(1, 1) + `{"key":"k","value":"!!"}` + "\n", "line 2"},
		"no value":        {header(1, 1) + `{"key":"k"}` + "\n", "no value"},
		"trailing values": {header(1, 1) + `{"key":"k","value":"dg=="} {}` + "\n", "more than one"},
	} {
		t.Run(name, func(t *testing.T) {
			s, err := storage.OpenBadger(t.TempDir(), nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			_, err = storage.Import(t.Context(), s, strings.NewReader(tc.dump))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Import: %v, want an error saying %q", err, tc.want)
			}
		})
	}
}

// A dump taken from a store of schema version 1, before the record fields
// of version 2, restores into this build's stores, whose record stays
// this build's version.
func TestImportSchemaVersion1Dump(t *testing.T) {
	ctx := t.Context()
	dump := `{"format":"caddy-mcp-auth-store","version":1,"schema":1,"written_by":"v1.0.0","exported_at":"` +
		time.Now().UTC().Format(time.RFC3339) + `"}` + "\n" +
		`{"key":"site/a/grant/1","value":"eyJpZCI6IjEifQ==","ttl_ms":3600000}` + "\n"
	badger, err := storage.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer badger.Close()
	for _, s := range []storage.Store{badger, openRedis(t, redistest.Start(t), "restored:")} {
		if n, err := storage.Import(ctx, s, strings.NewReader(dump)); err != nil || n != 1 {
			t.Fatalf("Import of a version 1 dump = %d, %v", n, err)
		}
		if v, err := s.Get(ctx, "site/a/grant/1"); err != nil || string(v) != `{"id":"1"}` {
			t.Errorf("restored grant = %q, %v", v, err)
		}
		assertSchemaRecord(t, s)
	}
}
