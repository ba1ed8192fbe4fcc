package tokens

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// Limits of remoteKeySet. Together they bound what tokens naming made-up
// kids can cost: one fetch per remoteKeysFetchInterval, however many arrive.
const (
	// remoteKeysMaxAge is how old the known keys may get before a
	// verification starts a refresh in the background.
	remoteKeysMaxAge = time.Hour
	// remoteKeysFetchInterval is the least time between two fetches.
	remoteKeysFetchInterval = 10 * time.Second
	// unknownKidInterval is how often one unknown kid may start a fetch.
	unknownKidInterval = time.Minute
	// maxUnknownKids bounds the unknown kids remembered.
	maxUnknownKids = 1024
	// remoteFetchWait is how long a verification waits for a fetch it
	// needs: the server's metadata, or the keys for an unknown kid.
	remoteFetchWait = 5 * time.Second
	// remoteFetchTimeout bounds one fetch, or one discovery.
	remoteFetchTimeout = 10 * time.Second
)

// remoteKeySet holds an external authorization server's published keys and
// fetches them again off the request path: at most one fetch runs at a
// time, and while it does, tokens signed by known keys go on verifying
// against the keys already known. Only a token naming an unknown kid waits
// for a fetch, and at most remoteFetchWait. Unknown kids may start a fetch
// once per unknownKidInterval each and all together once per
// remoteKeysFetchInterval.
type remoteKeySet struct {
	fetch func(context.Context) (jwk.Set, error)
	now   func() time.Time

	mu          sync.Mutex
	keys        jwk.Set
	fetched     time.Time     // when keys were fetched
	attempted   time.Time     // when the last fetch started
	lastErr     error         // why the last fetch failed, nil if it did not
	inflight    chan struct{} // closed when the running fetch ends; nil if none runs
	unknownKids map[string]time.Time
}

func newRemoteKeySet(fetch func(context.Context) (jwk.Set, error)) *remoteKeySet {
	return &remoteKeySet{fetch: fetch, now: time.Now, unknownKids: make(map[string]time.Time)}
}

// key returns the key named kid. Errors are *InvalidTokenError when the
// server does not publish such a key, and others when the server's keys
// could not be fetched at all.
func (s *remoteKeySet) key(ctx context.Context, kid string) (jwk.Key, error) {
	now := s.now()
	s.mu.Lock()
	if s.keys != nil {
		if k, ok := lookupKey(s.keys, kid); ok {
			if now.Sub(s.fetched) >= remoteKeysMaxAge {
				s.startFetch(now)
			}
			s.mu.Unlock()
			return k, nil
		}
	}
	done := s.inflight
	if done == nil && s.mayStartFetch(now, kid) {
		done = s.startFetch(now)
	}
	s.mu.Unlock()

	if done != nil {
		awaitFetch(ctx, done)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		if s.lastErr != nil {
			return nil, fmt.Errorf("fetching the authorization server's keys: %w", s.lastErr)
		}
		return nil, fmt.Errorf("the authorization server's keys did not arrive in time")
	}
	if k, ok := lookupKey(s.keys, kid); ok {
		return k, nil
	}
	return nil, invalid("token is signed by an unknown key")
}

// mayStartFetch reports whether a token naming kid, which no known key
// has, may start a fetch now, and if so remembers that kid did. s.mu must
// be held.
func (s *remoteKeySet) mayStartFetch(now time.Time, kid string) bool {
	if !s.attempted.IsZero() && now.Sub(s.attempted) < remoteKeysFetchInterval {
		return false
	}
	if s.keys == nil {
		return true // nothing known yet: every token needs the first fetch
	}
	if last, ok := s.unknownKids[kid]; ok && now.Sub(last) < unknownKidInterval {
		return false
	}
	if len(s.unknownKids) >= maxUnknownKids {
		for k, last := range s.unknownKids {
			if now.Sub(last) >= unknownKidInterval {
				delete(s.unknownKids, k)
			}
		}
		if len(s.unknownKids) >= maxUnknownKids {
			// Forgetting only lets these kids ask again; the fetch
			// interval still bounds the fetches.
			clear(s.unknownKids)
		}
	}
	s.unknownKids[kid] = now
	return true
}

// startFetch starts fetching the keys in the background unless a fetch
// runs or one started less than remoteKeysFetchInterval ago, and returns
// the running fetch's channel (nil if none). s.mu must be held.
func (s *remoteKeySet) startFetch(now time.Time) chan struct{} {
	if s.inflight != nil || (!s.attempted.IsZero() && now.Sub(s.attempted) < remoteKeysFetchInterval) {
		return s.inflight
	}
	done := make(chan struct{})
	s.inflight, s.attempted = done, now
	go func() {
		// Detached from the request that started it: the others waiting
		// for it must not fail because that one client went away.
		ctx, cancel := context.WithTimeout(context.Background(), remoteFetchTimeout)
		defer cancel()
		set, err := s.fetch(ctx)
		s.mu.Lock()
		if err == nil {
			// A failed refresh keeps the keys known before.
			s.keys, s.fetched = set, s.now()
		}
		s.lastErr, s.inflight = err, nil
		s.mu.Unlock()
		close(done)
	}()
	return done
}

// lookupKey finds kid in set; a token without kid may use a set's only key.
// Keys published for encryption only are not signing keys.
func lookupKey(set jwk.Set, kid string) (jwk.Key, bool) {
	k, ok := set.LookupKeyID(kid)
	if !ok && kid == "" && set.Len() == 1 {
		k, ok = set.Key(0)
	}
	if !ok {
		return nil, false
	}
	if use, ok := k.KeyUsage(); ok && use != "sig" {
		return nil, false
	}
	return k, true
}

// awaitFetch waits for a fetch to finish (done closed), at most
// remoteFetchWait and never past ctx: whoever waits then uses what is known.
func awaitFetch(ctx context.Context, done <-chan struct{}) {
	timer := time.NewTimer(remoteFetchWait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	case <-ctx.Done():
	}
}
