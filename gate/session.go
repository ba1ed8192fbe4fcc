package gate

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"

	"go.uber.org/zap"
)

// Sessions holds the bindings of MCP sessions to the users whose requests
// created them, so that a session id that leaks is useless to anyone else
// (MCP security best practices, session hijacking).
type Sessions interface {
	// OwnedBy reports whether sub may use the session; unbound
	// reports a session without a binding, which may go on and be claimed
	// once the backend accepts it.
	OwnedBy(ctx context.Context, sessionID, sub string) (owned, unbound bool, err error)
	// Claim binds an unbound session to sub unless another user
	// claimed it first, and reports whether sub owns it.
	Claim(ctx context.Context, sessionID, sub string) (bool, error)
	// Bind binds a session the backend just created to sub.
	Bind(ctx context.Context, sessionID, sub string) error
}

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
	values := h["Mcp-Session-Id"]
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", errBadSessionID
	case values[0] == "":
		delete(h, "Mcp-Session-Id")
		return "", nil
	}
	id := values[0]
	if len(id) > maxSessionIDLength || strings.ContainsFunc(id, func(r rune) bool { return r < 0x21 || r > 0x7e }) {
		return "", errBadSessionID
	}
	return id, nil
}

// sessionBinder binds the MCP session a response creates (its
// Mcp-Session-Id header), or the unbound session the request named
// (claim) once the backend accepts it, to the user who made the request.
// It decides before the status goes out, so a claim another user's
// request won in the meantime is answered 404 instead of the backend's
// response. Streaming keeps working: Unwrap lets http.ResponseController
// reach the wrapped writer's Hijack and deadlines, and FlushError and
// ReadFrom, which reverse proxies use, decide the binding first.
type sessionBinder struct {
	http.ResponseWriter
	gate    *Gate
	r       *http.Request
	claim   string
	sub     string
	done    bool
	refused bool // the claim was lost: the backend's response is dropped
}

func (sb *sessionBinder) WriteHeader(status int) {
	// An informational response (103 Early Hints) comes before the one
	// that says whether the backend accepted the session.
	if sb.done || status >= 100 && status < 200 && status != http.StatusSwitchingProtocols {
		sb.ResponseWriter.WriteHeader(status)
		return
	}
	sb.done = true
	switch {
	case sb.claim != "" && status != http.StatusNotFound:
		switch owned, err := sb.gate.cfg.Sessions.Claim(sb.r.Context(), sb.claim, sb.sub); {
		case err != nil:
			sb.gate.cfg.Logger.Error("claiming MCP session", zap.Error(err))
			sb.refuse(http.StatusServiceUnavailable)
			return
		case !owned:
			// As if the session did not exist, as for any foreign session.
			sb.gate.countForeignSession()
			sb.refuse(http.StatusNotFound)
			return
		}
	case sb.claim == "":
		if id := sb.Header().Get("Mcp-Session-Id"); id != "" {
			if err := sb.gate.cfg.Sessions.Bind(sb.r.Context(), id, sb.sub); err != nil {
				sb.gate.cfg.Logger.Error("binding MCP session", zap.Error(err))
			}
		}
	}
	sb.ResponseWriter.WriteHeader(status)
}

// refuse answers status instead of the backend's response, which is dropped.
func (sb *sessionBinder) refuse(status int) {
	sb.refused = true
	clear(sb.Header())
	sb.ResponseWriter.WriteHeader(status)
}

func (sb *sessionBinder) Write(p []byte) (int, error) {
	if !sb.done {
		sb.WriteHeader(http.StatusOK)
	}
	if sb.refused {
		return len(p), nil
	}
	return sb.ResponseWriter.Write(p)
}

// ReadFrom and FlushError keep the wrapped writer's shortcuts from sending
// a status or body before the binding is decided.
func (sb *sessionBinder) ReadFrom(r io.Reader) (int64, error) {
	if !sb.done {
		sb.WriteHeader(http.StatusOK)
	}
	if sb.refused {
		return io.Copy(io.Discard, r)
	}
	if rf, ok := sb.ResponseWriter.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(sb.ResponseWriter, r)
}

func (sb *sessionBinder) FlushError() error {
	if !sb.done {
		sb.WriteHeader(http.StatusOK)
	}
	if sb.refused {
		return nil
	}
	return http.NewResponseController(sb.ResponseWriter).Flush()
}

// Push passes HTTP/2 server pushes on, as Caddy's own wrappers do.
func (sb *sessionBinder) Push(target string, opts *http.PushOptions) error {
	if pusher, ok := sb.ResponseWriter.(http.Pusher); ok {
		return pusher.Push(target, opts)
	}
	return http.ErrNotSupported
}

// Unwrap returns the wrapped writer, for http.ResponseController.
func (sb *sessionBinder) Unwrap() http.ResponseWriter {
	return sb.ResponseWriter
}

// Interface guards: what reverse proxies look for on a response writer.
var (
	_ io.ReaderFrom                   = (*sessionBinder)(nil)
	_ http.Pusher                     = (*sessionBinder)(nil)
	_ interface{ FlushError() error } = (*sessionBinder)(nil)
)
