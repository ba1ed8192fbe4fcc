package storage

import (
	"bytes"
	"slices"
	"testing"
)

// FuzzReadDump checks that whatever readDump accepts has unique, valid keys
// and TTLs in range, and survives a round trip: written back with
// writeDump, it reads as the same header and entries.
func FuzzReadDump(f *testing.F) {
	header := `{"format":"caddy-mcp-auth-store","version":1,"schema":1,"written_by":"v1.0.0","exported_at":"2026-12-04T16:00:00Z"}` + "\n"
	f.Add([]byte(header))
	f.Add([]byte(header + `{"key":"keys/ring","value":"cmluZw=="}` + "\n" + `{"key":"site/a/code/1","value":"","ttl_ms":600000}` + "\n"))
	f.Add([]byte(header + `{"key":"k","value":"dg=="}` + "\n" + `{"key":"k","value":"dg=="}` + "\n"))
	f.Add([]byte(header + `{"key":"\u0000schema","value":"dg=="}`))
	f.Add([]byte(`{"format":"caddy-mcp-auth-store","version":2,"schema":1,"exported_at":"2026-12-04T16:00:00+01:00"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		h, entries, err := readAll(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range entries {
			if !validKey(e.Key) || seen[e.Key] || e.Value == nil || e.TTL < 0 || e.TTL > maxTTL {
				t.Fatalf("accepted entry %+v", e)
			}
			seen[e.Key] = true
		}
		if h.Version > DumpVersion || h.Schema > SchemaVersion {
			t.Fatalf("accepted header %+v", h)
		}
		var again bytes.Buffer
		if _, err := writeDump(&again, h, func(fn func(Entry) error) error {
			for _, e := range entries {
				if err := fn(e); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		h2, entries2, err := readAll(again.Bytes())
		if err != nil {
			t.Fatalf("rewritten dump refused: %v\n%s", err, again.Bytes())
		}
		if !h2.ExportedAt.Equal(h.ExportedAt) || h2.Version != h.Version || h2.Schema != h.Schema || h2.WrittenBy != h.WrittenBy {
			t.Fatalf("header %+v became %+v", h, h2)
		}
		if !slices.EqualFunc(entries, entries2, func(a, b Entry) bool {
			return a.Key == b.Key && bytes.Equal(a.Value, b.Value) && a.TTL == b.TTL
		}) {
			t.Fatalf("entries %+v became %+v", entries, entries2)
		}
	})
}

func readAll(data []byte) (dumpHeader, []Entry, error) {
	var h dumpHeader
	var entries []Entry
	err := readDump(bytes.NewReader(data), func(got dumpHeader) { h = got }, func(e Entry) error {
		entries = append(entries, e)
		return nil
	})
	return h, entries, err
}
