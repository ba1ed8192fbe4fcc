package storage_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

func openBadger(t *testing.T, dir string) *storage.Badger {
	t.Helper()
	b, err := storage.OpenBadger(dir, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("OpenBadger(%q): %v", dir, err)
	}
	return b
}

func TestBadgerContract(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Store {
		b := openBadger(t, t.TempDir())
		t.Cleanup(func() {
			if err := b.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return b
	})
}

func TestBadgerPersistsAcrossReopen(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "nested", "db")

	b := openBadger(t, dir)
	if err := b.Put(ctx, "client/a", []byte("kept"), 0); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "code/b", []byte("kept too"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "code/gone", []byte("x"), time.Hour); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Take(ctx, "code/gone"); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := info.Mode().Perm(); perm != 0o700 {
		t.Errorf("directory mode is %v; want 0700", perm)
	}

	b = openBadger(t, dir)
	defer b.Close()
	for key, want := range map[string]string{"client/a": "kept", "code/b": "kept too"} {
		got, err := b.Get(ctx, key)
		if err != nil || string(got) != want {
			t.Errorf("after reopen, Get(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
	if _, err := b.Get(ctx, "code/gone"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("after reopen, taken key: got %v, want ErrNotFound", err)
	}
}

func TestBadgerLockedDirectory(t *testing.T) {
	dir := t.TempDir()
	b := openBadger(t, dir)
	defer b.Close()

	second, err := storage.OpenBadger(dir, nil)
	if err == nil {
		second.Close()
		t.Fatal("opening an open database a second time succeeded")
	}
	msg := err.Error()
	if !strings.Contains(msg, dir) || !strings.Contains(msg, "reload") {
		t.Errorf("error should name the directory and suggest a reload; got: %v", err)
	}
}

func TestBadgerUncreatableDirectory(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(file, "db")

	b, err := storage.OpenBadger(dir, nil)
	if err == nil {
		b.Close()
		t.Fatal("OpenBadger under a regular file succeeded")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error should name the directory; got: %v", err)
	}

	// A file where the directory should be fails the same way.
	if b, err = storage.OpenBadger(file, nil); err == nil {
		b.Close()
		t.Fatal("OpenBadger on a regular file succeeded")
	} else if !strings.Contains(err.Error(), file) {
		t.Errorf("error should name the path; got: %v", err)
	}
}

func TestBadgerUnreadableDirectory(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores directory permissions")
	}
	dir := filepath.Join(t.TempDir(), "db")
	if err := os.Mkdir(dir, 0o000); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(dir, 0o700) })

	b, err := storage.OpenBadger(dir, nil)
	if err == nil {
		b.Close()
		t.Fatal("OpenBadger on an unreadable directory succeeded")
	}
	if !strings.Contains(err.Error(), dir) {
		t.Errorf("error should name the directory; got: %v", err)
	}
}

func TestBadgerCloseTwice(t *testing.T) {
	b := openBadger(t, t.TempDir())
	if err := b.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// Use after Close must fail, not panic.
	if err := b.Put(context.Background(), "k", []byte("v"), 0); err == nil {
		t.Error("Put after Close succeeded")
	}
}
