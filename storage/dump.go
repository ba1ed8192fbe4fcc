package storage

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/version"
)

// Entry is a live entry of a store with its remaining time to live, as
// Dump lists it.
type Entry struct {
	Key   string
	Value []byte
	// TTL is the time the entry has left; zero means it never expires.
	TTL time.Duration
}

// Dumper is a Store that can list every entry with its remaining time to
// live, for backups and moves between backends. Badger and Redis are
// Dumpers.
type Dumper interface {
	Store
	// Dump calls fn for every live entry, in ascending key order, until fn
	// returns an error, which Dump returns.
	Dump(ctx context.Context, fn func(Entry) error) error
}

// Interface guards
var (
	_ Dumper = (*Badger)(nil)
	_ Dumper = (*Redis)(nil)
)

// The dump format: JSON lines. The first line is a header,
//
//	{"format":"caddy-mcp-auth-store","version":1,"schema":1,"written_by":"v1.2.0","exported_at":"2026-12-04T16:00:00Z"}
//
// and each further line one entry, its value in standard base64 and the
// time it had left at exported_at in milliseconds (absent: no expiry):
//
//	{"key":"keys/ring","value":"eyJrZXlzIjpb...","ttl_ms":3600000}
//
// Keys are unique. A reader accepts the dump versions up to its own and
// refuses newer ones, as it refuses a store schema newer than its own.
const (
	dumpFormat = "caddy-mcp-auth-store"

	// DumpVersion is the version of the dump format this build writes.
	DumpVersion = 1

	// maxDumpLine bounds one line of a dump, far above any entry.
	maxDumpLine = 16 << 20
)

// dumpHeader is the first line of a dump.
type dumpHeader struct {
	Format     string    `json:"format"`
	Version    int       `json:"version"`
	Schema     int       `json:"schema"`
	WrittenBy  string    `json:"written_by,omitempty"`
	ExportedAt time.Time `json:"exported_at"`
}

// dumpEntry is a line of a dump after the header.
type dumpEntry struct {
	Key   string `json:"key"`
	Value []byte `json:"value"`
	TTLms int64  `json:"ttl_ms,omitempty"`
}

// Export writes every live entry of store to w in the dump format and
// returns how many it wrote.
func Export(ctx context.Context, store Dumper, w io.Writer) (int, error) {
	header := dumpHeader{Format: dumpFormat, Version: DumpVersion, Schema: SchemaVersion,
		WrittenBy: version.Module(), ExportedAt: time.Now().UTC()}
	n, err := writeDump(w, header, func(fn func(Entry) error) error { return store.Dump(ctx, fn) })
	if err != nil {
		return n, fmt.Errorf("storage: exporting: %w", err)
	}
	return n, nil
}

// writeDump writes header and then each entry that entries hands its
// argument, and returns how many entries it wrote.
func writeDump(w io.Writer, header dumpHeader, entries func(func(Entry) error) error) (int, error) {
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(header); err != nil {
		return 0, err
	}
	n := 0
	err := entries(func(e Entry) error {
		line := dumpEntry{Key: e.Key, Value: e.Value}
		if e.TTL > 0 {
			// Rounded up, so that an entry about to expire is not
			// written as one that never does.
			line.TTLms = int64((e.TTL + time.Millisecond - 1) / time.Millisecond)
		}
		n++
		return enc.Encode(line)
	})
	if err != nil {
		return n, err
	}
	return n, bw.Flush()
}

// Import reads a dump from r into store, which must be empty, and returns
// how many entries it wrote. An entry keeps the deadline it had at export:
// one that has expired since is left out. It refuses a dump of a newer
// format or store schema than this build's before writing anything, but
// an invalid line further on stops it halfway: import into a new store,
// and discard it if Import fails.
func Import(ctx context.Context, store Store, r io.Reader) (int, error) {
	errNotEmpty := errors.New("not empty")
	err := store.List(ctx, "", func(string, []byte) error { return errNotEmpty })
	if errors.Is(err, errNotEmpty) {
		return 0, errors.New("storage: importing: the store is not empty; import into a new store")
	}
	if err != nil {
		return 0, fmt.Errorf("storage: importing: %w", err)
	}
	n := 0
	var exportedAt time.Time
	err = readDump(r, func(h dumpHeader) { exportedAt = h.ExportedAt }, func(e Entry) error {
		ttl := e.TTL
		if ttl > 0 {
			if ttl = time.Until(exportedAt.Add(ttl)); ttl <= 0 {
				return nil // expired since the export
			}
		}
		n++
		return store.Put(ctx, e.Key, e.Value, ttl)
	})
	if err != nil {
		return n, fmt.Errorf("storage: importing: %w", err)
	}
	return n, nil
}

// readDump parses a dump: it hands the header to header, then each entry,
// with the TTL it had at export, to fn.
func readDump(r io.Reader, header func(dumpHeader), fn func(Entry) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxDumpLine)
	if !sc.Scan() {
		if err := sc.Err(); err != nil {
			return err
		}
		return errors.New("empty dump: no header")
	}
	var h dumpHeader
	if err := strictJSON(sc.Bytes(), &h); err != nil || h.Format != dumpFormat {
		return fmt.Errorf("line 1 is not a %s header", dumpFormat)
	}
	switch {
	case h.Version < 1 || h.Schema < 1 || h.ExportedAt.IsZero():
		return errors.New("the header lacks a version, schema or exported_at")
	case h.Version > DumpVersion:
		return fmt.Errorf("the dump has format version %d, written by caddy-mcp-auth %s; this build reads versions up to %d", h.Version, h.WrittenBy, DumpVersion)
	case h.Schema > SchemaVersion:
		return fmt.Errorf("the dump holds a store of schema version %d, written by caddy-mcp-auth %s; this build reads schema versions up to %d", h.Schema, h.WrittenBy, SchemaVersion)
	}
	header(h)
	seen := make(map[string]bool)
	for line := 2; sc.Scan(); line++ {
		var e dumpEntry
		if err := strictJSON(sc.Bytes(), &e); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		switch {
		case !validKey(e.Key):
			return fmt.Errorf("line %d: the key is empty or not printable", line)
		case seen[e.Key]:
			return fmt.Errorf("line %d: the key appears twice", line)
		case e.Value == nil:
			return fmt.Errorf("line %d: no value", line)
		case e.TTLms < 0 || e.TTLms > int64(maxTTL/time.Millisecond):
			return fmt.Errorf("line %d: ttl_ms out of range", line)
		}
		seen[e.Key] = true
		if err := fn(Entry{Key: e.Key, Value: e.Value, TTL: time.Duration(e.TTLms) * time.Millisecond}); err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
	}
	return sc.Err()
}

// maxTTL is the longest TTL a dump may give: a century, far above any
// entry's, and far below what time.Duration holds.
const maxTTL = 100 * 365 * 24 * time.Hour

// strictJSON decodes one JSON object into v, refusing unknown fields and
// anything after it.
func strictJSON(line []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("more than one JSON value")
	}
	return nil
}

// validKey reports whether key can be a Store key: not empty, UTF-8,
// without control characters (the store's own keys begin with one).
func validKey(key string) bool {
	if key == "" || !utf8.ValidString(key) {
		return false
	}
	for _, r := range key {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
