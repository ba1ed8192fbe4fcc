//go:build linux

package storage_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/disktest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// A Badger store on a disk that fills up under a stream of writes: the
// writes fail with an error naming the directory, rather than Badger
// writing into a memory-mapped file the disk has no room for, which kills
// the process (SIGBUS); once space is freed, writes work again, and after
// a reopen every acknowledged entry is there.
func TestBadgerDiskFull(t *testing.T) {
	disk := disktest.Mount(t, 96<<20)
	dir := filepath.Join(disk.Dir, "badger")
	db, err := storage.OpenBadger(dir, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	acked := 0
	put := func() error {
		value := make([]byte, 1000)
		_, _ = rand.Read(value) // as tokens are: nothing to compress away
		err := db.Put(ctx, fmt.Sprintf("grant/%06d", acked), value, 0)
		if err == nil {
			acked++
		}
		return err
	}
	for range 1000 {
		if err := put(); err != nil {
			t.Fatal(err)
		}
	}

	// A little above what the store keeps free: some writes still fit.
	disk.Fill(68 << 20)
	// Enough writes to fill the disk: 100 MB.
	var refused error
	for range 100_000 {
		if refused = put(); refused != nil {
			break
		}
	}
	if refused == nil || !strings.Contains(refused.Error(), dir) || !strings.Contains(refused.Error(), "disk is full") {
		t.Fatalf("writing to a full disk: %v, want an error naming %s and saying the disk is full", refused, dir)
	}
	if _, err := db.Get(ctx, "grant/000000"); err != nil {
		t.Errorf("reading while the disk is full: %v", err)
	}

	disk.Unfill()
	for range 100 {
		if err := put(); err != nil {
			t.Fatalf("after space was freed: %v", err)
		}
	}
	closed := make(chan error, 1)
	go func() { closed <- db.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(storage.CloseTimeout + 5*time.Second):
		t.Fatal("closing did not finish")
	}

	db, err = storage.OpenBadger(dir, zap.NewNop())
	if err != nil {
		t.Fatalf("reopening: %v", err)
	}
	defer db.Close()
	for i := range acked {
		if _, err := db.Get(ctx, fmt.Sprintf("grant/%06d", i)); err != nil {
			t.Fatalf("acknowledged entry %d of %d after the reopen: %v", i, acked, err)
		}
	}
	if _, err := db.Get(ctx, fmt.Sprintf("grant/%06d", acked)); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("the refused write is there: %v", err)
	}
	t.Logf("%d entries acknowledged, all there after the reopen", acked)
}
