// Package storage defines the state store the authorization server keeps its
// clients, codes, grants, revocations and signing keys in, and its backends.
//
// Every backend passes the contract suite in package storagetest, so the rest
// of the plugin relies only on what Store documents here.
package storage

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNotFound is returned when a key does not exist or has expired.
var ErrNotFound = errors.New("storage: not found")

// ErrExpired is returned by a write whose ttl is negative.
var ErrExpired = errors.New("storage: the entry's expiry has passed")

// NoExpiry is the ttl of an entry that never expires.
const NoExpiry time.Duration = 0

// CloseTimeout bounds how long closing a store may take. Badger retries a
// failed flush forever (its directory removed, a disk error), and a close
// that never returns would keep Caddy from exiting or reloading.
const CloseTimeout = 10 * time.Second

// closeWithin runs closeStore and waits at most timeout for it. Past that
// it returns an error naming the store and leaves closeStore running, so
// that the caller, and the process, can go on.
func closeWithin(timeout time.Duration, store string, closeStore func() error) error {
	done := make(chan error, 1)
	go func() { done <- closeStore() }()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case err := <-done:
		return err
	case <-timer.C:
		return fmt.Errorf("storage: closing %s did not finish within %s; gave up, so writes not yet on disk may be lost", store, timeout)
	}
}

// checkWrite refuses a write whose context is done or whose ttl is
// negative.
func checkWrite(ctx context.Context, ttl time.Duration) error {
	if ttl < 0 {
		return ErrExpired
	}
	return ctx.Err()
}

// ErrConflict is returned when a conditional write loses: Create finds the
// key already present, or Swap finds a value other than the expected one.
var ErrConflict = errors.New("storage: conflict")

// Store is a key-value store with expiry and the atomic operations an OAuth
// authorization server needs. Keys are printable strings; callers namespace
// them with a prefix such as "client/" or "code/". Values are opaque bytes.
//
// A ttl of zero (NoExpiry) means the entry never expires. A negative ttl,
// an expiry that has already passed, is refused with ErrExpired and nothing
// is written: a deadline computed a moment too late must not make an entry
// that never expires. An expired entry is never returned, whatever the
// backend's own expiry granularity.
//
// All methods are safe for concurrent use, also across processes that share
// the same backend.
type Store interface {
	// Get returns the value stored under key, or ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)

	// Put stores value under key, replacing any previous value.
	Put(ctx context.Context, key string, value []byte, ttl time.Duration) error

	// Create stores value under key only if the key does not exist yet;
	// otherwise it returns ErrConflict and changes nothing.
	Create(ctx context.Context, key string, value []byte, ttl time.Duration) error

	// Take atomically returns the value stored under key and deletes it.
	// Among concurrent callers for the same key exactly one gets the value;
	// the others get ErrNotFound. This is how single-use values (authorization
	// codes, login states) are redeemed.
	Take(ctx context.Context, key string) ([]byte, error)

	// Swap atomically replaces the value under key with value if the stored
	// value equals old byte for byte. It returns ErrNotFound if the key does
	// not exist and ErrConflict if it holds something else. This is how a
	// refresh-token family rotates without lost updates.
	Swap(ctx context.Context, key string, old, value []byte, ttl time.Duration) error

	// Increment atomically adds one to the counter under key and returns
	// the new count. A missing key starts at 1 and expires after ttl; later
	// increments keep that deadline, so a counter counts events in a fixed
	// window that starts with the first one. The value is the count in
	// decimal, as Get returns it. Among concurrent callers every increment
	// counts: n callers on a missing key see 1 to n, each once. This is
	// how limits that must hold across instances (failed logins, global
	// registration caps) count.
	Increment(ctx context.Context, key string, ttl time.Duration) (int64, error)

	// Delete removes key. Deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error

	// List calls fn for every live entry whose key starts with prefix, in
	// ascending key order, until fn returns an error, which List returns.
	List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error
}
