package authserver

import (
	"container/list"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// RateLimiter limits events per key (a source address, a client), with a
// token bucket per key, in memory of bounded size: at most maxKeys buckets
// are kept. Buckets that are full again (their key is back to its whole
// burst) are dropped, as a fresh one is the same; when the table is still
// full, the bucket used least recently makes room.
type RateLimiter struct {
	limit   rate.Limit
	burst   int
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*list.Element // of *bucket
	recent  *list.List               // most recently used first
	swept   time.Time
}

type bucket struct {
	key     string
	limiter *rate.Limiter
}

// defaultMaxKeys bounds every RateLimiter's table: about 200 bytes per
// key, so a couple of megabytes at most.
const defaultMaxKeys = 10_000

// NewRateLimiter allows burst events at once and then events per period.
func NewRateLimiter(events int, period time.Duration, burst int) *RateLimiter {
	return &RateLimiter{
		limit:   rate.Limit(float64(events) / period.Seconds()),
		burst:   burst,
		maxKeys: defaultMaxKeys,
		buckets: make(map[string]*list.Element),
		recent:  list.New(),
	}
}

// Allow reports whether one more event for key is allowed now, and counts it.
func (l *RateLimiter) Allow(key string) bool {
	return l.Reserve(key) == 0
}

// Reserve counts one event for key if it is allowed now and returns 0;
// otherwise it counts nothing and returns how long until it would be.
func (l *RateLimiter) Reserve(key string) time.Duration {
	return l.check(key, true)
}

// Wait returns how long until one more event for key would be allowed
// (0: now), without counting one.
func (l *RateLimiter) Wait(key string) time.Duration {
	return l.check(key, false)
}

func (l *RateLimiter) check(key string, count bool) time.Duration {
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucket(key, now)
	tokens := b.TokensAt(now)
	if tokens >= 1 {
		if count {
			b.AllowN(now, 1)
		}
		return 0
	}
	return time.Duration((1 - tokens) / float64(l.limit) * float64(time.Second))
}

// bucket returns key's token bucket, creating it if needed. l.mu is held.
func (l *RateLimiter) bucket(key string, now time.Time) *rate.Limiter {
	if e, ok := l.buckets[key]; ok {
		l.recent.MoveToFront(e)
		return e.Value.(*bucket).limiter
	}
	if now.Sub(l.swept) > time.Minute {
		l.dropFull(now)
	}
	if len(l.buckets) >= l.maxKeys {
		oldest := l.recent.Back()
		l.recent.Remove(oldest)
		delete(l.buckets, oldest.Value.(*bucket).key)
	}
	b := &bucket{key: key, limiter: rate.NewLimiter(l.limit, l.burst)}
	l.buckets[key] = l.recent.PushFront(b)
	return b.limiter
}

// dropFull forgets the buckets that have refilled: forgetting them
// changes no decision. l.mu is held.
func (l *RateLimiter) dropFull(now time.Time) {
	for e := l.recent.Back(); e != nil; {
		prev := e.Prev()
		if b := e.Value.(*bucket); b.limiter.TokensAt(now) >= float64(l.burst) {
			l.recent.Remove(e)
			delete(l.buckets, b.key)
		}
		e = prev
	}
	l.swept = now
}
