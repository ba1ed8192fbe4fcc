package tokens

import (
	"sync"
	"time"
)

// verifiedCache remembers the claims of tokens whose signature and static
// claims were already checked, so a client's repeated requests cost a map
// lookup instead of a signature verification. Entries leave when the token
// expires; when the cache is full, expired entries are swept and, if that
// frees nothing, the cache starts over. An entry is only good while the
// ring's keys are the ones it was checked with: once the ring drops a key
// (see KeyRing.removals), every token is checked again.
type verifiedCache struct {
	max     int
	mu      sync.RWMutex
	entries map[string]verifiedEntry
}

type verifiedEntry struct {
	claims *AccessClaims
	// removals is the ring's count of dropped keys when the token was checked.
	removals uint64
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, entries: make(map[string]verifiedEntry)}
}

// get returns the cached claims of token if it was checked while the ring
// had dropped removals keys, as it has now.
func (c *verifiedCache) get(token string, removals uint64) (*AccessClaims, bool) {
	c.mu.RLock()
	e, ok := c.entries[token]
	c.mu.RUnlock()
	if !ok || e.removals != removals {
		return nil, false
	}
	return e.claims, true
}

// put caches claims; removals must be read before the token's signature
// was checked, so that a key dropped meanwhile is not missed.
func (c *verifiedCache) put(token string, claims *AccessClaims, removals uint64, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, v := range c.entries {
			if now.Unix() > v.claims.Expiry {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[token] = verifiedEntry{claims: claims, removals: removals}
}
