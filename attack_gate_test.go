package mcpauth

import (
	"bufio"
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// These tests attack the gate the way a client that holds a token for one
// resource would try to reach another, or more than its token allows,
// against a real Caddy routing to real backends.

// pathBackend answers with its name and the request target it received,
// so a test sees exactly what reached which backend.
func pathBackend(t *testing.T, name string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"backend": name, "target": r.RequestURI, "session": r.Header.Values("Mcp-Session-Id"), "body": string(body)})
	}))
	t.Cleanup(srv.Close)
	return srv
}

// twoResourceSite starts Caddy with the notes and todos MCP servers behind
// their own handle blocks and returns a token minter for the site's keys.
func twoResourceSite(t *testing.T, extra string) func(sub, resource, scope string) string {
	storagePath, logDir := t.TempDir(), t.TempDir()
	notes, todos, other := pathBackend(t, "notes"), pathBackend(t, "todos"), pathBackend(t, "other")
	startCaddy(t, globalOptions(storagePath, filepath.Join(logDir, "caddy.log"))+fmt.Sprintf(`
%s {
	mcp_auth {
		%s
		resource /notes/mcp {
			scopes notes
		}
		resource /todos/mcp {
			scopes todos
		}
		require_scope /notes/mcp/admin* admin
		require_scope /todos/mcp/purge admin
		%s
	}
	handle /notes/mcp* {
		reverse_proxy %s
	}
	handle /todos/mcp* {
		reverse_proxy %s
	}
	handle {
		reverse_proxy %s
	}
}
`, siteAddr(), usersUpstream(), extra, notes.Listener.Addr(), todos.Listener.Addr(), other.Listener.Addr()))
	ring := testRing(t, storagePath)
	return func(sub, resource, scope string) string {
		return mint(t, ring, func(c *tokens.AccessClaims) {
			c.Subject = sub
			c.Audience = tokens.Audience{siteAddr() + resource}
			c.Scope = scope
		})
	}
}

// rawRequest sends a request line and headers exactly as given, as an
// attacker's client would, without Go's URL parsing or header
// canonicalisation in between; it returns the status, the challenge and
// which backend answered with what target.
func rawRequest(t *testing.T, method, target string, header [][2]string, body string) (status int, challenge string, reached map[string]any) {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(dataHome, "caddy", "pki", "authorities", "local", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	conn, err := tls.Dial("tcp", fmt.Sprintf("localhost:%d", httpsPort), &tls.Config{RootCAs: pool, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var req strings.Builder
	fmt.Fprintf(&req, "%s %s HTTP/1.1\r\nHost: localhost:%d\r\nConnection: close\r\n", method, target, httpsPort)
	for _, h := range header {
		fmt.Fprintf(&req, "%s: %s\r\n", h[0], h[1])
	}
	fmt.Fprintf(&req, "Content-Length: %d\r\n\r\n%s", len(body), body)
	if _, err := io.WriteString(conn, req.String()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	for err == nil && resp.StatusCode >= 100 && resp.StatusCode < 200 { // informational: the answer follows
		resp, err = http.ReadResponse(br, nil)
	}
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(b, &reached)
	return resp.StatusCode, resp.Header.Get("WWW-Authenticate"), reached
}

func bearerLine(token string) [][2]string { return [][2]string{{"Authorization", "Bearer " + token}} }

// A token for /notes/mcp must not open /todos/mcp in any spelling Caddy
// routes to the todos backend, and a path that names the todos resource
// never falls back to the default (first) resource.
func TestAttackPathCaseReachesOtherResource(t *testing.T) {
	mint := twoResourceSite(t, "")
	notes, todos := mint("user-alice", "/notes/mcp", "notes"), mint("user-alice", "/todos/mcp", "todos")
	for _, target := range []string{
		"/TODOS/mcp", "/todos/MCP", "/Todos/Mcp/x", "/todos/mcpx", "/todos/mcp/", "/to%64os/mcp", "/%54ODOS/mcp",
	} {
		status, challenge, reached := rawRequest(t, "GET", target, bearerLine(notes), "")
		if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
			t.Errorf("notes token at %s: %d %q reached %v", target, status, challenge, reached)
		}
	}
	// The todos token works there: the gate and Caddy agree on the resource.
	for _, target := range []string{"/TODOS/mcp", "/Todos/Mcp/x", "/to%64os/mcp"} {
		if status, _, reached := rawRequest(t, "GET", target, bearerLine(todos), ""); status != http.StatusOK || reached["backend"] != "todos" {
			t.Errorf("todos token at %s: %d %v", target, status, reached)
		}
	}
	if status, _, reached := rawRequest(t, "GET", "/NOTES/Mcp", bearerLine(notes), ""); status != http.StatusOK || reached["backend"] != "notes" {
		t.Errorf("notes token at /NOTES/Mcp: %d %v", status, reached)
	}
}

// reverse_proxy forwards the raw path; a backend that decodes or resolves
// it differently from Caddy must never be handed a path the gate judged as
// another one. Every such spelling inside the protected area is a 400.
func TestAttackEncodedTraversalReachesOtherResource(t *testing.T) {
	mint := twoResourceSite(t, "")
	notes, todos := mint("user-alice", "/notes/mcp", "notes"), mint("user-alice", "/todos/mcp", "todos")
	for _, target := range []string{
		"/todos/mcp/..%2F..%2Fnotes/mcp", "/todos/mcp/..%2f..%2fnotes/mcp", "/notes/mcp/..%2F..%2Ftodos/mcp",
		"/todos/mcp/..%5C..%5Cnotes/mcp", `/todos/mcp/..\..\notes/mcp`, "/todos/mcp/%2E%2E/%2E%2E/notes/mcp",
		"/todos/mcp/%2e%2e%2f%2e%2e%2fnotes/mcp", "/todos/mcp/..%252F..%252Fnotes/mcp", "/todos/mcp/../../notes/mcp",
		"/notes/mcp/../../todos/mcp", "/todos/mcp/./x", "/todos/mcp/..;/..;/notes/mcp", "/todos/mcp;/x",
		"/todos//mcp", "//todos/mcp", "/todos./mcp", "/todos%20/mcp", "/todos/mcp/%00", "/todos/mcp/%C0%AE%C0%AE%C0%AFnotes", "/todos/mcp/x%2Ejson",
	} {
		for name, token := range map[string]string{"notes": notes, "todos": todos} {
			status, challenge, reached := rawRequest(t, "GET", target, bearerLine(token), "")
			if status != http.StatusBadRequest || !strings.Contains(challenge, `error="invalid_request"`) {
				t.Errorf("%s token at %s: %d %q reached %v", name, target, status, challenge, reached)
			}
		}
	}
}

// require_scope follows Caddy's matching: no spelling of a protected path
// skips the rule.
func TestAttackRequireScopeSkippedByCase(t *testing.T) {
	mint := twoResourceSite(t, "")
	notes, notesAdmin, todos := mint("user-alice", "/notes/mcp", "notes"), mint("user-alice", "/notes/mcp", "notes admin"), mint("user-alice", "/todos/mcp", "todos")
	for target, token := range map[string]string{
		"/notes/mcp/ADMIN": notes, "/notes/mcp/Admin/users": notes, "/NOTES/MCP/admin": notes, "/notes/mcp/%61dmin": notes,
		"/notes/mcp/adminx": notes, "/todos/mcp/PURGE": todos, "/todos/mcp/purge/": todos, "/todos/mcp/%50urge": todos,
	} {
		status, challenge, reached := rawRequest(t, "GET", target, bearerLine(token), "")
		if status != http.StatusForbidden || !strings.Contains(challenge, `scope="admin"`) {
			t.Errorf("%s without admin: %d %q reached %v", target, status, challenge, reached)
		}
	}
	for _, target := range []string{"/notes//mcp/admin", "/notes/mcp/./admin", "/notes/mcp/x/../admin", "/notes/mcp%2Fadmin"} {
		if status, _, reached := rawRequest(t, "GET", target, bearerLine(notes), ""); status != http.StatusBadRequest {
			t.Errorf("%s: %d reached %v", target, status, reached)
		}
	}
	if status, _, reached := rawRequest(t, "GET", "/notes/mcp/ADMIN", bearerLine(notesAdmin), ""); status != http.StatusOK || reached["backend"] != "notes" {
		t.Errorf("admin token: %d %v", status, reached)
	}
}

// A site with one resource at /mcp and other paths: the resource's token
// works everywhere Caddy routes to its backend; spellings that could reach
// elsewhere are refused.
func TestAttackPathVariantsOnSingleResourceSite(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	startCaddy(t, gatedSite(t, storagePath, logDir, ""))
	ring := testRing(t, storagePath)
	valid := mint(t, ring, nil)
	origin := mint(t, ring, func(c *tokens.AccessClaims) { c.Audience = tokens.Audience{siteAddr()} })
	for target, want := range map[string]int{
		"/MCP": 0, "/Mcp/": 0, "/other": 200, "/OTHER/x": 200, "/admin/users": 403, "/ADMIN/users": 403, "/%61dmin/users": 403,
		"/mcp/..%2Fadmin/users": 400, "/mcp/../admin/users": 400, "/other/..%2F..%2Fmcp": 400, "//admin/users": 400, "/x;/../admin": 400,
	} {
		status, challenge, reached := rawRequest(t, "GET", target, bearerLine(valid), "")
		switch {
		case want == 0 && challenge != "":
			t.Errorf("%s: %d %q, the gate refused a valid request", target, status, challenge)
		case want != 0 && status != want:
			t.Errorf("%s: %d reached %v, want %d", target, status, reached, want)
		}
	}
	for _, target := range []string{"/mcp", "/MCP", "/other", "/Other"} {
		if status, _, _ := rawRequest(t, "GET", target, bearerLine(origin), ""); status != http.StatusUnauthorized {
			t.Errorf("token for the origin at %s: %d", target, status)
		}
	}
}

// The gate judges a tools/call by what the backend will read; a body that
// JavaScript, Python and Go readers could read as different calls is
// refused, and an accepted one reaches the backend byte for byte.
func TestAttackToolScopeSmuggling(t *testing.T) {
	mint := twoResourceSite(t, "tool_scope delete_todo admin")
	todos := mint("user-alice", "/todos/mcp", "todos")
	post := func(body string, extra ...[2]string) (int, string, map[string]any) {
		return rawRequest(t, "POST", "/todos/mcp", append(bearerLine(todos), append(extra, [2]string{"Content-Type", "application/json"})...), body)
	}
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo","NAME":"x"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"NAME":"x","name":"delete_todo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","name":"delete_todo"}}`,
		`{"jsonrpc":"2.0","id":1,"Method":"ping","method":"tools/call","params":{"name":"delete_todo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","Method":"ping","params":{"name":"delete_todo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/call","params":{"name":"delete_todo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"Params":{"name":"delete_todo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"paramſ":{"name":"delete_todo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x"},"p\u0061rams":{"name":"delete_todo"}}`,
		`{"jsonrpc":"2.0","JSONRPC":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"x","Name":"delete_todo"}}]`,
		`{"jsonrpc":"2.0","id":1,"method":"ping"} {"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_todo"}}`,
		"\ufeff{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"delete_todo\"}}",
		"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"delete_todo\xff\"}}",
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo\ud800"}}`,
	} {
		if status, challenge, reached := post(body); status != http.StatusBadRequest || !strings.Contains(challenge, `error="invalid_request"`) {
			t.Errorf("%s: %d %q reached %v", body, status, challenge, reached)
		}
	}
	// What the backend reads as delete_todo needs the scope, in any spelling.
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo"}}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools\/call","params":{"n\u0061me":"delete\u005ftodo"}}`,
		`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"delete_todo"}}]`,
	} {
		if status, challenge, reached := post(body); status != http.StatusForbidden || !strings.Contains(challenge, `scope="admin"`) {
			t.Errorf("%s: %d %q reached %v", body, status, challenge, reached)
		}
	}
	// Whatever a backend could take for a POST is read.
	if status, challenge, reached := rawRequest(t, "post", "/todos/mcp", append(bearerLine(todos), [2]string{"Content-Type", "application/json"}), `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo"}}`); status != http.StatusForbidden {
		t.Errorf("lower-case post: %d %q reached %v", status, challenge, reached)
	}
	// Headers must agree with the body, and come once.
	call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_todos"}}`
	for _, h := range [][][2]string{
		{{"Mcp-Method", "tools/call"}, {"Mcp-Method", "tools/call"}},
		{{"Mcp-Method", "tools/call"}, {"Mcp-Name", "list_todos"}, {"Mcp-Name", "delete_todo"}},
		{{"Mcp-Method", "tools/list"}},
	} {
		if status, _, reached := post(call, h...); status != http.StatusBadRequest {
			t.Errorf("headers %v: %d reached %v", h, status, reached)
		}
	}
	// Mcp-Name mirrors the uri of resources/read (SEP-2243).
	read := `{"jsonrpc":"2.0","id":1,"method":"resources/read","params":{"uri":"todo://1"}}`
	if status, _, reached := post(read, [2]string{"Mcp-Method", "resources/read"}, [2]string{"Mcp-Name", "todo://1"}); status != http.StatusOK {
		t.Errorf("resources/read with its headers: %d reached %v", status, reached)
	}
	if status, _, reached := post(read, [2]string{"Mcp-Method", "resources/read"}, [2]string{"Mcp-Name", "todo://2"}); status != http.StatusBadRequest {
		t.Errorf("resources/read with another uri in Mcp-Name: %d reached %v", status, reached)
	}
	// A call the token may make passes untouched.
	body := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"list_todos","arguments":{"name":"delete_todo","Name":1}}}`
	status, _, reached := post(body, [2]string{"Mcp-Method", "tools/call"}, [2]string{"Mcp-Name", "list_todos"})
	if status != http.StatusOK || reached["backend"] != "todos" || reached["body"] != body {
		t.Errorf("allowed call: %d %v", status, reached)
	}
}

// A backend decodes the body by its declared charset and content coding
// (Express's json parser takes any utf-* charset, UTF-7 included, and
// inflates gzip), so a tools/call hidden that way must not pass the gate
// as a body it reads differently: it never reaches the backend.
func TestAttackBodyCharsetHidesToolCall(t *testing.T) {
	mint := twoResourceSite(t, "tool_scope delete_todo admin")
	todos := mint("user-alice", "/todos/mcp", "todos")
	utf7Call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"+AGQ-elete_todo"}}`
	utf7Method := `{"jsonrpc":"2.0","id":1,"+AG0-ethod":"tools/call","method":"ping","params":{"name":"delete_todo"}}`
	utf7Batch := `[{"jsonrpc":"2.0","id":1,"method":"tools/list"},{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"+AGQ-elete_todo"}}]`
	var gzipped strings.Builder
	zw := gzip.NewWriter(&gzipped)
	_, _ = io.WriteString(zw, `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo"}}`)
	_ = zw.Close()
	for _, c := range []struct {
		body   string
		header [][2]string
	}{
		{utf7Call, [][2]string{{"Content-Type", "application/json; charset=utf-7"}}},
		{utf7Call, [][2]string{{"Content-Type", "application/json; charset=UTF-7"}}},
		{utf7Call, [][2]string{{"Content-Type", `application/json; charset="utf-7"`}}},
		{utf7Call, [][2]string{{"Content-Type", "application/json; charset*=utf-8''utf-7"}}},
		{utf7Call, [][2]string{{"Content-Type", "application/json; charset=utf-8; charset=utf-7"}}},
		{utf7Call, [][2]string{{"Content-Type", "application/json"}, {"Content-Type", "application/json; charset=utf-7"}}},
		{utf7Call, [][2]string{{"Content-Type", "application/json; charset=utf-7"}, {"Content-Type", "application/json"}}},
		{utf7Call, [][2]string{{"Content-Type", `application/json; x=";charset=utf-7"`}}},
		{utf7Call, nil},
		{utf7Call, [][2]string{{"Content-Type", "text/plain; charset=utf-7"}}},
		{utf7Method, [][2]string{{"Content-Type", "application/json; charset=utf-7"}}},
		{utf7Batch, [][2]string{{"Content-Type", "application/json; charset=utf-7"}}},
		{utf7Call, [][2]string{{"Content-Type", "application/json; charset=utf-16le"}}},
		{gzipped.String(), [][2]string{{"Content-Type", "application/json"}, {"Content-Encoding", "gzip"}}},
		{gzipped.String(), [][2]string{{"Content-Type", "application/json"}, {"Content-Encoding", "identity, gzip"}}},
		{gzipped.String(), [][2]string{{"Content-Type", "application/json"}, {"Content-Encoding", "identity"}, {"Content-Encoding", "gzip"}}},
	} {
		if status, _, reached := rawRequest(t, "POST", "/todos/mcp", append(bearerLine(todos), c.header...), c.body); status != http.StatusUnsupportedMediaType || reached != nil {
			t.Errorf("%v %.40q: %d reached %v", c.header, c.body, status, reached)
		}
	}
	// UTF-8, declared in any spelling or not at all, is read as the gate reads it.
	for _, ct := range []string{"application/json", "Application/JSON; Charset=UTF-8", `application/json;charset="utf-8"`} {
		call := `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_todo"}}`
		if status, challenge, reached := rawRequest(t, "POST", "/todos/mcp", append(bearerLine(todos), [2]string{"Content-Type", ct}), call); status != http.StatusForbidden || !strings.Contains(challenge, `scope="admin"`) {
			t.Errorf("%s: %d %q reached %v", ct, status, challenge, reached)
		}
		list := `{"jsonrpc":"2.0","id":1,"method":"tools/list"}`
		if status, _, reached := rawRequest(t, "POST", "/todos/mcp", append(bearerLine(todos), [2]string{"Content-Type", ct}, [2]string{"Content-Encoding", "identity"}), list); status != http.StatusOK || reached["backend"] != "todos" {
			t.Errorf("tools/list as %s: %d reached %v", ct, status, reached)
		}
	}
}

// Deeply nested JSON must not cost the gate memory in proportion to the
// body: values nested past 64 levels are refused before they are read.
func TestAttackDeepJSONNestingExhaustsMemory(t *testing.T) {
	mint := twoResourceSite(t, "tool_scope delete_todo admin")
	todos := mint("user-alice", "/todos/mcp", "todos")
	for _, body := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":` + strings.Repeat("[", 1<<20),
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`,
		`{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":` + strings.Repeat(`{"a":`, 65) + "1" + strings.Repeat("}", 66) + `}`,
	} {
		status, challenge, reached := rawRequest(t, "POST", "/todos/mcp", append(bearerLine(todos), [2]string{"Content-Type", "application/json"}), body)
		if status != http.StatusBadRequest || !strings.Contains(challenge, `error="invalid_request"`) || reached != nil {
			t.Errorf("%d-byte body nested deep: %d %q reached %v", len(body), status, challenge, reached)
		}
	}
	nested := `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"x":` + strings.Repeat("[", 60) + strings.Repeat("]", 60) + `}}`
	if status, _, reached := rawRequest(t, "POST", "/todos/mcp", append(bearerLine(todos), [2]string{"Content-Type", "application/json"}), nested); status != http.StatusOK || reached["backend"] != "todos" {
		t.Errorf("60 levels: %d reached %v", status, reached)
	}
}

// An MCP session belongs to the user who started it. A second
// Mcp-Session-Id header must not carry someone else's session past the
// owner check, which looked only at the first.
func TestAttackSecondSessionHeaderSkipsOwnerCheck(t *testing.T) {
	mint := twoResourceSite(t, "")
	alice := mint("user-alice", "/notes/mcp", "notes")
	bob := mint("user-bob", "/notes/mcp", "notes")
	if status, _, _ := rawRequest(t, "GET", "/notes/mcp", append(bearerLine(alice), [2]string{"Mcp-Session-Id", "alice-session"}), ""); status != http.StatusOK {
		t.Fatalf("alice starting her session: %d", status)
	}
	if status, _, reached := rawRequest(t, "GET", "/notes/mcp", append(bearerLine(bob), [2]string{"Mcp-Session-Id", "alice-session"}), ""); status != http.StatusNotFound {
		t.Errorf("bob with alice's session: %d reached %v", status, reached)
	}
	for _, headers := range [][][2]string{
		{{"Mcp-Session-Id", ""}, {"Mcp-Session-Id", "alice-session"}},
		{{"Mcp-Session-Id", "bob-session"}, {"Mcp-Session-Id", "alice-session"}},
		{{"Mcp-Session-Id", "alice-session"}, {"mcp-session-id", "alice-session"}},
	} {
		status, challenge, reached := rawRequest(t, "GET", "/notes/mcp", append(bearerLine(bob), headers...), "")
		if status != http.StatusBadRequest || !strings.Contains(challenge, `error="invalid_request"`) {
			t.Errorf("bob with %v: %d %q reached %v", headers, status, challenge, reached)
		}
	}
	// One empty header is no session, for the gate and the backend alike.
	status, _, reached := rawRequest(t, "GET", "/notes/mcp", append(bearerLine(bob), [2]string{"Mcp-Session-Id", ""}), "")
	if status != http.StatusOK || reached["session"] != nil {
		t.Errorf("empty session header: %d, backend saw %v", status, reached["session"])
	}
}

// A session id the owner check does not look at must not reach the
// backend: long or malformed ids are refused, never waved through.
func TestAttackLongSessionIDSkipsOwnerCheck(t *testing.T) {
	mint := twoResourceSite(t, "")
	alice := mint("user-alice", "/notes/mcp", "notes")
	bob := mint("user-bob", "/notes/mcp", "notes")
	long := strings.Repeat("a", 513)
	for _, id := range []string{long, strings.Repeat("b", 100<<10/8), "has space", "tab\there", "caf\u00e9"} {
		for name, token := range map[string]string{"alice": alice, "bob": bob} {
			status, challenge, reached := rawRequest(t, "GET", "/notes/mcp", append(bearerLine(token), [2]string{"Mcp-Session-Id", id}), "")
			if status != http.StatusBadRequest || !strings.Contains(challenge, `error="invalid_request"`) {
				t.Errorf("%s with a %d-byte id %.10q: %d %q reached %v", name, len(id), id, status, challenge, reached)
			}
		}
	}
	// The longest id allowed is bound to its first user like any other.
	longest := strings.Repeat("c", 512)
	if status, _, _ := rawRequest(t, "GET", "/notes/mcp", append(bearerLine(alice), [2]string{"Mcp-Session-Id", longest}), ""); status != http.StatusOK {
		t.Fatalf("alice with a 512-byte id: %d", status)
	}
	if status, _, reached := rawRequest(t, "GET", "/notes/mcp", append(bearerLine(bob), [2]string{"Mcp-Session-Id", longest}), ""); status != http.StatusNotFound {
		t.Errorf("bob with alice's 512-byte session: %d reached %v", status, reached)
	}
}

// A session id that leaks is useless to another user in external mode
// too, where the tokens come from another authorization server.
func TestAttackSessionHijackInExternalMode(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-1"})
	client := startExternal(t, idp, "\n\t\t\taccept_jwt_typ JWT")
	alice := externalToken(t, idp, "at+jwt", nil)
	bob := externalToken(t, idp, "at+jwt", func(c map[string]any) { c["sub"] = "kc-bob" })

	status, header, body := initialize(t, client, "/mcp", alice)
	session := header.Get("Mcp-Session-Id")
	if status != http.StatusOK || session == "" {
		t.Fatalf("initialize: %d %s, session %q", status, body, session)
	}
	list := []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`)
	withSession := func(token string) http.Header {
		return http.Header{"Authorization": {"Bearer " + token}, "Mcp-Session-Id": {session},
			"Mcp-Protocol-Version": {"2025-06-18"}, "Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}}
	}
	if status, _, body := oauthtest.Do(t, client, http.MethodPost, siteAddr()+"/mcp", withSession(bob), list); status != http.StatusNotFound {
		t.Errorf("bob with alice's session: %d %s, want 404", status, body)
	}
	if status, _, body := oauthtest.Do(t, client, http.MethodPost, siteAddr()+"/mcp", withSession(alice), list); status != http.StatusOK {
		t.Errorf("alice with her session: %d %s", status, body)
	}
}

// A session id the gate has no binding for is claimed by one user only,
// however many present it at the same moment.
func TestAttackUnboundSessionClaimedByTwoUsers(t *testing.T) {
	storagePath := t.TempDir()
	startCaddy(t, gatedSite(t, storagePath, t.TempDir(), ""))
	client := mustTLSClient(t)
	ring := testRing(t, storagePath)
	alice := mint(t, ring, nil)
	mallory := mint(t, ring, func(c *tokens.AccessClaims) { c.Subject = "user-mallory" })
	for round := range 10 {
		session := fmt.Sprintf("unbound-session-%d", round)
		statuses := make(chan int, 2)
		for _, token := range []string{alice, mallory} {
			req, err := http.NewRequest(http.MethodGet, siteAddr()+"/other", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Mcp-Session-Id", session)
			go func() {
				resp, err := client.Do(req)
				if err != nil {
					statuses <- 0
					return
				}
				resp.Body.Close()
				statuses <- resp.StatusCode
			}()
		}
		got := []int{<-statuses, <-statuses}
		slices.Sort(got)
		if got[0] != http.StatusOK || got[1] != http.StatusNotFound {
			t.Errorf("round %d: two users presenting one unbound session got %v, want one 200 and one 404", round, got)
		}
	}
}

// sessionBackend is an MCP server that knows its sessions: a request
// without Mcp-Session-Id starts one, an id it did not issue gets 404.
// start adds a session it issued before the gate bound it.
func sessionBackend(t *testing.T) (addr string, start func(id string)) {
	var mu sync.Mutex
	known := map[string]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		id := r.Header.Get("Mcp-Session-Id")
		switch {
		case id == "":
			id = fmt.Sprintf("session-%d", len(known))
			known[id] = true
			w.Header().Set("Mcp-Session-Id", id)
		case !known[id]:
			w.Header().Set("Link", "</style.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints) // a final answer follows
			http.Error(w, "no such session", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"backend": "sessions", "session": id})
	}))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), func(id string) { mu.Lock(); known[id] = true; mu.Unlock() }
}

// Presenting made-up session ids must not make the gate store a binding
// for each: an id is claimed only once the backend accepts it, so ids the
// backend refuses cost nothing, and the user who first uses a real
// unbound session gets it, not whoever guessed its id earlier.
func TestAttackMadeUpSessionIDsFillSessionStore(t *testing.T) {
	storagePath := t.TempDir()
	backend, startSession := sessionBackend(t)
	startCaddy(t, globalOptions(storagePath, filepath.Join(t.TempDir(), "caddy.log"))+fmt.Sprintf(`
%s {
	mcp_auth {
		%s
		resource /mcp
	}
	reverse_proxy %s
}
`, siteAddr(), usersUpstream(), backend))
	ring := testRing(t, storagePath)
	alice := mint(t, ring, nil)
	mallory := mint(t, ring, func(c *tokens.AccessClaims) { c.Subject = "user-mallory" })
	get := func(token, session string) (int, map[string]any) {
		status, _, reached := rawRequest(t, "GET", "/mcp", append(bearerLine(token), [2]string{"Mcp-Session-Id", session}), "")
		return status, reached
	}
	for i := range 50 {
		if status, _ := get(mallory, fmt.Sprintf("made-up-%d", i)); status != http.StatusNotFound {
			t.Fatalf("made-up id %d: %d", i, status)
		}
	}
	// The backend issues made-up-7 only now (an id mallory guessed): alice
	// uses it first and it is hers; mallory's earlier 404 claimed nothing.
	startSession("made-up-7")
	if status, reached := get(alice, "made-up-7"); status != http.StatusOK || reached["session"] != "made-up-7" {
		t.Fatalf("alice with the new session: %d %v", status, reached)
	}
	if status, reached := get(mallory, "made-up-7"); status != http.StatusNotFound || reached != nil {
		t.Errorf("mallory with alice's session: %d %v", status, reached)
	}
	// A session the backend creates is bound to its creator at once.
	status, _, reached := rawRequest(t, "GET", "/mcp", bearerLine(alice), "")
	created, _ := reached["session"].(string)
	if status != http.StatusOK || created == "" {
		t.Fatalf("starting a session: %d %v", status, reached)
	}
	if status, reached := get(mallory, created); status != http.StatusNotFound || reached != nil {
		t.Errorf("mallory with alice's new session: %d %v", status, reached)
	}
	if status, _ := get(alice, created); status != http.StatusOK {
		t.Errorf("alice with her new session: %d", status)
	}
}

// outsideResourcesSite starts Caddy with the given resources and routes
// every path below /todos/ to the todos backend, the way
// `handle_path /todos/*` serves an MCP server's other endpoints (SSE,
// messages) next to its resource path.
func outsideResourcesSite(t *testing.T, resources ...string) func(resource string) string {
	storagePath := t.TempDir()
	todos, other := pathBackend(t, "todos"), pathBackend(t, "other")
	var declared strings.Builder
	for _, r := range resources {
		fmt.Fprintf(&declared, "\t\tresource %s\n", r)
	}
	startCaddy(t, globalOptions(storagePath, filepath.Join(t.TempDir(), "caddy.log"))+fmt.Sprintf(`
%s {
	mcp_auth {
		%s
%s	}
	handle_path /todos/* {
		reverse_proxy %s
	}
	handle {
		reverse_proxy %s
	}
}
`, siteAddr(), usersUpstream(), declared.String(), todos.Listener.Addr(), other.Listener.Addr()))
	ring := testRing(t, storagePath)
	return func(resource string) string {
		return mint(t, ring, func(c *tokens.AccessClaims) { c.Audience = tokens.Audience{siteAddr() + resource} })
	}
}

// A path outside every resource must not fall back to the default (first)
// resource when it lies beside another resource: /todos/sse reaches the
// todos backend, so it needs a todos token, in any spelling.
func TestAttackPathOutsideResourcesFallsBackToDefault(t *testing.T) {
	mint := outsideResourcesSite(t, "/notes/mcp", "/todos/mcp")
	notes, todos := mint("/notes/mcp"), mint("/todos/mcp")
	for _, target := range []string{"/todos/sse", "/Todos/messages", "/todos/", "/TODOS/sse?x=1", "/to%64os/sse", "/todos/a/b"} {
		if status, challenge, reached := rawRequest(t, "GET", target, bearerLine(notes), ""); status != http.StatusUnauthorized || !strings.Contains(challenge, "/.well-known/oauth-protected-resource/todos/mcp") {
			t.Errorf("notes token at %s: %d %q reached %v", target, status, challenge, reached)
		}
		if status, _, reached := rawRequest(t, "GET", target, bearerLine(todos), ""); status != http.StatusOK || reached["backend"] != "todos" {
			t.Errorf("todos token at %s: %d reached %v", target, status, reached)
		}
	}
	// A path beside no resource is still guarded by the default one.
	for _, target := range []string{"/", "/other", "/todosx/sse"} {
		if status, _, reached := rawRequest(t, "GET", target, bearerLine(todos), ""); status != http.StatusUnauthorized {
			t.Errorf("todos token at %s: %d reached %v", target, status, reached)
		}
		if status, _, reached := rawRequest(t, "GET", target, bearerLine(notes), ""); status != http.StatusOK || reached["backend"] != "other" {
			t.Errorf("notes token at %s: %d reached %v", target, status, reached)
		}
	}
}

// A path as close to two resources, neither of which leads to the other,
// is no resource's: no token takes it past the gate.
func TestAttackPathBetweenResourcesPicksOne(t *testing.T) {
	mint := outsideResourcesSite(t, "/notes/mcp", "/todos/mcp", "/todos/admin/mcp")
	for _, resource := range []string{"/notes/mcp", "/todos/mcp", "/todos/admin/mcp"} {
		for _, target := range []string{"/todos/sse", "/Todos/messages", "/todos/"} {
			if status, _, reached := rawRequest(t, "GET", target, bearerLine(mint(resource)), ""); status != http.StatusNotFound || reached != nil {
				t.Errorf("%s token at %s: %d reached %v", resource, target, status, reached)
			}
		}
	}
	// Below either resource, its own token works as before.
	if status, _, reached := rawRequest(t, "GET", "/todos/admin/sse", bearerLine(mint("/todos/admin/mcp")), ""); status != http.StatusOK || reached["backend"] != "todos" {
		t.Errorf("admin token at /todos/admin/sse: %d reached %v", status, reached)
	}
}
