package handlers

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// keySession binds MCP session ids to the user who created the session.
const keySession = "session/"

// SessionStore is the view of the store that every site shares that holds
// the bindings of MCP sessions (Site.Sessions), and nothing else.
func SessionStore(shared storage.Store) storage.Store {
	return storage.Prefixed(shared, keySession)
}

// sessionLifetime is how long a session binding is kept after its last
// use by its owner.
const sessionLifetime = 24 * time.Hour

// maxSessionIDLength bounds an Mcp-Session-Id; the ids MCP servers issue
// (UUIDs, random tokens) are far shorter.
const maxSessionIDLength = 512

var errBadSessionID = errors.New("the Mcp-Session-Id header must come at most once, as 1 to 512 visible ASCII characters")

// sessionID returns the MCP session id of a request, "" for none. An
// empty header counts as none and is removed, so the backend sees none
// either. More than one header, or an id that is not the visible ASCII
// the MCP specification allows, or longer than maxSessionIDLength, is
// refused rather than passed unchecked: the backend must never see a
// session the owner check did not.
func sessionID(h http.Header) (string, error) {
	values := h.Values("Mcp-Session-Id")
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", errBadSessionID
	case values[0] == "":
		h.Del("Mcp-Session-Id")
		return "", nil
	}
	id := values[0]
	if len(id) > maxSessionIDLength || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", errBadSessionID
	}
	return id, nil
}

// SessionOwnedBy reports whether the MCP session id (the Mcp-Session-Id
// header) may be used by sub: sessions are bound to the user whose request
// created them, at the site where it was made, so a session id that leaks
// is useless to anyone else (MCP security best practices, session
// hijacking), also at another site that proxies to the same backend. A
// session the server does not know (created before it kept bindings, or
// whose binding expired) is bound to the first user who claims it, and to
// that user only, however many claim it at once. sessionID is a
// Decision's SessionID, which Authorize checked.
func (s *Site) SessionOwnedBy(ctx context.Context, sessionID, sub string) (bool, error) {
	if s.Sessions == nil || sessionID == "" {
		return true, nil
	}
	key, owner := hashKey(sessionID), s.sessionOwner(sub)
	stored, err := s.Sessions.Get(ctx, key)
	if errors.Is(err, storage.ErrNotFound) {
		switch err := s.Sessions.Create(ctx, key, owner, sessionLifetime); {
		case err == nil:
			return true, nil
		case !errors.Is(err, storage.ErrConflict):
			return false, err
		}
		// Another request claimed it first: it is theirs unless it is ours.
		stored, err = s.Sessions.Get(ctx, key)
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return false, nil // claimed and gone again: the client starts anew
	case err != nil:
		return false, err
	}
	return subtle.ConstantTimeCompare(stored, owner) == 1, nil
}

// BindSession binds a session the backend just created to sub.
func (s *Site) BindSession(ctx context.Context, sessionID, sub string) error {
	if s.Sessions == nil || sessionID == "" {
		return nil
	}
	return s.Sessions.Put(ctx, hashKey(sessionID), s.sessionOwner(sub), sessionLifetime)
}

// sessionOwner is how a binding names its owner: the same sub at another
// issuer is another user.
func (s *Site) sessionOwner(sub string) []byte {
	return []byte(s.Issuer + " " + sub)
}
