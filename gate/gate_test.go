package gate

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// newGate returns a gate with cfg's settings, and for those cfg leaves
// unset: realm mcp, the whole of https://h.example as its resource, and a
// verifier that knows no token.
func newGate(cfg Config) (*Gate, error) {
	if cfg.Realm == "" {
		cfg.Realm = "mcp"
	}
	if cfg.Resources == nil {
		rs, err := NewResources("https://h.example", nil)
		if err != nil {
			return nil, err
		}
		cfg.Resources = rs
	}
	if cfg.Verifier == nil {
		cfg.Verifier = fakeVerifier{}
	}
	return New(cfg)
}

// fakeVerifier knows the tokens it maps to claims; the audience of a claim
// must be the resource asked for. The token "unreachable" cannot be checked.
type fakeVerifier map[string]*tokens.AccessClaims

func (v fakeVerifier) Verify(_ context.Context, token, audience string) (*tokens.AccessClaims, error) {
	if token == "unreachable" {
		return nil, errors.New("authorization server unreachable")
	}
	c, ok := v[token]
	if !ok || !slices.Contains(c.Audience, audience) {
		return nil, &tokens.InvalidTokenError{Reason: "token is invalid"}
	}
	return c, nil
}

// fakeRevocations revokes the listed jtis; jti "store-down" cannot be checked.
type fakeRevocations []string

func (r fakeRevocations) Revoked(jti string) (bool, error) {
	if jti == "store-down" {
		return false, errors.New("store unreachable")
	}
	return slices.Contains(r, jti), nil
}

// newRing returns a key ring in a store of its own, and the store.
func newRing(t testing.TB) (*tokens.KeyRing, storage.Store) {
	t.Helper()
	db, err := storage.OpenBadger(t.TempDir(), zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	ring, err := tokens.NewKeyRing(context.Background(), db, tokens.KeyRingConfig{RotationPeriod: 24 * time.Hour, RetainPeriod: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return ring, db
}

func TestDecide(t *testing.T) {
	resources, err := NewResources("https://h.example", []ResourceConfig{
		{Path: "/notes/mcp", Scopes: []string{"notes"}}, {Path: "/todos/mcp"}, {Path: "/todos/admin/mcp"},
	})
	if err != nil {
		t.Fatal(err)
	}
	claims := func(jti, aud, scope string) *tokens.AccessClaims {
		return &tokens.AccessClaims{JWTID: jti, Subject: "users:alice", Audience: tokens.Audience{aud}, Scope: scope}
	}
	g, err := newGate(Config{
		Realm:     `my "realm"`,
		Resources: resources,
		Verifier: fakeVerifier{
			"notes":      claims("j1", "https://h.example/notes/mcp", "notes"),
			"notes-all":  claims("j2", "https://h.example/notes/mcp", "notes admin"),
			"revoked":    claims("j3", "https://h.example/notes/mcp", "notes"),
			"store-down": claims("store-down", "https://h.example/notes/mcp", "notes"),
			"todos":      claims("j4", "https://h.example/todos/mcp", "todo:write"),
		},
		Revocations:   fakeRevocations{"j3"},
		ScopeRules:    []ScopeRule{{Pattern: "/notes/mcp/admin*", Scopes: []string{"admin"}}},
		ToolScopes:    map[string][]string{"delete_todo": {"todo:delete"}},
		ScopeIncludes: map[string][]string{"todo:write": {"todo:read"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	const notesMeta = `resource_metadata="https://h.example/.well-known/oauth-protected-resource/notes/mcp"`
	const todosMeta = `resource_metadata="https://h.example/.well-known/oauth-protected-resource/todos/mcp"`
	call := func(tool string) string {
		return `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"` + tool + `"}}`
	}
	for _, tc := range []struct {
		name          string
		method        string
		target        string
		headers       map[string][]string
		body          string
		status        int    // 0: allowed
		challenge     string // the exact WWW-Authenticate; "" for none
		resource      string // the matched resource's URL; "" for none
		sessionID     string
		reasonContain string
	}{
		{name: "allowed", target: "/notes/mcp", headers: bearer("notes"), resource: "https://h.example/notes/mcp"},
		{name: "scheme in any case", target: "/notes/mcp", headers: map[string][]string{"Authorization": {"bEaReR notes"}}, resource: "https://h.example/notes/mcp"},
		{name: "session id kept", target: "/notes/mcp", headers: with(bearer("notes"), "Mcp-Session-Id", "s-1"), resource: "https://h.example/notes/mcp", sessionID: "s-1"},
		{name: "no token asks for the resource's scopes", target: "/notes/mcp", status: 401,
			challenge: `Bearer realm="my realm", ` + notesMeta + `, scope="notes"`, resource: "https://h.example/notes/mcp"},
		{name: "basic credentials count as none", target: "/todos/mcp", headers: map[string][]string{"Authorization": {"Basic YTpi"}}, status: 401,
			challenge: `Bearer realm="my realm", ` + todosMeta, resource: "https://h.example/todos/mcp"},
		{name: "token in the query only is anonymous", target: "/todos/mcp?access_token=todos", status: 401,
			challenge: `Bearer realm="my realm", ` + todosMeta, resource: "https://h.example/todos/mcp"},
		{name: "token sent twice", target: "/todos/mcp?access_token=todos", headers: bearer("todos"), status: 400,
			challenge: `Bearer realm="my realm", error="invalid_request", error_description="token sent in more than one way", ` + todosMeta, resource: "https://h.example/todos/mcp"},
		{name: "two Authorization headers", target: "/todos/mcp", headers: map[string][]string{"Authorization": {"Bearer todos", "Bearer todos"}}, status: 400,
			challenge: `Bearer realm="my realm", error="invalid_request", error_description="more than one Authorization header", ` + todosMeta, resource: "https://h.example/todos/mcp"},
		{name: "malformed token", target: "/todos/mcp", headers: bearer("a b"), status: 401,
			challenge: `Bearer realm="my realm", error="invalid_token", error_description="token is malformed", ` + todosMeta, resource: "https://h.example/todos/mcp"},
		{name: "unknown token", target: "/todos/mcp", headers: bearer("nope"), status: 401,
			challenge: `Bearer realm="my realm", error="invalid_token", error_description="token is invalid", ` + todosMeta, resource: "https://h.example/todos/mcp"},
		{name: "token of another resource", target: "/todos/mcp", headers: bearer("notes"), status: 401,
			challenge: `Bearer realm="my realm", error="invalid_token", error_description="token is invalid", ` + todosMeta, resource: "https://h.example/todos/mcp"},
		{name: "verifier unreachable", target: "/todos/mcp", headers: bearer("unreachable"), status: 503, resource: "https://h.example/todos/mcp", reasonContain: "could not be verified"},
		{name: "revoked token", target: "/notes/mcp", headers: bearer("revoked"), status: 401,
			challenge: `Bearer realm="my realm", error="invalid_token", error_description="token has been revoked", ` + notesMeta + `, scope="notes"`, resource: "https://h.example/notes/mcp"},
		{name: "revocations unreachable", target: "/notes/mcp", headers: bearer("store-down"), status: 503, resource: "https://h.example/notes/mcp", reasonContain: "checking revocations"},
		{name: "path needs a scope", target: "/Notes/MCP/Admin", headers: bearer("notes"), status: 403,
			challenge: `Bearer realm="my realm", error="insufficient_scope", error_description="token lacks a required scope", ` + notesMeta + `, scope="admin"`, resource: "https://h.example/notes/mcp"},
		{name: "path scope held", target: "/notes/mcp/admin", headers: bearer("notes-all"), resource: "https://h.example/notes/mcp"},
		{name: "ambiguous path names what Caddy's matchers see", target: "/todos/mcp/..%2F..%2Fnotes/mcp", headers: bearer("todos"), status: 400,
			challenge: `Bearer realm="my realm", error="invalid_request", error_description="` + errAmbiguousPath.Error() + `", ` + notesMeta, resource: "https://h.example/notes/mcp"},
		{name: "path between two resources", target: "/todos/sse", headers: bearer("todos"), status: 404},
		{name: "bad session id", target: "/todos/mcp", headers: with(bearer("todos"), "Mcp-Session-Id", "a b"), status: 400,
			challenge: `Bearer realm="my realm", error="invalid_request", error_description="` + errBadSessionID.Error() + `", ` + todosMeta, resource: "https://h.example/todos/mcp"},
		{name: "tool allowed", method: "POST", target: "/todos/mcp", headers: with(bearer("todos"), "Content-Type", "application/json"), body: call("add_todo"), resource: "https://h.example/todos/mcp"},
		{name: "tool needs a scope", method: "POST", target: "/todos/mcp", headers: with(bearer("todos"), "Content-Type", "application/json"), body: call("delete_todo"), status: 403,
			challenge: `Bearer realm="my realm", error="insufficient_scope", error_description="the tool needs a scope the token lacks", ` + todosMeta + `, scope="todo:delete"`, resource: "https://h.example/todos/mcp"},
		{name: "body not JSON-RPC", method: "POST", target: "/todos/mcp", headers: with(bearer("todos"), "Content-Type", "application/json"), body: "[1]", status: 400,
			challenge: `Bearer realm="my realm", error="invalid_request", error_description="` + errBadJSONRPC.Error() + `", ` + todosMeta, resource: "https://h.example/todos/mcp"},
		{name: "body not JSON", method: "POST", target: "/todos/mcp", headers: with(bearer("todos"), "Content-Type", "text/plain"), body: call("delete_todo"), status: 415, resource: "https://h.example/todos/mcp"},
		{name: "body too large", method: "POST", target: "/todos/mcp", headers: with(bearer("todos"), "Content-Type", "application/json"), body: strings.Repeat(" ", maxInspectedBody+1), status: 413, resource: "https://h.example/todos/mcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			method := tc.method
			if method == "" {
				method = http.MethodGet
			}
			r := httptest.NewRequest(method, "https://h.example"+tc.target, strings.NewReader(tc.body))
			for name, values := range tc.headers {
				r.Header[name] = values
			}
			d := g.Decide(r)
			if d.Status != tc.status || d.Challenge != tc.challenge {
				t.Fatalf("status %d, challenge %q (%s); want %d, %q", d.Status, d.Challenge, d.Reason, tc.status, tc.challenge)
			}
			if (d.Claims != nil) != (tc.status == 0) {
				t.Errorf("claims %v with status %d", d.Claims, d.Status)
			}
			if got := resourceURL(d.Resource); got != tc.resource {
				t.Errorf("resource %q, want %q", got, tc.resource)
			}
			if d.SessionID != tc.sessionID {
				t.Errorf("session %q, want %q", d.SessionID, tc.sessionID)
			}
			if !strings.Contains(d.Reason, tc.reasonContain) || (tc.status != 0 && d.Reason == "") {
				t.Errorf("reason %q", d.Reason)
			}
		})
	}
}

// A body the gate read is there again for the backend.
func TestDecideRestoresTheBody(t *testing.T) {
	g, err := newGate(Config{
		Verifier:   fakeVerifier{"t": {Audience: tokens.Audience{"https://h.example"}}},
		ToolScopes: map[string][]string{"x": {"y"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search"}}`
	r := httptest.NewRequest(http.MethodPost, "https://h.example/mcp", strings.NewReader(body))
	r.Header.Set("Authorization", "Bearer t")
	r.Header.Set("Content-Type", "application/json")
	if d := g.Decide(r); d.Claims == nil {
		t.Fatalf("refused: %d %s", d.Status, d.Reason)
	}
	if got, err := io.ReadAll(r.Body); err != nil || string(got) != body || r.ContentLength != int64(len(body)) {
		t.Errorf("body %q (length %d), %v", got, r.ContentLength, err)
	}
}

func bearer(token string) map[string][]string {
	return map[string][]string{"Authorization": {"Bearer " + token}}
}

func with(h map[string][]string, name, value string) map[string][]string {
	h[http.CanonicalHeaderKey(name)] = append(h[http.CanonicalHeaderKey(name)], value)
	return h
}

func resourceURL(r *Resource) string {
	if r == nil {
		return ""
	}
	return r.URL
}
