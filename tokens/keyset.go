package tokens

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/fetch"
)

// KeySetPolicy says when a KeySet fetches. Together FetchInterval and
// UnknownKidInterval bound what tokens naming made-up kids can cost.
type KeySetPolicy struct {
	// MaxAge is how old the known keys may get before a lookup starts a
	// refresh in the background.
	MaxAge time.Duration
	// FetchInterval is the least time between two fetches.
	FetchInterval time.Duration
	// UnknownKidInterval is how often one unknown kid may start a fetch.
	UnknownKidInterval time.Duration
	// Wait is how long a lookup waits for a fetch it needs (no keys
	// known yet, or an unknown kid); 0 waits as long as its context.
	Wait time.Duration
	// Timeout bounds one fetch.
	Timeout time.Duration
}

// maxUnknownKids bounds the unknown kids a KeySet remembers.
const maxUnknownKids = 1024

// ErrUnknownKey is returned by KeySet.Find when no published key fits.
var ErrUnknownKey = errors.New("no published key fits the token")

// KeysUnavailableError is returned by KeySet.Find when no keys are known:
// the last fetch failed (Cause), or none ended in time (Cause is nil).
type KeysUnavailableError struct{ Cause error }

func (e *KeysUnavailableError) Error() string {
	if e.Cause == nil {
		return "the keys did not arrive in time"
	}
	return "fetching the keys: " + e.Cause.Error()
}

// Unwrap returns why the last fetch failed.
func (e *KeysUnavailableError) Unwrap() error { return e.Cause }

// KeySet holds an issuer's published keys (an external authorization
// server's, an upstream provider's) and fetches them again off the request
// path: at most one fetch runs at a time, and while it does, tokens signed
// by known keys go on verifying against the keys already known. Only a
// token naming an unknown kid waits for a fetch, at most Policy.Wait.
// Unknown kids may start a fetch once per UnknownKidInterval each and all
// together once per FetchInterval.
//
// It is not jwx's jwk.Cache: that refreshes on a schedule per URL, but
// neither refetches on an unknown kid under a rate limit nor bounds how
// long a request waits for a fetch.
type KeySet struct {
	policy KeySetPolicy
	keys   fetch.Refresher[jwk.Set]
	now    func() time.Time

	mu          sync.Mutex
	unknownKids map[string]time.Time // when each unknown kid last started a fetch
}

// NewKeySet returns a key set that gets its keys with fetchKeys.
func NewKeySet(fetchKeys func(context.Context) (jwk.Set, error), policy KeySetPolicy) *KeySet {
	s := &KeySet{policy: policy, now: time.Now, unknownKids: make(map[string]time.Time)}
	s.keys.Fetch, s.keys.Timeout = fetchKeys, policy.Timeout
	s.keys.Now = func() time.Time { return s.now() }
	return s
}

// Find returns the keys known, fetched first if none are known yet or if
// has reports that they lack the key a token names by kid ("" if none).
// Errors are ErrUnknownKey if has still reports false, and a
// *KeysUnavailableError if no keys are known at all.
func (s *KeySet) Find(ctx context.Context, kid string, has func(jwk.Set) bool) (jwk.Set, error) {
	now := s.now()
	known := s.keys.State()
	if known.Have && has(known.Value) {
		if now.Sub(known.Fetched) >= s.policy.MaxAge {
			s.keys.Start(s.policy.FetchInterval)
		}
		return known.Value, nil
	}
	done := s.keys.Running()
	if done == nil && s.mayStartFetch(now, kid, known) {
		done = s.keys.Start(s.policy.FetchInterval)
	}
	fetch.Wait(ctx, done, s.policy.Wait)

	known = s.keys.State()
	switch {
	case !known.Have:
		return nil, &KeysUnavailableError{Cause: known.Err}
	case !has(known.Value):
		return nil, ErrUnknownKey
	}
	return known.Value, nil
}

// mayStartFetch reports whether a token naming kid, which no known key
// has, may start a fetch now, and if so remembers that kid did.
func (s *KeySet) mayStartFetch(now time.Time, kid string, known fetch.State[jwk.Set]) bool {
	if !known.Started.IsZero() && now.Sub(known.Started) < s.policy.FetchInterval {
		return false
	}
	if !known.Have {
		return true // nothing known yet: every token needs the first fetch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if last, ok := s.unknownKids[kid]; ok && now.Sub(last) < s.policy.UnknownKidInterval {
		return false
	}
	if len(s.unknownKids) >= maxUnknownKids {
		for k, last := range s.unknownKids {
			if now.Sub(last) >= s.policy.UnknownKidInterval {
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
