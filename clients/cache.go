package clients

import (
	"context"
	"errors"
	"sync"
	"time"
)

// fetchCache is a bounded in-memory cache of fetched values, keyed by URL,
// in which concurrent misses for one key share a single fetch. It is what
// stops a burst of authorization requests naming one metadata URL from
// turning into a burst of outbound requests.
//
// A value whose refresh fails transiently (see MetadataError.RetryAfter)
// is served on for up to staleIfError past its expiry, as HTTP's
// stale-if-error does (RFC 5861 section 4): a client whose host has an
// outage, or shows us a bot check for an hour, keeps working. A refresh
// that finds the document gone or invalid is never papered over, since
// that is its owner speaking: a withdrawn client, or a redirect URI
// removed after a leak, must stop working at once, and the metadata
// document draft (section 4.4) forbids caching an invalid document.
type fetchCache[T any] struct {
	max          int
	staleIfError time.Duration
	// onFailure, if set, hears of every failed fetch, with the time until
	// which a value known before is served instead (zero if none is).
	onFailure func(key string, err error, servedUntil time.Time)

	mu       sync.Mutex
	entries  map[string]*cacheEntry[T]
	inflight map[string]*flight[T]
}

type cacheEntry[T any] struct {
	val T
	err error
	// fetched is when the key was last fetched, whether or not that
	// fetch replaced val.
	fetched time.Time
	expires time.Time
	// staleUntil bounds how long val may be served after expires while
	// refreshes fail transiently; zero for errors.
	staleUntil time.Time
}

// flight is one fetch in progress; waiters block on done.
type flight[T any] struct {
	done    chan struct{}
	waiters int // callers beyond the first, for tests
	entry   *cacheEntry[T]
}

// fetchFunc fetches the value for a key. It returns how long the result may
// be cached; zero or less means not at all.
type fetchFunc[T any] func(ctx context.Context) (val T, ttl time.Duration, err error)

func newFetchCache[T any](maxEntries int, staleIfError time.Duration) *fetchCache[T] {
	return &fetchCache[T]{
		max:          maxEntries,
		staleIfError: max(staleIfError, 0),
		entries:      make(map[string]*cacheEntry[T]),
		inflight:     make(map[string]*flight[T]),
	}
}

// get returns the cached result for key if it is still fresh at now, and
// otherwise fetches it, sharing the fetch with concurrent callers.
// refreshOlderThan > 0 also treats a cached success fetched at least that
// long ago as stale: it lets a JWKS be refetched on an unknown kid, but no
// more often than that, however many bogus kids arrive.
//
// The fetch runs detached from ctx (bounded by the fetcher's own timeout),
// so that one caller giving up does not fail the others sharing it; each
// caller still stops waiting when its own ctx ends.
func (c *fetchCache[T]) get(ctx context.Context, key string, now time.Time, refreshOlderThan time.Duration, fetch fetchFunc[T]) (T, error) {
	c.mu.Lock()
	if e, ok := c.entries[key]; ok {
		stale := !now.Before(e.expires) ||
			(refreshOlderThan > 0 && e.err == nil && now.Sub(e.fetched) >= refreshOlderThan)
		if !stale {
			c.mu.Unlock()
			return e.val, e.err
		}
	}
	f, ok := c.inflight[key]
	if ok {
		f.waiters++
	} else {
		f = &flight[T]{done: make(chan struct{})}
		c.inflight[key] = f
		go c.run(context.WithoutCancel(ctx), key, now, f, fetch)
	}
	c.mu.Unlock()

	select {
	case <-f.done:
		return f.entry.val, f.entry.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}

func (c *fetchCache[T]) run(ctx context.Context, key string, now time.Time, f *flight[T], fetch fetchFunc[T]) {
	val, ttl, err := fetch(ctx)
	e := &cacheEntry[T]{val: val, err: err, fetched: now, expires: now.Add(ttl)}
	if err == nil && ttl > 0 {
		e.staleUntil = e.expires.Add(c.staleIfError)
	}

	c.mu.Lock()
	delete(c.inflight, key)
	old, ok := c.entries[key]
	refreshFailed := ok && err != nil && old.err == nil
	var me *MetadataError
	var servedUntil time.Time // while a known value stands in for err
	switch {
	case refreshFailed && now.Before(old.expires):
		// A forced refresh failed: keep serving the last good value
		// until it expires rather than failing every request meanwhile,
		// and count this attempt, so the next forced refresh waits.
		kept := *old
		kept.fetched = now
		c.entries[key] = &kept
		e, servedUntil = &kept, old.expires
	case refreshFailed && errors.As(err, &me) && me.RetryAfter > 0 && now.Before(old.staleUntil):
		// The refresh failed in passing: serve the last good value,
		// and try again after RetryAfter, not on every request.
		kept := *old
		kept.fetched = now
		kept.expires = now.Add(me.RetryAfter)
		if kept.expires.After(old.staleUntil) {
			kept.expires = old.staleUntil
		}
		c.entries[key] = &kept
		e, servedUntil = &kept, old.staleUntil
	case ttl > 0:
		c.store(key, e, now)
	default:
		// A result that may not be cached also evicts an older one, so
		// that a document that turned invalid is not served from cache.
		delete(c.entries, key)
	}
	f.entry = e
	c.mu.Unlock()
	// Said before anyone is answered, so the log never trails the answer.
	if err != nil && c.onFailure != nil {
		c.onFailure(key, err, servedUntil)
	}
	close(f.done)
}

// store adds e, making room first if the cache is full: expired entries go,
// then the one closest to expiry. c.mu must be held.
func (c *fetchCache[T]) store(key string, e *cacheEntry[T], now time.Time) {
	if _, ok := c.entries[key]; !ok && len(c.entries) >= c.max {
		for k, old := range c.entries {
			if !now.Before(old.expires) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			var victim string
			var soonest time.Time
			for k, old := range c.entries {
				if victim == "" || old.expires.Before(soonest) {
					victim, soonest = k, old.expires
				}
			}
			delete(c.entries, victim)
		}
	}
	c.entries[key] = e
}

// waiting returns how many callers share the fetch in progress for key
// besides the one that started it, or -1 if there is none.
func (c *fetchCache[T]) waiting(key string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.inflight[key]; ok {
		return f.waiters
	}
	return -1
}
