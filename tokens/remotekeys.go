package tokens

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/fetch"
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
	keys fetch.Refresher[jwk.Set]
	now  func() time.Time

	mu          sync.Mutex
	unknownKids map[string]time.Time // when each unknown kid last started a fetch
}

func newRemoteKeySet(fetchKeys func(context.Context) (jwk.Set, error)) *remoteKeySet {
	s := &remoteKeySet{now: time.Now, unknownKids: make(map[string]time.Time)}
	s.keys.Fetch, s.keys.Timeout = fetchKeys, remoteFetchTimeout
	s.keys.Now = func() time.Time { return s.now() }
	return s
}

// key returns the key named kid. Errors are *InvalidTokenError when the
// server does not publish such a key, and others when the server's keys
// could not be fetched at all.
func (s *remoteKeySet) key(ctx context.Context, kid string) (jwk.Key, error) {
	now := s.now()
	known := s.keys.State()
	if known.Have {
		if k, ok := lookupKey(known.Value, kid); ok {
			if now.Sub(known.Fetched) >= remoteKeysMaxAge {
				s.keys.Start(remoteKeysFetchInterval)
			}
			return k, nil
		}
	}
	done := s.keys.Running()
	if done == nil && s.mayStartFetch(now, kid, known) {
		done = s.keys.Start(remoteKeysFetchInterval)
	}
	fetch.Wait(ctx, done, remoteFetchWait)

	known = s.keys.State()
	if !known.Have {
		if known.Err != nil {
			return nil, fmt.Errorf("fetching the authorization server's keys: %w", known.Err)
		}
		return nil, fmt.Errorf("the authorization server's keys did not arrive in time")
	}
	if k, ok := lookupKey(known.Value, kid); ok {
		return k, nil
	}
	return nil, invalid("token is signed by an unknown key")
}

// mayStartFetch reports whether a token naming kid, which no known key
// has, may start a fetch now, and if so remembers that kid did.
func (s *remoteKeySet) mayStartFetch(now time.Time, kid string, known fetch.State[jwk.Set]) bool {
	if !known.Started.IsZero() && now.Sub(known.Started) < remoteKeysFetchInterval {
		return false
	}
	if !known.Have {
		return true // nothing known yet: every token needs the first fetch
	}
	s.mu.Lock()
	defer s.mu.Unlock()
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

// lookupKey finds kid in set; a token without kid may use a set's only key.
// Keys published for encryption only are not signing keys.
func lookupKey(set jwk.Set, kid string) (jwk.Key, bool) {
	k, ok := set.LookupKeyID(kid)
	if !ok && kid == "" && set.Len() == 1 {
		k, ok = set.Key(0)
	}
	if !ok || !IsSigningKey(k) {
		return nil, false
	}
	return k, true
}
