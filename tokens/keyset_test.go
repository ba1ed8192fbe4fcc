package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// testKeySet is a JWK Set with one P-256 public key per kid.
func testKeySet(t testing.TB, kids ...string) jwk.Set {
	t.Helper()
	set := jwk.NewSet()
	for _, kid := range kids {
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		k, err := jwk.Import(priv.Public())
		if err != nil {
			t.Fatal(err)
		}
		_ = k.Set(jwk.KeyIDKey, kid)
		_ = set.AddKey(k)
	}
	return set
}

// countingKeySet is a remoteKeySet on a fake clock whose fetches are
// counted and, while gate is set, wait for it to close.
type countingKeySet struct {
	*KeySet
	clock   *oauthtest.Clock
	fetches atomic.Int32
	set     atomic.Pointer[jwk.Set]
	gate    atomic.Pointer[chan struct{}]
}

func newCountingKeySet(t *testing.T, kids ...string) *countingKeySet {
	c := &countingKeySet{clock: newFakeClock()}
	set := testKeySet(t, kids...)
	c.set.Store(&set)
	c.KeySet = NewKeySet(func(ctx context.Context) (jwk.Set, error) {
		c.fetches.Add(1)
		if gate := c.gate.Load(); gate != nil {
			select {
			case <-*gate:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		return *c.set.Load(), nil
	}, remoteKeyPolicy)
	c.now = c.clock.Now
	return c
}

// settle waits for a fetch in the background to end.
func (c *countingKeySet) settle(t *testing.T) {
	t.Helper()
	for range 200 {
		if c.keys.Running() == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("fetch did not end")
}

func TestRemoteKeySetUnknownKidsBounded(t *testing.T) {
	ks := newCountingKeySet(t, "k1")
	ctx := context.Background()
	if _, err := remoteKey(ctx, ks.KeySet, "k1"); err != nil || ks.fetches.Load() != 1 {
		t.Fatalf("first lookup: %v, %d fetches", err, ks.fetches.Load())
	}
	unknown := func(kid string) {
		t.Helper()
		var inv *InvalidTokenError
		if _, err := remoteKey(ctx, ks.KeySet, kid); !errors.As(err, &inv) {
			t.Fatalf("kid %q: %v, want an invalid token", kid, err)
		}
		ks.settle(t)
	}

	// A flood of made-up kids right after a fetch fetches nothing.
	for i := range 2000 {
		unknown(fmt.Sprintf("made-up-%d", i))
	}
	if n := ks.fetches.Load(); n != 1 {
		t.Fatalf("%d fetches after a flood within the fetch interval, want 1", n)
	}
	// Over time, one fetch per interval however many kids arrive.
	for step := range 12 {
		ks.clock.Advance(remoteKeyPolicy.FetchInterval)
		for i := range 100 {
			unknown(fmt.Sprintf("flood-%d-%d", step, i))
		}
	}
	if n := ks.fetches.Load(); n != 13 {
		t.Fatalf("%d fetches over 12 intervals, want 13", n)
	}
	ks.mu.Lock()
	remembered := len(ks.unknownKids)
	ks.mu.Unlock()
	if remembered > maxUnknownKids {
		t.Errorf("%d unknown kids remembered, bound %d", remembered, maxUnknownKids)
	}

	// One kid repeated starts a fetch once per remoteKeyPolicy.UnknownKidInterval.
	ks.clock.Advance(remoteKeyPolicy.UnknownKidInterval)
	before := ks.fetches.Load()
	for range 5 {
		unknown("repeated")
		ks.clock.Advance(remoteKeyPolicy.FetchInterval)
	}
	if n := ks.fetches.Load() - before; n != 1 {
		t.Errorf("one unknown kid caused %d fetches within %v, want 1", n, remoteKeyPolicy.UnknownKidInterval)
	}

	// A key the server really added is found by the fetch its kid starts.
	rotated := testKeySet(t, "k1", "k2")
	ks.set.Store(&rotated)
	ks.clock.Advance(remoteKeyPolicy.UnknownKidInterval)
	if _, err := remoteKey(ctx, ks.KeySet, "k2"); err != nil {
		t.Errorf("new key after rotation: %v", err)
	}
}

func TestRemoteKeySetSlowFetchDoesNotBlockKnownKeys(t *testing.T) {
	ks := newCountingKeySet(t, "k1")
	ctx := context.Background()
	if _, err := remoteKey(ctx, ks.KeySet, "k1"); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	ks.gate.Store(&gate)
	ks.clock.Advance(remoteKeyPolicy.FetchInterval)

	unknownDone := make(chan error, 1)
	go func() {
		_, err := remoteKey(ctx, ks.KeySet, "k2")
		unknownDone <- err
	}()
	for ks.fetches.Load() != 2 {
		time.Sleep(time.Millisecond)
	}
	start := time.Now()
	for range 100 {
		if _, err := remoteKey(ctx, ks.KeySet, "k1"); err != nil {
			t.Fatal(err)
		}
	}
	if d := time.Since(start); d > 500*time.Millisecond {
		t.Errorf("known key lookups took %v while a fetch hung", d)
	}
	rotated := testKeySet(t, "k1", "k2")
	ks.set.Store(&rotated)
	close(gate)
	if err := <-unknownDone; err != nil {
		t.Errorf("the token waiting for the fetch: %v", err)
	}
}

func TestRemoteKeySetUnknownKidWaitIsBounded(t *testing.T) {
	ks := newCountingKeySet(t, "k1")
	ctx := context.Background()
	if _, err := remoteKey(ctx, ks.KeySet, "k1"); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	defer close(gate)
	ks.gate.Store(&gate)
	ks.clock.Advance(remoteKeyPolicy.FetchInterval)
	start := time.Now()
	var inv *InvalidTokenError
	if _, err := remoteKey(ctx, ks.KeySet, "k2"); !errors.As(err, &inv) {
		t.Errorf("unknown kid while the fetch hangs: %v", err)
	}
	if d := time.Since(start); d < remoteFetchWait || d > remoteFetchWait+2*time.Second {
		t.Errorf("waited %v, want about %v", d, remoteFetchWait)
	}
}

func TestRemoteKeySetRefreshesOldKeysInBackground(t *testing.T) {
	ks := newCountingKeySet(t, "k1")
	ctx := context.Background()
	if _, err := remoteKey(ctx, ks.KeySet, "k1"); err != nil {
		t.Fatal(err)
	}
	gate := make(chan struct{})
	ks.gate.Store(&gate)
	ks.clock.Advance(remoteKeyPolicy.MaxAge)
	if _, err := remoteKey(ctx, ks.KeySet, "k1"); err != nil {
		t.Fatal(err)
	}
	for i := 0; ks.fetches.Load() != 2; i++ {
		if i == 200 {
			t.Fatalf("%d fetches, want a refresh of keys %v old", ks.fetches.Load(), remoteKeyPolicy.MaxAge)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(gate)
	ks.settle(t)
	// A failed refresh keeps the known keys.
	ks.gate.Store(nil)
	ks.clock.Advance(remoteKeyPolicy.MaxAge)
	failing := ks.keys.Fetch
	ks.keys.Fetch = func(context.Context) (jwk.Set, error) { return nil, errors.New("unreachable") }
	if _, err := remoteKey(ctx, ks.KeySet, "k1"); err != nil {
		t.Fatal(err)
	}
	ks.settle(t)
	ks.keys.Fetch = failing
	if _, err := remoteKey(ctx, ks.KeySet, "k1"); err != nil {
		t.Errorf("known key after a failed refresh: %v", err)
	}
}

func TestRemoteKeySetUnreachable(t *testing.T) {
	ks := NewKeySet(func(context.Context) (jwk.Set, error) { return nil, errors.New("connection refused") }, remoteKeyPolicy)
	var inv *InvalidTokenError
	if _, err := remoteKey(context.Background(), ks, "k1"); err == nil || errors.As(err, &inv) {
		t.Errorf("unreachable server: %v, want an error that is not the token's fault", err)
	}
}
