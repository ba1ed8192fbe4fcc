package handlers

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter limits events per key (a client IP), with a token bucket per
// key. Idle buckets are dropped so the map stays small.
type RateLimiter struct {
	limit rate.Limit
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	limiter *rate.Limiter
	seen    time.Time
}

// NewRateLimiter allows burst events at once and then events per period.
func NewRateLimiter(events int, period time.Duration, burst int) *RateLimiter {
	return &RateLimiter{
		limit:   rate.Limit(float64(events) / period.Seconds()),
		burst:   burst,
		buckets: make(map[string]*bucket),
	}
}

// Allow reports whether one more event for key is allowed now, and counts it.
func (l *RateLimiter) Allow(key string) bool {
	return l.bucket(key).AllowN(time.Now(), 1)
}

// Exhausted reports whether key has no events left now, without counting one.
func (l *RateLimiter) Exhausted(key string) bool {
	return l.bucket(key).TokensAt(time.Now()) < 1
}

// bucket returns key's token bucket, creating it if needed.
func (l *RateLimiter) bucket(key string) *rate.Limiter {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.swept) > time.Minute {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > time.Hour {
				delete(l.buckets, k)
			}
		}
		l.swept = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{limiter: rate.NewLimiter(l.limit, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	return b.limiter
}
