package storage

import (
	"context"
	"strings"
	"time"
)

// prefixed is a Store whose keys all live below one prefix of another
// Store, so that its users cannot name, list or change anything outside it.
type prefixed struct {
	store  Store
	prefix string
}

// Prefixed returns a view of store in which every key is prefix+key. Keys
// outside the prefix are out of reach: List lists only below it and hands
// fn the keys without it. The prefix must not begin another one given to a
// Prefixed view of the same store; end it with a separator such as "/".
// If store is a Notifier, so is the view, and its channels are below the
// prefix too.
func Prefixed(store Store, prefix string) Store {
	p := &prefixed{store: store, prefix: prefix}
	if n, ok := store.(Notifier); ok {
		return &prefixedNotifier{prefixed: p, notifier: n}
	}
	return p
}

// prefixedNotifier is a prefixed view of a Notifier.
type prefixedNotifier struct {
	*prefixed
	notifier Notifier
}

func (p *prefixedNotifier) Publish(ctx context.Context, channel string, message []byte) error {
	return p.notifier.Publish(ctx, p.prefix+channel, message)
}

func (p *prefixedNotifier) Subscribe(ctx context.Context, channel string, onMessage func([]byte), onListening func(bool)) {
	p.notifier.Subscribe(ctx, p.prefix+channel, onMessage, onListening)
}

func (p *prefixed) Get(ctx context.Context, key string) ([]byte, error) {
	return p.store.Get(ctx, p.prefix+key)
}

func (p *prefixed) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return p.store.Put(ctx, p.prefix+key, value, ttl)
}

func (p *prefixed) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	return p.store.Create(ctx, p.prefix+key, value, ttl)
}

func (p *prefixed) Take(ctx context.Context, key string) ([]byte, error) {
	return p.store.Take(ctx, p.prefix+key)
}

func (p *prefixed) Swap(ctx context.Context, key string, old, value []byte, ttl time.Duration) error {
	return p.store.Swap(ctx, p.prefix+key, old, value, ttl)
}

func (p *prefixed) Increment(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	return p.store.Increment(ctx, p.prefix+key, ttl)
}

func (p *prefixed) Delete(ctx context.Context, key string) error {
	return p.store.Delete(ctx, p.prefix+key)
}

func (p *prefixed) List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	return p.store.List(ctx, p.prefix+prefix, func(key string, value []byte) error {
		return fn(strings.TrimPrefix(key, p.prefix), value)
	})
}
