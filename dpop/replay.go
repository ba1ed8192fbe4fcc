package dpop

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"time"
)

// ErrReplayCacheFull refuses a proof that could not be remembered: the
// memory bound was reached within one span, and accepting the proof
// unremembered would let it be replayed.
var ErrReplayCacheFull = errors.New("dpop: too many proofs to remember; try again shortly")

// MemoryReplay remembers the proofs used at one instance, in bounded
// memory. It keeps two generations of proofs, each span long: a proof is
// remembered for at least span, and a generation holds at most max
// proofs. Proofs are keyed by a keyed 64-bit hash of jkt and jti; a
// collision refuses a fresh proof (the client retries with another), it
// never lets a used one through.
type MemoryReplay struct {
	seed maphash.Seed
	span time.Duration
	max  int
	now  func() time.Time

	mu       sync.Mutex
	started  time.Time // of the current generation
	current  map[uint64]struct{}
	previous map[uint64]struct{}
}

// NewMemoryReplay returns a replay cache that remembers proofs for at
// least span (Verifier.Span), up to max per span.
func NewMemoryReplay(span time.Duration, max int) *MemoryReplay {
	return &MemoryReplay{seed: maphash.MakeSeed(), span: span, max: max, now: time.Now,
		current: make(map[uint64]struct{}), previous: make(map[uint64]struct{})}
}

// Use implements Replay; ttl is at most span and not needed.
func (m *MemoryReplay) Use(_ context.Context, jkt, jti string, _ time.Duration) (bool, error) {
	var h maphash.Hash
	h.SetSeed(m.seed)
	h.WriteString(jkt)
	h.WriteByte(0)
	h.WriteString(jti)
	key := h.Sum64()
	now := m.now()

	m.mu.Lock()
	defer m.mu.Unlock()
	if age := now.Sub(m.started); age >= m.span {
		if age >= 2*m.span {
			clear(m.current) // nothing in it is needed any more
		}
		m.previous, m.current = m.current, m.previous
		clear(m.current)
		m.started = now
	}
	if _, used := m.current[key]; used {
		return false, nil
	}
	if _, used := m.previous[key]; used {
		return false, nil
	}
	if len(m.current) >= m.max {
		return false, ErrReplayCacheFull
	}
	m.current[key] = struct{}{}
	return true, nil
}
