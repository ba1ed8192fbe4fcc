package state

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strconv"
	"sync"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Sessions stores the bindings of MCP sessions to the users who created
// them, for one site, in the store every site shares: sites that proxy to
// one backend all see its session ids. A binding names its issuer, so a
// session is refused at every site but its own. A nil *Sessions binds no
// sessions.
type Sessions struct {
	store  storage.Store
	issuer string
	// owners caches bindings of store.
	owners sessionCache
}

// NewSessions returns the session bindings of the site issuer in shared,
// the store every site shares.
func NewSessions(shared storage.Store, issuer string) *Sessions {
	return &Sessions{store: storage.Prefixed(shared, keySession), issuer: issuer}
}

// sessionLifetime is how long a session binding is kept after its last
// use by its owner; a use extends it once less than half of it remains,
// so a live session stays bound with a write every 12 hours at most.
const sessionLifetime = 24 * time.Hour

// OwnedBy reports whether the MCP session id (the Mcp-Session-Id
// header) may be used by sub: sessions are bound to the user whose request
// created them, at the site where it was made, so a session id that leaks
// is useless to anyone else (MCP security best practices, session
// hijacking), also at another site that proxies to the same backend.
// unbound reports a session the server has no binding for (created before
// it kept bindings, or whose binding expired, or never created): the
// request may go on, and Claim binds it once the backend has
// accepted it, so ids the backend does not know cost no writes. An owner's
// use extends the binding. sessionID is a checked Mcp-Session-Id.
//
// A binding never changes owner while it lives, so the bindings this
// process read, wrote or extended answer for their owner from memory until
// they need extending; anything else (another user, an unbound session)
// asks the store.
func (s *Sessions) OwnedBy(ctx context.Context, sessionID, sub string) (owned, unbound bool, err error) {
	if s == nil || sessionID == "" {
		return true, false, nil
	}
	// The cache is keyed by the binding's hash, not yet hex-encoded: a
	// cached answer costs a hash and no allocation.
	sum := sessionSum(sessionID)
	if s.owners.owns(sum, s.issuer, sub, time.Now().Add(sessionLifetime/2)) {
		return true, false, nil
	}
	key, owner := hex.EncodeToString(sum[:]), s.owner(sub)
	stored, err := s.store.Get(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return true, true, nil
	case err != nil:
		return false, false, err
	}
	storedOwner, expires := parseBinding(stored)
	if subtle.ConstantTimeCompare(storedOwner, owner) != 1 {
		return false, false, nil
	}
	if time.Until(expires) < sessionLifetime/2 {
		var value []byte
		value, expires = newBinding(owner)
		if err := s.store.Put(ctx, key, value, sessionLifetime); err != nil {
			return false, false, err
		}
	}
	s.owners.add(sum, owner, expires)
	return true, false, nil
}

// Claim binds an unbound session the backend accepted to sub,
// unless another user's request claimed it first: only one of the users
// who present an unbound id at once gets it.
func (s *Sessions) Claim(ctx context.Context, sessionID, sub string) (bool, error) {
	sum := sessionSum(sessionID)
	key, owner := hex.EncodeToString(sum[:]), s.owner(sub)
	value, expires := newBinding(owner)
	switch err := s.store.Create(ctx, key, value, sessionLifetime); {
	case err == nil:
		s.owners.add(sum, owner, expires)
		return true, nil
	case !errors.Is(err, storage.ErrConflict):
		return false, err
	}
	stored, err := s.store.Get(ctx, key)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return false, nil // claimed and gone again: the client starts anew
	case err != nil:
		return false, err
	}
	storedOwner, _ := parseBinding(stored)
	return subtle.ConstantTimeCompare(storedOwner, owner) == 1, nil
}

// Bind binds a session the backend just created to sub.
func (s *Sessions) Bind(ctx context.Context, sessionID, sub string) error {
	if s == nil || sessionID == "" {
		return nil
	}
	sum := sessionSum(sessionID)
	key, owner := hex.EncodeToString(sum[:]), s.owner(sub)
	value, expires := newBinding(owner)
	if err := s.store.Put(ctx, key, value, sessionLifetime); err != nil {
		return err
	}
	s.owners.add(sum, owner, expires)
	return nil
}

// sessionSum is the SHA-256 of a session id, whose hex form (Hash) is
// its binding's key. Ids as long as a UUID do not fit the 32 bytes the
// compiler converts to []byte on the stack, hence the larger buffer.
func sessionSum(sessionID string) [sha256.Size]byte {
	var buf [128]byte
	if len(sessionID) <= len(buf) {
		return sha256.Sum256(append(buf[:0], sessionID...))
	}
	return sha256.Sum256([]byte(sessionID))
}

// owner is how a binding names its owner: the same sub at another
// issuer is another user.
func (s *Sessions) owner(sub string) []byte {
	return []byte(s.issuer + " " + sub)
}

// newBinding is a binding's stored value: when it expires (Unix seconds),
// a space, and its owner. The store's own expiry is not readable through
// storage.Store, and the owner's use must know when to extend it. It also
// returns that expiry, which the store's, set after, is not before.
func newBinding(owner []byte) ([]byte, time.Time) {
	expires := time.Unix(time.Now().Add(sessionLifetime).Unix(), 0)
	return append(strconv.AppendInt(nil, expires.Unix(), 10), append([]byte(" "), owner...)...), expires
}

// parseBinding splits a binding into its owner and expiry. A binding
// stored before expiries were kept is all owner (an issuer URL never is
// all digits) and counts as expiring now, so its next use extends it.
func parseBinding(stored []byte) (owner []byte, expires time.Time) {
	if at, rest, ok := bytes.Cut(stored, []byte(" ")); ok {
		if unix, err := strconv.ParseInt(string(at), 10, 64); err == nil {
			return rest, time.Unix(unix, 0)
		}
	}
	return stored, time.Now()
}

// maxCachedSessions bounds the session bindings kept in memory (about 200
// bytes each); the least recently used make room.
const maxCachedSessions = 100_000

// sessionCache holds session bindings this process read or wrote, by the
// SHA-256 of their session id (see Hash), each with the expiry its stored
// value names. The zero value is ready to use.
type sessionCache struct {
	mu      sync.Mutex
	max     int                                 // maxCachedSessions but in tests
	entries map[[sha256.Size]byte]*list.Element // of *cachedSession
	recent  list.List                           // most recently used first
}

type cachedSession struct {
	key     [sha256.Size]byte
	owner   string
	expires time.Time
}

// owns reports whether key is cached as bound to sub at issuer (see
// Sessions.owner) until after until.
func (c *sessionCache) owns(key [sha256.Size]byte, issuer, sub string, until time.Time) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[key]
	if !ok {
		return false
	}
	cs := e.Value.(*cachedSession)
	if !time.Now().Before(cs.expires) {
		c.recent.Remove(e)
		delete(c.entries, key)
		return false
	}
	c.recent.MoveToFront(e)
	o := cs.owner // compared without building issuer+" "+sub
	return cs.expires.After(until) && len(o) == len(issuer)+1+len(sub) &&
		o[:len(issuer)] == issuer && o[len(issuer)] == ' ' && o[len(issuer)+1:] == sub
}

// add caches that key is bound to owner until expires.
func (c *sessionCache) add(key [sha256.Size]byte, owner []byte, expires time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = make(map[[sha256.Size]byte]*list.Element)
	}
	if e, ok := c.entries[key]; ok {
		cs := e.Value.(*cachedSession)
		cs.owner, cs.expires = string(owner), expires
		c.recent.MoveToFront(e)
		return
	}
	limit := c.max
	if limit == 0 {
		limit = maxCachedSessions
	}
	if len(c.entries) >= limit {
		oldest := c.recent.Back()
		c.recent.Remove(oldest)
		delete(c.entries, oldest.Value.(*cachedSession).key)
	}
	c.entries[key] = c.recent.PushFront(&cachedSession{key: key, owner: string(owner), expires: expires})
}
