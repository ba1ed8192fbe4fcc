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

// A store that only listens, as an instance does whose clients all hold
// cached answers, still says when Redis goes away and comes back: a
// Sentinel or Cluster client rides out a failover by retrying commands, so
// its subscription may be the only part that sees it.
func TestRedisOutageLoggedBySubscription(t *testing.T) {
	server := redistest.StartRestartable(t)
	core, logs := observer.New(zap.InfoLevel)
	r, err := storage.OpenRedis(t.Context(), server.URL, "", zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	listening := make(chan bool, 100)
	r.Subscribe(t.Context(), "events", func([]byte) {}, func(up bool) {
		select {
		case listening <- up:
		default:
		}
	})
	waitFor := func(want bool) {
		t.Helper()
		timeout := time.After(10 * time.Second)
		for {
			select {
			case up := <-listening:
				if up == want {
					return
				}
			case <-timeout:
				t.Fatalf("the subscription never reported listening=%v", want)
			}
		}
	}
	waitFor(true)
	lines := func(snippet string) int { return logs.FilterMessageSnippet(snippet).Len() }

	server.Kill()
	waitFor(false)
	if n := lines("Redis unreachable"); n != 1 {
		t.Errorf("%d lines say Redis is unreachable once the subscription lost it, want 1", n)
	}
	server.Restart()
	waitFor(true)
	time.Sleep(3 * storage.NotifierHeartbeat) // pongs must not log again
	if n, m := lines("Redis reachable again"), lines("Redis unreachable"); n != 1 || m != 1 {
		t.Errorf("after the restart: %d lines say reachable again and %d unreachable, want 1 each", n, m)
	}
}
