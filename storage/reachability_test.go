package storage_test

import (
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Redis killed under concurrent requests and started again: the store
// says once that Redis is unreachable, however many requests fail, and
// once that it is reachable again, and works again without being opened
// anew.
func TestRedisOutageLoggedOncePerTransition(t *testing.T) {
	server := redistest.StartRestartable(t)
	core, logs := observer.New(zap.InfoLevel)
	r, err := storage.OpenRedis(t.Context(), server.URL, "", zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	ctx := t.Context()
	if err := r.Put(ctx, "grant/1", []byte("kept"), time.Hour); err != nil {
		t.Fatal(err)
	}

	server.Kill()
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if _, err := r.Get(ctx, "grant/1"); err == nil {
				t.Error("a read succeeded with Redis killed")
			}
		})
	}
	wg.Wait()
	if n := logs.FilterMessageSnippet("Redis unreachable").Len(); n != 1 {
		t.Errorf("%d lines say Redis is unreachable after 20 failed reads, want 1", n)
	}

	server.Restart()
	deadline := time.Now().Add(10 * time.Second)
	for {
		value, err := r.Get(ctx, "grant/1")
		if err == nil {
			if string(value) != "kept" {
				t.Fatalf("after the restart: %q", value)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the store does not recover after Redis restarted: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for range 20 {
		if _, err := r.Get(ctx, "grant/1"); err != nil {
			t.Fatal(err)
		}
	}
	if n := logs.FilterMessage("Redis reachable again").Len(); n != 1 {
		t.Errorf("%d lines say Redis is reachable again, want 1", n)
	}
	if n := logs.FilterMessageSnippet("Redis unreachable").Len(); n != 1 {
		t.Errorf("%d lines say Redis is unreachable after it came back, want 1", n)
	}
	for _, e := range logs.All() {
		t.Logf("%s %v", e.Message, e.ContextMap())
	}
}
