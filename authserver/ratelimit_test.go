package authserver

import (
	"fmt"
	"testing"
	"time"
)

func TestRateLimiterTableIsBounded(t *testing.T) {
	l := NewRateLimiter(1, time.Hour, 1)
	l.maxKeys = 100
	for i := range 1000 {
		l.Allow(fmt.Sprintf("source-%d", i))
		if n := len(l.buckets); n > l.maxKeys || l.recent.Len() != n {
			t.Fatalf("after %d keys the table holds %d buckets (list %d), cap %d", i+1, n, l.recent.Len(), l.maxKeys)
		}
	}
	// The most recent keys are remembered: their limit still holds.
	if l.Allow("source-999") {
		t.Errorf("the newest key was forgotten")
	}
}

func TestRateLimiterKeepsBusyKeys(t *testing.T) {
	l := NewRateLimiter(1, time.Hour, 2)
	l.maxKeys = 10
	l.Allow("attacker")
	l.Allow("attacker")
	for i := range 50 {
		// A key in use stays, however many others pass by.
		l.Allow(fmt.Sprintf("other-%d", i))
		if l.Allow("attacker") {
			t.Fatalf("the attacker's exhausted bucket was evicted after %d other keys", i+1)
		}
	}
}

func TestRateLimiterDropsFullBuckets(t *testing.T) {
	l := NewRateLimiter(1000, time.Second, 1)
	for i := range 50 {
		l.Allow(fmt.Sprintf("k%d", i))
	}
	time.Sleep(10 * time.Millisecond) // every bucket refills
	l.swept = time.Time{}             // and a sweep is due
	l.Allow("new")
	if n := len(l.buckets); n != 1 {
		t.Errorf("%d buckets after a sweep, want only the new one", n)
	}
}

func TestRateLimiterReserve(t *testing.T) {
	l := NewRateLimiter(1, time.Minute, 1)
	if wait := l.Reserve("a"); wait != 0 {
		t.Fatalf("first event: wait %v", wait)
	}
	if wait := l.Reserve("a"); wait <= 50*time.Second || wait > time.Minute {
		t.Errorf("second event: wait %v, want about a minute", wait)
	}
	// Wait reports without counting: asking again changes nothing.
	for range 3 {
		if wait := l.Wait("a"); wait <= 50*time.Second || wait > time.Minute {
			t.Errorf("Wait(a) = %v, want about a minute", wait)
		}
		if wait := l.Wait("b"); wait != 0 {
			t.Errorf("Wait(b) = %v, want 0", wait)
		}
	}
	if wait := l.Reserve("b"); wait != 0 {
		t.Errorf("Reserve(b) after Wait(b): %v, want 0: Wait must not count", wait)
	}
}
