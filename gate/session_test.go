package gate

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// memorySessions binds sessions in a map; the session id "down" cannot be
// checked.
type memorySessions struct {
	mu     sync.Mutex
	owners map[string]string // session id → sub
}

func (m *memorySessions) OwnedBy(_ context.Context, id, sub string) (bool, bool, error) {
	if id == "down" {
		return false, false, errors.New("store unreachable")
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	owner, ok := m.owners[id]
	return !ok || owner == sub, !ok, nil
}

func (m *memorySessions) Claim(_ context.Context, id, sub string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if owner, ok := m.owners[id]; ok {
		return owner == sub, nil
	}
	m.owners[id] = sub
	return true, nil
}

func (m *memorySessions) Bind(_ context.Context, id, sub string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.owners[id] = sub
	return nil
}

func (m *memorySessions) owner(id string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.owners[id]
}

func (m *memorySessions) set(id, sub string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.owners[id] = sub
}

// applyGate returns a gate whose sessions bob's "bobs" is bound in, that
// strips X-MCP-User, and the count of foreign sessions it reports.
func applyGate(t *testing.T, cfg Config) (*Gate, *memorySessions, *int) {
	t.Helper()
	sessions := &memorySessions{owners: map[string]string{"bobs": "users:bob"}}
	foreign := new(int)
	cfg.Sessions, cfg.StripHeaders, cfg.ForeignSession = sessions, []string{"X-MCP-User"}, func() { *foreign++ }
	g, err := newGate(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return g, sessions, foreign
}

// allowed is alice's request as Decide allows it, in session sessionID.
func allowed(sessionID string) Decision {
	return Decision{Claims: &tokens.AccessClaims{Subject: "users:alice", JWTID: "j1", Expiry: 1 << 40}, SessionID: sessionID}
}

func gatedRequest() *http.Request {
	r := httptest.NewRequest(http.MethodPost, "https://h.example/mcp", nil)
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Set("X-MCP-User", "root")
	return r
}

func TestApplyStripsHeaders(t *testing.T) {
	for _, pass := range []bool{false, true} {
		g, _, _ := applyGate(t, Config{PassAuthorization: pass})
		r := gatedRequest()
		if _, err := g.Apply(httptest.NewRecorder(), r, allowed("")); err != nil {
			t.Fatal(err)
		}
		if got := r.Header.Get("Authorization") != ""; got != pass {
			t.Errorf("PassAuthorization %v: Authorization passed %v", pass, got)
		}
		if v := r.Header.Get("X-MCP-User"); v != "" {
			t.Errorf("X-MCP-User %q passed", v)
		}
	}
}

func TestApplyChecksSessionOwner(t *testing.T) {
	g, sessions, foreign := applyGate(t, Config{})
	var stopped *ApplyError
	_, err := g.Apply(httptest.NewRecorder(), gatedRequest(), allowed("bobs"))
	if !errors.As(err, &stopped) || stopped.Status != http.StatusNotFound || !errors.Is(err, ErrForeignSession) || *foreign != 1 {
		t.Errorf("another user's session: %v (foreign %d)", err, *foreign)
	}
	_, err = g.Apply(httptest.NewRecorder(), gatedRequest(), allowed("down"))
	if !errors.As(err, &stopped) || stopped.Status != http.StatusServiceUnavailable {
		t.Errorf("store down: %v", err)
	}
	sessions.set("alices", "users:alice")
	w := httptest.NewRecorder()
	got, err := g.Apply(w, gatedRequest(), allowed("alices"))
	if err != nil || got != http.ResponseWriter(w) {
		t.Errorf("own bound session: %v, writer wrapped %v", err, got != http.ResponseWriter(w))
	}
}

func TestApplyAddsIdentityToken(t *testing.T) {
	ring, _ := newRing(t)
	identity, err := NewIdentityTokens(ring, "https://h.example", mustResources(t), "urn:example:backend")
	if err != nil {
		t.Fatal(err)
	}
	g, _, _ := applyGate(t, Config{Identity: identity})
	r := gatedRequest()
	r.Header.Set("X-MCP-Identity", "forged")
	if _, err := g.Apply(httptest.NewRecorder(), r, allowed("")); err != nil {
		t.Fatal(err)
	}
	if tok := r.Header.Get("X-MCP-Identity"); tok == "forged" || strings.Count(tok, ".") != 2 {
		t.Errorf("identity token %q", tok)
	}
}

// A session the backend creates is bound to the user whose request created it.
func TestApplyBindsNewSession(t *testing.T) {
	g, sessions, _ := applyGate(t, Config{})
	w, err := g.Apply(httptest.NewRecorder(), gatedRequest(), allowed(""))
	if err != nil {
		t.Fatal(err)
	}
	w.Header().Set("Mcp-Session-Id", "new-1")
	if _, err := w.Write([]byte("{}")); err != nil {
		t.Fatal(err)
	}
	if owner := sessions.owner("new-1"); owner != "users:alice" {
		t.Errorf("new session bound to %q", owner)
	}
}

// An unbound session is claimed once the backend accepts it, by the first
// of the users presenting it; a later one is answered as if the session did
// not exist, without the backend's response, whichever way it is written.
func TestApplyClaimsUnboundSession(t *testing.T) {
	for name, respond := range map[string]func(w http.ResponseWriter) error{
		"WriteHeader": func(w http.ResponseWriter) error {
			w.WriteHeader(http.StatusOK)
			_, err := w.Write([]byte("backend"))
			return err
		},
		"Write": func(w http.ResponseWriter) error {
			_, err := w.Write([]byte("backend"))
			return err
		},
		"ReadFrom": func(w http.ResponseWriter) error {
			_, err := w.(io.ReaderFrom).ReadFrom(strings.NewReader("backend"))
			return err
		},
		"Flush": func(w http.ResponseWriter) error {
			return http.NewResponseController(w).Flush()
		},
	} {
		t.Run(name, func(t *testing.T) {
			g, sessions, foreign := applyGate(t, Config{})
			rec := httptest.NewRecorder()
			w, err := g.Apply(rec, gatedRequest(), allowed("old"))
			if err != nil {
				t.Fatal(err)
			}
			sessions.set("old", "users:bob") // bob's request claimed it meanwhile
			w.Header().Set("X-Backend", "1")
			if err := respond(w); err != nil {
				t.Fatal(err)
			}
			if rec.Code != http.StatusNotFound || rec.Body.Len() != 0 || rec.Header().Get("X-Backend") != "" || *foreign != 1 {
				t.Errorf("lost claim: %d %q %v (foreign %d)", rec.Code, rec.Body, rec.Header(), *foreign)
			}

			rec = httptest.NewRecorder()
			if w, err = g.Apply(rec, gatedRequest(), allowed("older")); err != nil {
				t.Fatal(err)
			}
			if err := respond(w); err != nil {
				t.Fatal(err)
			}
			if rec.Code != http.StatusOK || sessions.owner("older") != "users:alice" {
				t.Errorf("won claim: %d, owner %q", rec.Code, sessions.owner("older"))
			}
		})
	}
}

// A backend that answers 404 does not know the session: nothing is
// claimed, nor by an informational response before it.
func TestApplyLeavesUnknownSessionUnclaimed(t *testing.T) {
	g, sessions, _ := applyGate(t, Config{})
	w, err := g.Apply(httptest.NewRecorder(), gatedRequest(), allowed("gone"))
	if err != nil {
		t.Fatal(err)
	}
	w.WriteHeader(http.StatusEarlyHints)
	if owner := sessions.owner("gone"); owner != "" {
		t.Errorf("claimed by an informational response for %q", owner)
	}
	w.WriteHeader(http.StatusNotFound)
	if owner := sessions.owner("gone"); owner != "" {
		t.Errorf("claimed by a 404 for %q", owner)
	}
}

// hijackable is a response writer that can be taken over, as a
// connection upgrade needs.
type hijackable struct {
	*httptest.ResponseRecorder
	hijacked bool
}

func (h *hijackable) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h.hijacked = true
	return nil, nil, nil
}

// The session binder keeps what streaming proxies use: flushing and
// hijacking through http.ResponseController reach the wrapped writer.
func TestSessionBinderStreams(t *testing.T) {
	g, _, _ := applyGate(t, Config{})
	under := &hijackable{ResponseRecorder: httptest.NewRecorder()}
	w, err := g.Apply(under, gatedRequest(), allowed(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := w.(*sessionBinder); !ok {
		t.Fatalf("writer %T is not the session binder", w)
	}
	rc := http.NewResponseController(w)
	if err := rc.Flush(); err != nil || !under.Flushed || under.Code != http.StatusOK {
		t.Errorf("flush: %v, flushed %v, status %d", err, under.Flushed, under.Code)
	}
	if _, _, err := rc.Hijack(); err != nil || !under.hijacked {
		t.Errorf("hijack: %v, hijacked %v", err, under.hijacked)
	}
}
func TestSessionID(t *testing.T) {
	for name, tc := range map[string]struct {
		values []string
		want   string
		ok     bool
	}{
		"none":         {nil, "", true},
		"one":          {[]string{"3f2a-Z~!"}, "3f2a-Z~!", true},
		"empty":        {[]string{""}, "", true},
		"512 bytes":    {[]string{strings.Repeat("a", 512)}, strings.Repeat("a", 512), true},
		"513 bytes":    {[]string{strings.Repeat("a", 513)}, "", false},
		"two":          {[]string{"", "x"}, "", false},
		"space":        {[]string{"a b"}, "", false},
		"non-ASCII":    {[]string{"caf\u00e9"}, "", false},
		"control byte": {[]string{"a\x7f"}, "", false},
	} {
		h := http.Header{}
		for _, v := range tc.values {
			h.Add("Mcp-Session-Id", v)
		}
		got, err := sessionID(h)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("%s: %q, %v", name, got, err)
		}
		if tc.ok && tc.want == "" && len(h.Values("Mcp-Session-Id")) != 0 {
			t.Errorf("%s: an empty header is left for the backend", name)
		}
	}
}
