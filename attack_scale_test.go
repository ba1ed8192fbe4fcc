package mcpauth

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Several instances, crashes and shutdown, with Caddy in processes of its
// own (see startCaddyProcess).

// shutdownBound is how long a Caddy whose store fails may take to exit:
// the store gives up closing after storage.CloseTimeout, and Caddy's own
// grace period is 1s in these tests.
const shutdownBound = storage.CloseTimeout + 5*time.Second

// badgerProcessSite is a Caddy with its Badger store in dir/badger and one
// authorization server with the built-in users.
func badgerProcessSite(dir string, admin, port int, storagePath string) string {
	return processGlobals(dir, admin, "storage_path "+storagePath) + fmt.Sprintf(`
http://127.0.0.1:%d {
	mcp_auth {
		%s
	}
	respond ok
}
`, port, usersUpstream())
}

// The Badger directory removed under a running Caddy: its last flush at
// close fails, and Badger retries it forever. However Caddy is asked to
// stop, or to move to another store, it must finish within the bound and
// say which store it gave up on.
func TestAttackStoreRemovedBeforeShutdownHangsCaddy(t *testing.T) {
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, p *caddyProcess, dir string, admin, port int)
	}{
		{"SIGTERM", func(t *testing.T, p *caddyProcess, _ string, _, _ int) {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}},
		{"caddy stop", func(t *testing.T, p *caddyProcess, _ string, _, _ int) {
			// What `caddy stop` does; the answer may not come, as Caddy exits.
			resp, err := http.Post("http://"+p.Admin+"/stop", "", nil)
			if err == nil {
				resp.Body.Close()
			}
		}},
		{"reload to another store", func(t *testing.T, p *caddyProcess, dir string, admin, port int) {
			moved := badgerProcessSite(dir, admin, port, filepath.Join(dir, "moved"))
			done := make(chan int, 1)
			go func() {
				resp, err := http.Post("http://"+p.Admin+"/load", "text/caddyfile", strings.NewReader(moved))
				if err != nil {
					done <- 0
					return
				}
				resp.Body.Close()
				done <- resp.StatusCode
			}()
			select {
			case status := <-done:
				if status != http.StatusOK {
					t.Errorf("reload: %d", status)
				}
			case <-time.After(shutdownBound):
				t.Fatalf("the reload did not finish within %s", shutdownBound)
			}
			// The new store works: a client registers.
			if status := registerStatus(t, fmt.Sprintf("http://127.0.0.1:%d", port)); status != http.StatusCreated {
				t.Errorf("registering after the reload: %d", status)
			}
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			admin, port := freePort(), freePort()
			store := filepath.Join(dir, "badger")
			p := startCaddyProcess(t, dir, badgerProcessSite(dir, admin, port, store))
			// Something to flush: a registration, on top of the signing keys.
			if status := registerStatus(t, fmt.Sprintf("http://127.0.0.1:%d", port)); status != http.StatusCreated {
				t.Fatalf("registering: %d", status)
			}
			if err := os.RemoveAll(store); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			tc.stop(t, p, dir, admin, port)
			if !p.waitExit(shutdownBound) {
				t.Fatalf("caddy did not exit within %s of being stopped", shutdownBound)
			}
			t.Logf("caddy exited %s after being stopped", time.Since(start).Round(time.Millisecond))
			log, _ := os.ReadFile(p.Log)
			if !strings.Contains(string(log), "closing the state store") || !strings.Contains(string(log), store) {
				t.Errorf("the log does not say which store failed to close:\n%s", log)
			}
		})
	}
}

// registerStatus registers a public client at the authorization server at
// base and returns the status.
func registerStatus(t *testing.T, base string) int {
	t.Helper()
	body := `{"client_name":"scale test","redirect_uris":["` + clientRedirect + `"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`
	status, _, _ := do(t, http.DefaultClient, http.MethodPost, base+"/register", http.Header{"Content-Type": {"application/json"}}, []byte(body))
	return status
}

// instance is one authorization server reached at its own address (not
// through the load balancer), with the Host of the public address, as the
// load balancer forwards it.
type instance struct {
	base, host string
	proc       *caddyProcess
}

// redisInstances starts n Caddys sharing the Redis at redisURL, each an
// authorization server for the issuer http://127.0.0.1:lbPort in front of
// the demo MCP backend at /mcp, naming itself in the X-Instance header.
func redisInstances(t *testing.T, redisURL string, lbPort, n int) []*instance {
	t.Helper()
	backend := httptest.NewServer(demomcp.Handler())
	t.Cleanup(backend.Close)
	var list []*instance
	for i := range n {
		dir, admin, port := t.TempDir(), freePort(), freePort()
		site := processGlobals(dir, admin, "redis "+redisURL) + fmt.Sprintf(`
http://127.0.0.1:%d {
	header X-Instance %d
	mcp_auth {
		issuer http://127.0.0.1:%d
		resource /mcp {
			scopes mcp:tools
		}
		%s
	}
	reverse_proxy %s
}
`, port, i, lbPort, usersUpstream(), backend.Listener.Addr())
		list = append(list, &instance{
			base: fmt.Sprintf("http://127.0.0.1:%d", port),
			host: fmt.Sprintf("127.0.0.1:%d", lbPort),
			proc: startCaddyProcess(t, dir, site),
		})
	}
	return list
}

// loadBalancer starts a Caddy at lbPort that sends requests to the
// instances in turn and returns its address.
func loadBalancer(t *testing.T, lbPort int, instances []*instance) *instance {
	t.Helper()
	var upstreams []string
	for _, in := range instances {
		upstreams = append(upstreams, strings.TrimPrefix(in.base, "http://"))
	}
	dir := t.TempDir()
	// Its own mcp_auth app is unused; it only needs a store of its own.
	site := processGlobals(dir, freePort(), "storage_path "+filepath.Join(dir, "badger")) + fmt.Sprintf(`
http://127.0.0.1:%d {
	reverse_proxy %s {
		lb_policy round_robin
	}
}
`, lbPort, strings.Join(upstreams, " "))
	base := fmt.Sprintf("http://127.0.0.1:%d", lbPort)
	return &instance{base: base, host: strings.TrimPrefix(base, "http://"), proc: startCaddyProcess(t, dir, site)}
}

// request sends a request to the instance and returns status, header and
// body.
func (in *instance) request(t *testing.T, method, path string, header http.Header, body string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = in.host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// token posts a form to the instance's /token and returns the status and
// the decoded answer.
func (in *instance) token(t *testing.T, form url.Values) (int, map[string]any) {
	t.Helper()
	status, _, raw := in.request(t, http.MethodPost, "/token", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, form.Encode())
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Errorf("/token answered %d %q", status, raw)
	}
	return status, m
}

// mcp posts a JSON-RPC message to the instance's /mcp and returns the
// status, and the headers, which name the instance that answered.
func (in *instance) mcp(t *testing.T, accessToken, session, message string) (int, http.Header) {
	t.Helper()
	h := bearer(accessToken)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json, text/event-stream")
	if session != "" {
		h.Set("Mcp-Session-Id", session)
	}
	status, hdr, _ := in.request(t, http.MethodPost, "/mcp", h, message)
	return status, hdr
}

const mcpInitialize = `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"scale-test","version":"0"}}}`

// loginThrough registers a public client at in and logs alice in there,
// and returns the client and the token answer.
func loginThrough(t *testing.T, in *instance) (testClient, map[string]any) {
	t.Helper()
	body := `{"client_name":"scale test","redirect_uris":["` + clientRedirect + `"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`
	status, _, raw := in.request(t, http.MethodPost, "/register", http.Header{"Content-Type": {"application/json"}}, body)
	var reg map[string]any
	if err := json.Unmarshal(raw, &reg); err != nil || status != http.StatusCreated {
		t.Fatalf("registering: %d %s", status, raw)
	}
	c := testClient{ID: reg["client_id"].(string), Redirects: []string{clientRedirect}}
	p := newPKCE()
	q := url.Values{
		"response_type": {"code"}, "client_id": {c.ID}, "redirect_uri": {clientRedirect},
		"code_challenge": {p.challenge}, "code_challenge_method": {"S256"},
		"state": {"st"}, "resource": {in.base + "/mcp"},
	}
	loc := redirectedTo(t, walk(t, aliceBrowser(t), in.base+"/authorize?"+q.Encode(), in.base))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("authorization failed: %s", loc)
	}
	status, m := in.token(t, url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "code_verifier": {p.verifier},
		"client_id": {c.ID}, "redirect_uri": {clientRedirect}, "resource": {in.base + "/mcp"},
	})
	if status != http.StatusOK {
		t.Fatalf("exchanging the code: %d %v", status, m)
	}
	return c, m
}

// Two Caddys sharing one Redis behind a round-robin load balancer: a
// client's whole life spread over both, and what one instance decides
// (a revocation, a rotation, a key) holds at the other.
func TestAttackInstanceIgnoresWhatAnotherDecided(t *testing.T) {
	redisURL := redistest.Start(t)
	lbPort := freePort()
	instances := redisInstances(t, redisURL, lbPort, 2)
	a, b := instances[0], instances[1]
	lb := loadBalancer(t, lbPort, instances)

	// Register, log in (the login and consent forms land on both
	// instances), exchange and refresh, all through the load balancer.
	c, tokens := loginThrough(t, lb)
	for i := range 4 {
		status, m := lb.token(t, refreshForm(c, tokens["refresh_token"].(string)))
		if status != http.StatusOK {
			t.Fatalf("refresh %d through the load balancer: %d %v", i, status, m)
		}
		tokens = m
	}
	access := tokens["access_token"].(string)

	// Tool calls through the load balancer reach both instances, in one
	// MCP session.
	status, hdr := lb.mcp(t, access, "", mcpInitialize)
	session := hdr.Get("Mcp-Session-Id")
	if status != http.StatusOK || session == "" {
		t.Fatalf("initialize: %d, session %q", status, session)
	}
	seen := map[string]int{hdr.Get("X-Instance"): 1}
	for i := range 5 {
		status, hdr := lb.mcp(t, access, session, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/list"}`, i+2))
		if status != http.StatusOK {
			t.Fatalf("tools/list %d: %d", i, status)
		}
		seen[hdr.Get("X-Instance")]++
	}
	if seen["0"] == 0 || seen["1"] == 0 {
		t.Fatalf("the load balancer did not use both instances: %v", seen)
	}

	// Concurrent refreshes of one token at both instances: one successor,
	// which both answer (the previous refresh token presented again
	// within 30 seconds returns the same pair), and which works once.
	var answers [2]map[string]any
	var statuses [2]int
	var wg sync.WaitGroup
	for i, in := range instances {
		wg.Go(func() { statuses[i], answers[i] = in.token(t, refreshForm(c, tokens["refresh_token"].(string))) })
	}
	wg.Wait()
	if statuses != [2]int{http.StatusOK, http.StatusOK} {
		t.Fatalf("concurrent refreshes: %v %v", statuses, answers)
	}
	if answers[0]["refresh_token"] != answers[1]["refresh_token"] || answers[0]["access_token"] != answers[1]["access_token"] {
		t.Fatalf("concurrent refreshes at two instances gave two successors")
	}
	tokens = answers[0]

	// A key rotated at one instance signs tokens the other accepts.
	status, raw := adminPost(t, a.proc.Admin, "/mcp_auth/keys/rotate")
	var rotated struct{ Kid string }
	if err := json.Unmarshal(raw, &rotated); status != http.StatusOK || err != nil || rotated.Kid == "" {
		t.Fatalf("rotating keys at one instance: %d %s", status, raw)
	}
	status, tokens = a.token(t, refreshForm(c, tokens["refresh_token"].(string)))
	if status != http.StatusOK {
		t.Fatalf("refresh after the rotation: %d %v", status, tokens)
	}
	access = tokens["access_token"].(string)
	if header, _ := decodeJWT(t, access); header["kid"] != rotated.Kid {
		t.Fatalf("the access token is signed by %v, not the new key %s", header["kid"], rotated.Kid)
	}
	if status, _ := b.mcp(t, access, "", mcpInitialize); status != http.StatusOK {
		t.Fatalf("a token of the new key at the other instance: %d", status)
	}

	// Revoked at one instance, refused at the other within 2 seconds.
	form := url.Values{"token": {access}, "client_id": {c.ID}}
	if status, _, raw := a.request(t, http.MethodPost, "/revoke", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, form.Encode()); status != http.StatusOK {
		t.Fatalf("revoking at one instance: %d %s", status, raw)
	}
	revoked := time.Now()
	for {
		status, _ := b.mcp(t, access, "", mcpInitialize)
		if status == http.StatusUnauthorized {
			break
		}
		if time.Since(revoked) > 2*time.Second {
			t.Fatalf("the other instance still accepts the revoked access token after 2s: %d", status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("the other instance refused the revoked token %s after the revocation", time.Since(revoked).Round(time.Millisecond))
}

// adminPost posts to a process Caddy's admin API.
func adminPost(t *testing.T, admin, path string) (int, []byte) {
	t.Helper()
	status, _, raw := do(t, http.DefaultClient, http.MethodPost, "http://"+admin+path, nil, nil)
	return status, raw
}
