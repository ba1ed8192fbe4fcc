package storage

import (
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Writes are refused while the disk has less than the reserve free, with
// an error that names the directory, and the store says once when the disk
// fills and once when it has space again.
func TestDiskSpaceRefusesWritesWhileFull(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	free := uint64(100)
	d := diskSpace{dir: "/var/lib/caddy/mcp_auth", reserve: 64, logger: zap.New(core),
		free: func(string) (uint64, bool, error) { return free, true, nil }}
	if err := d.check(); err != nil {
		t.Fatalf("with space: %v", err)
	}
	free = 10
	for range 3 {
		err := d.check()
		if err == nil || !strings.Contains(err.Error(), d.dir) || !strings.Contains(err.Error(), "disk is full") {
			t.Fatalf("on a full disk: %v, want an error naming %s and saying the disk is full", err, d.dir)
		}
	}
	free = 64
	if err := d.check(); err != nil {
		t.Fatalf("with space again: %v", err)
	}
	if n := logs.FilterMessageSnippet("is full").Len(); n != 1 {
		t.Errorf("%d lines say the disk is full, want 1", n)
	}
	if n := logs.FilterMessageSnippet("has space again").Len(); n != 1 {
		t.Errorf("%d lines say the disk has space again, want 1", n)
	}
	for _, e := range logs.All() {
		if e.ContextMap()["dir"] != d.dir {
			t.Errorf("%q does not name the directory: %v", e.Message, e.ContextMap())
		}
	}
}
