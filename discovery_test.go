package mcpauth

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// fakeProvider is a discovered provider, told apart by its name.
type fakeProvider struct {
	upstream.Redirector
	name string
}

func TestDiscoveryRunsOnceAndOutlivesItsCallers(t *testing.T) {
	var attempts atomic.Int32
	release := make(chan struct{})
	d := newDiscovered("oidc", time.Hour, func(ctx context.Context) (upstream.Redirector, error) {
		attempts.Add(1)
		select {
		case <-release:
			return fakeProvider{name: "first"}, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	})
	// A caller that gives up gets its own error, and leaves none behind.
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := d.get(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled caller: %v", err)
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if p, err := d.get(context.Background()); err != nil || p.(fakeProvider).name != "first" {
				t.Errorf("waiting caller: %v %v", p, err)
			}
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	if n := attempts.Load(); n != 1 {
		t.Errorf("%d discovery attempts for 11 callers, want 1", n)
	}
}

func TestDiscoveryRefreshesInTheBackground(t *testing.T) {
	var attempts atomic.Int32
	fail := atomic.Bool{}
	d := newDiscovered("oidc", 20*time.Millisecond, func(context.Context) (upstream.Redirector, error) {
		n := attempts.Add(1)
		if fail.Load() {
			return nil, errors.New("provider down")
		}
		return fakeProvider{name: string(rune('0' + n))}, nil
	})
	if p, err := d.get(context.Background()); err != nil || p.(fakeProvider).name != "1" {
		t.Fatalf("first discovery: %v %v", p, err)
	}
	time.Sleep(30 * time.Millisecond)
	// Stale: served at once, refreshed behind.
	if p, _ := d.get(context.Background()); p.(fakeProvider).name != "1" {
		t.Errorf("stale provider not served while refreshing: %v", p)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p, _ := d.get(context.Background()); p.(fakeProvider).name == "2" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the provider was not refreshed")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A failed refresh keeps the provider it has, and is not retried on
	// every request.
	fail.Store(true)
	time.Sleep(30 * time.Millisecond)
	before := attempts.Load()
	for range 50 {
		if p, err := d.get(context.Background()); err != nil || p.(fakeProvider).name != "2" {
			t.Fatalf("after a failed refresh: %v %v", p, err)
		}
		time.Sleep(time.Millisecond)
	}
	if n := attempts.Load() - before; n > 1 {
		t.Errorf("%d refresh attempts within the retry interval, want at most 1", n)
	}
}
