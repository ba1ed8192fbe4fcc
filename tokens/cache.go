package tokens

import (
	"sync"
	"time"
)

// verifiedCache remembers the claims of tokens whose signature and static
// claims were already checked, so a client's repeated requests cost a map
// lookup instead of a signature verification. Entries leave when the token
// expires; when the cache is full, expired entries are swept and, if that
// frees nothing, the cache starts over.
type verifiedCache struct {
	max     int
	mu      sync.RWMutex
	entries map[string]*AccessClaims
}

func newVerifiedCache(max int) *verifiedCache {
	return &verifiedCache{max: max, entries: make(map[string]*AccessClaims)}
}

func (c *verifiedCache) get(token string) (*AccessClaims, bool) {
	c.mu.RLock()
	claims, ok := c.entries[token]
	c.mu.RUnlock()
	return claims, ok
}

func (c *verifiedCache) put(token string, claims *AccessClaims, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		for k, v := range c.entries {
			if now.Unix() > v.Expiry {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= c.max {
			clear(c.entries)
		}
	}
	c.entries[token] = claims
}
