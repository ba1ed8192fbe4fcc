package mcpauth

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
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

// The Badger directory removed, or made read-only, under a running Caddy:
// its last flush at close fails, and Badger retries it forever. However
// Caddy is asked to stop, or to move to another store, it must finish
// within the bound and say which store it gave up on.
func TestAttackStoreFailingAtShutdownHangsCaddy(t *testing.T) {
	for _, tc := range []struct {
		name     string
		readOnly bool // rather than removed
		stop     func(t *testing.T, p *caddyProcess, dir string, admin, port int)
	}{
		{"SIGTERM", false, func(t *testing.T, p *caddyProcess, _ string, _, _ int) {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}},
		{"SIGTERM, read-only", true, func(t *testing.T, p *caddyProcess, _ string, _, _ int) {
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
		}},
		{"caddy stop", false, func(t *testing.T, p *caddyProcess, _ string, _, _ int) {
			// What `caddy stop` does; the answer may not come, as Caddy exits.
			resp, err := http.Post("http://"+p.Admin+"/stop", "", nil)
			if err == nil {
				resp.Body.Close()
			}
		}},
		{"reload to another store", false, func(t *testing.T, p *caddyProcess, dir string, admin, port int) {
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
			admin, port := freeport.One(), freeport.One()
			store := filepath.Join(dir, "badger")
			p := startCaddyProcess(t, dir, badgerProcessSite(dir, admin, port, store))
			// Something to flush: a registration, on top of the signing keys.
			if status := registerStatus(t, fmt.Sprintf("http://127.0.0.1:%d", port)); status != http.StatusCreated {
				t.Fatalf("registering: %d", status)
			}
			if tc.readOnly {
				makeReadOnly(t, store)
			} else if err := os.RemoveAll(store); err != nil {
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
	status, _, _ := oauthtest.Do(t, http.DefaultClient, http.MethodPost, base+"/register", http.Header{"Content-Type": {"application/json"}}, []byte(refreshingClientBody))
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
		dir, admin, port := t.TempDir(), freeport.One(), freeport.One()
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
	site := processGlobals(dir, freeport.One(), "storage_path "+filepath.Join(dir, "badger")) + fmt.Sprintf(`
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
	status, hdr, raw, err := in.try(method, path, header, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	return status, hdr, raw
}

// try is request for callers that expect the instance to go away.
func (in *instance) try(method, path string, header http.Header, body string) (int, http.Header, []byte, error) {
	req, err := http.NewRequest(method, in.base+path, strings.NewReader(body))
	if err != nil {
		return 0, nil, nil, err
	}
	req.Host = in.host
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw, err
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
func (in *instance) mcp(t *testing.T, accessToken, session, message string) (int, http.Header, []byte) {
	t.Helper()
	h := oauthtest.MCPHeader(accessToken)
	if session != "" {
		h.Set("Mcp-Session-Id", session)
	}
	return in.request(t, http.MethodPost, "/mcp", h, message)
}

// refreshingClientBody registers a public client with the refresh_token grant.
const refreshingClientBody = `{"client_name":"scale test","redirect_uris":["` + clientRedirect + `"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"none"}`

// register registers a public client at the instance.
func (in *instance) register(t *testing.T) oauthtest.Client {
	t.Helper()
	status, _, raw := in.request(t, http.MethodPost, "/register", http.Header{"Content-Type": {"application/json"}}, refreshingClientBody)
	var reg map[string]any
	if err := json.Unmarshal(raw, &reg); err != nil || status != http.StatusCreated {
		t.Fatalf("registering: %d %s", status, raw)
	}
	return oauthtest.Client{ID: reg["client_id"].(string), Redirects: []string{clientRedirect}}
}

// authorizeParams is the authorization request of c at the instance.
func (in *instance) authorizeParams(c oauthtest.Client, p oauthtest.PKCE) url.Values {
	return oauthtest.AuthorizationRequest(c, p, in.base+"/mcp")
}

// authorize logs alice in at the instance for c, from the source address
// source when it is not empty (each source may start only so many
// authorizations an hour), and returns the code.
func (in *instance) authorize(t *testing.T, c oauthtest.Client, p oauthtest.PKCE, source string) string {
	t.Helper()
	b := aliceBrowser(t)
	if source != "" {
		b.client.Transport = clientFrom(t, source).Transport
	}
	loc := redirectedTo(t, walk(t, b, in.base+"/authorize?"+in.authorizeParams(c, p).Encode(), in.base))
	code := loc.Query().Get("code")
	if code == "" {
		t.Fatalf("authorization failed: %s", loc)
	}
	return code
}

// codeForm redeems code for c at the instance.
func (in *instance) codeForm(c oauthtest.Client, code string, p oauthtest.PKCE) url.Values {
	return oauthtest.CodeRequest(c, code, p, in.base+"/mcp")
}

// loginThrough registers a public client at in and logs alice in there,
// and returns the client and the token answer.
func loginThrough(t *testing.T, in *instance) (oauthtest.Client, map[string]any) {
	t.Helper()
	c, p := in.register(t), oauthtest.NewPKCE()
	status, m := in.token(t, in.codeForm(c, in.authorize(t, c, p, ""), p))
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
	lbPort := freeport.One()
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
	status, hdr, _ := lb.mcp(t, access, "", oauthtest.MCPInitialize)
	session := hdr.Get("Mcp-Session-Id")
	if status != http.StatusOK || session == "" {
		t.Fatalf("initialize: %d, session %q", status, session)
	}
	seen := map[string]int{hdr.Get("X-Instance"): 1}
	status, hdr, body := lb.mcp(t, access, session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`)
	if status != http.StatusAccepted {
		t.Fatalf("notifications/initialized: %d %s", status, body)
	}
	seen[hdr.Get("X-Instance")]++
	for i := range 5 {
		text := fmt.Sprintf("call %d", i)
		status, hdr, body := lb.mcp(t, access, session, fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":%q}}}`, i+2, text))
		if status != http.StatusOK || !strings.Contains(string(body), `"text":"`+text+`"`) {
			t.Fatalf("tools/call %d: %d %s", i, status, body)
		}
		seen[hdr.Get("X-Instance")]++
	}
	if seen["0"] == 0 || seen["1"] == 0 {
		t.Fatalf("the load balancer did not use both instances: %v", seen)
	}

	// Concurrent refreshes of one token at both instances: one successor,
	// which both answer (the previous refresh token presented again
	// within 30 seconds returns the same pair), and which works once.
	var (
		answers [2]struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
		}
		statuses [2]int
		wg       sync.WaitGroup
	)
	form := refreshForm(c, tokens["refresh_token"].(string)).Encode()
	for i, in := range instances {
		wg.Go(func() {
			status, _, raw, err := in.try(http.MethodPost, "/token", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, form)
			if err != nil || json.Unmarshal(raw, &answers[i]) != nil {
				t.Errorf("refresh at instance %d: %v %s", i, err, raw)
			}
			statuses[i] = status
		})
	}
	wg.Wait()
	if statuses != [2]int{http.StatusOK, http.StatusOK} {
		t.Fatalf("concurrent refreshes: %v", statuses)
	}
	if answers[0] != answers[1] {
		t.Fatalf("concurrent refreshes at two instances gave two successors")
	}
	tokens = map[string]any{"refresh_token": answers[0].RefreshToken}

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
	if header, _ := oauthtest.DecodeJWT(t, access); header["kid"] != rotated.Kid {
		t.Fatalf("the access token is signed by %v, not the new key %s", header["kid"], rotated.Kid)
	}
	if status, _, _ := b.mcp(t, access, "", oauthtest.MCPInitialize); status != http.StatusOK {
		t.Fatalf("a token of the new key at the other instance: %d", status)
	}

	// Revoked at one instance, refused at the other within the README's
	// bound of 1 second: no request sent later than that gets through.
	revocation := url.Values{"token": {access}, "client_id": {c.ID}}
	if status, _, raw := a.request(t, http.MethodPost, "/revoke", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, revocation.Encode()); status != http.StatusOK {
		t.Fatalf("revoking at one instance: %d %s", status, raw)
	}
	revoked := time.Now()
	for {
		sent := time.Now()
		status, _, _ := b.mcp(t, access, "", oauthtest.MCPInitialize)
		if status == http.StatusUnauthorized {
			t.Logf("the other instance refused the revoked token in a request sent %s after the revocation", sent.Sub(revoked).Round(time.Millisecond))
			break
		}
		if sent.Sub(revoked) > time.Second {
			t.Fatalf("the other instance let the revoked access token through in a request sent %s after the revocation: %d", sent.Sub(revoked).Round(time.Millisecond), status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// adminPost posts to a process Caddy's admin API.
func adminPost(t *testing.T, admin, path string) (int, []byte) {
	t.Helper()
	status, _, raw := oauthtest.Do(t, http.DefaultClient, http.MethodPost, "http://"+admin+path, nil, nil)
	return status, raw
}

// crashCycles is how many times each crash test kills Caddy: a few in CI,
// more with MCPAUTH_CRASH_CYCLES.
func crashCycles(t *testing.T) int {
	n, err := strconv.Atoi(os.Getenv("MCPAUTH_CRASH_CYCLES"))
	if err != nil || n < 1 {
		return 3
	}
	if n > 200 {
		t.Fatalf("MCPAUTH_CRASH_CYCLES=%d: at most 200 (each cycle logs in from a source address of its own)", n)
	}
	return n
}

// crashWorkers is how many clients work in parallel when Caddy is killed.
const crashWorkers = 4

// crashTokensPerGrant is how many access tokens a crash worker has its
// grant issue (the code's, then refreshes) before it only registers
// clients: a grant holds at most 32 live access tokens, and each restart
// refreshes every acknowledged grant once more.
const crashTokensPerGrant = 12

// acknowledged is what clients got a 2xx answer for before a crash.
type acknowledged struct {
	sync.Mutex
	clients map[string]bool   // registered client ids
	grants  map[string]string // client id → its grant's latest refresh token
	issued  map[string]int    // client id → access tokens its grant issued
}

func newAcknowledged() *acknowledged {
	return &acknowledged{clients: map[string]bool{}, grants: map[string]string{}, issued: map[string]int{}}
}

func (a *acknowledged) client(id string) {
	a.Lock()
	defer a.Unlock()
	a.clients[id] = true
}

func (a *acknowledged) grant(clientID, refreshToken string) {
	a.Lock()
	defer a.Unlock()
	a.grants[clientID] = refreshToken
	a.issued[clientID]++
}

// crashWorker redeems its code, then registers clients and refreshes its
// grant (crashTokensPerGrant tokens in all) until the instance goes away,
// recording what was acknowledged.
func crashWorker(t *testing.T, in *instance, acks *acknowledged, c oauthtest.Client, code string, p oauthtest.PKCE) {
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	status, _, raw, err := in.try(http.MethodPost, "/token", form, in.codeForm(c, code, p).Encode())
	for err == nil {
		var answer struct {
			ClientID     string `json:"client_id"`
			RefreshToken string `json:"refresh_token"`
		}
		if status/100 != 2 || json.Unmarshal(raw, &answer) != nil {
			t.Errorf("before the crash: %d %s", status, raw)
			return
		}
		if answer.RefreshToken != "" {
			acks.grant(c.ID, answer.RefreshToken)
		} else {
			acks.client(answer.ClientID)
		}
		acks.Lock()
		rt, issued := acks.grants[c.ID], acks.issued[c.ID]
		acks.Unlock()
		// After a registration, a refresh, while the grant may issue more.
		if answer.RefreshToken == "" && issued < crashTokensPerGrant {
			status, _, raw, err = in.try(http.MethodPost, "/token", form, refreshForm(c, rt).Encode())
		} else {
			status, _, raw, err = in.try(http.MethodPost, "/register", http.Header{"Content-Type": {"application/json"}}, refreshingClientBody)
		}
	}
}

// checkAcknowledged fails the test unless everything acknowledged before
// the crash is there after it, and nothing half-written is: every client
// the store lists is whole, every acknowledged client is listed, and
// every acknowledged refresh token refreshes (the README's rule: the
// previous refresh token presented again within 30 seconds returns the
// same pair, so a rotation the crash cut off before its answer does not
// count as a reuse), giving an access token that works.
func checkAcknowledged(t *testing.T, in *instance, acks *acknowledged) {
	t.Helper()
	status, _, raw := in.request(t, http.MethodGet, "/.well-known/oauth-authorization-server", nil, "") // the site is up
	if status != http.StatusOK {
		t.Fatalf("after the restart: %d %s", status, raw)
	}
	_, _, raw = oauthtest.Do(t, http.DefaultClient, http.MethodGet, "http://"+in.proc.Admin+"/mcp_auth/clients", nil, nil)
	var listed []struct {
		ClientID     string   `json:"client_id"`
		RedirectURIs []string `json:"redirect_uris"`
		GrantTypes   []string `json:"grant_types"`
	}
	if err := json.Unmarshal(raw, &listed); err != nil {
		t.Fatalf("listing clients: %v %s", err, raw)
	}
	found := map[string]bool{}
	for _, c := range listed {
		found[c.ClientID] = true
		if len(c.RedirectURIs) != 1 || c.RedirectURIs[0] != clientRedirect || len(c.GrantTypes) != 2 {
			t.Errorf("client %s is not whole after the crash: %+v", c.ClientID, c)
		}
	}
	acks.Lock()
	defer acks.Unlock()
	for id := range acks.clients {
		if !found[id] {
			t.Errorf("acknowledged client %s is gone after the crash", id)
		}
	}
	atBound := 0
	for id, rt := range acks.grants {
		status, m := in.token(t, refreshForm(oauthtest.Client{ID: id}, rt))
		if status == http.StatusTooManyRequests && strings.Contains(fmt.Sprint(m["error_description"]), "too many live access tokens") {
			// At the bound of live access tokens (after many crash
			// cycles): refused only after the token matched the grant's
			// current one, so it survived.
			atBound++
			continue
		}
		if status != http.StatusOK {
			t.Errorf("the acknowledged refresh token of client %s after the crash: %d %v", id, status, m)
			continue
		}
		acks.grants[id] = m["refresh_token"].(string)
		acks.issued[id]++
		if status, _, raw := in.request(t, http.MethodGet, "/mcp", oauthtest.Bearer(m["access_token"].(string)), ""); status != http.StatusOK {
			t.Errorf("an access token refreshed after the crash: %d %s", status, raw)
		}
	}
	t.Logf("after the crash: %d clients listed, %d acknowledged; %d grants refresh, %d more are at the bound of live access tokens", len(listed), len(acks.clients), len(acks.grants)-atBound, atBound)
}

// unlimitedRegistration lifts the registration limits for tests that
// register many clients from one address.
const unlimitedRegistration = `
		registration {
			rate_limit 1000000
			global_rate_limit 1000000
		}`

// crashLoop kills Caddy (kill -9) while clients register, redeem codes and
// refresh, then runs crashStore, if any, restarts Caddy on the same store
// and checks what survived, for crashCycles cycles.
func crashLoop(t *testing.T, storeLine string, crashStore func()) {
	dir, admin, port := t.TempDir(), freeport.One(), freeport.One()
	site := processSite(dir, admin, port, storeLine, unlimitedRegistration, "respond ok")
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	in := &instance{base: base, host: strings.TrimPrefix(base, "http://")}
	acks := newAcknowledged()
	cycles := crashCycles(t)
	for cycle := range cycles + 1 {
		in.proc = startCaddyProcess(t, dir, site)
		if cycle > 0 {
			checkAcknowledged(t, in, acks)
		}
		if cycle == cycles || t.Failed() {
			return
		}
		// Each worker's code, logged in from a source of its own: a
		// source may start only 300 authorizations an hour.
		var wg sync.WaitGroup
		for w := range crashWorkers {
			c, p := in.register(t), oauthtest.NewPKCE()
			acks.client(c.ID)
			code := in.authorize(t, c, p, fmt.Sprintf("127.0.%d.%d", 1+cycle, 1+w))
			wg.Go(func() { crashWorker(t, in, acks, c, code, p) })
		}
		time.Sleep(time.Duration(100+rand.IntN(400)) * time.Millisecond)
		in.proc.kill()
		wg.Wait()
		<-in.proc.exited
		if crashStore != nil {
			crashStore()
		}
	}
}

func TestAttackCrashLosesAcknowledgedStateBadger(t *testing.T) {
	crashLoop(t, "storage_path "+filepath.Join(t.TempDir(), "badger"), nil)
}

// Redis with appendfsync always goes down with Caddy, without saving, and
// comes back from its append-only file.
func TestAttackCrashLosesAcknowledgedStateRedis(t *testing.T) {
	r := redistest.StartRestartable(t)
	crashLoop(t, "redis "+r.URL, func() { r.Stop(); r.Restart() })
}

// makeReadOnly makes dir unwritable, even for root (with the immutable
// attribute), until the test ends.
func makeReadOnly(t *testing.T, dir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if err := os.Chmod(dir, 0o500); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = os.Chmod(dir, 0o700) })
		return
	}
	if out, err := exec.Command("chattr", "+i", dir).CombinedOutput(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chattr +i %s: %v %s", dir, err, out)
		}
		t.Skipf("running as root, and chattr +i (the only way to make a directory read-only for root) failed: %v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command("chattr", "-i", dir).Run() })
}

// A Badger directory Caddy cannot write to, new or holding a store, or
// below a directory it cannot write to: Caddy refuses to start, at once,
// with an error naming the directory and the cause.
func TestAttackReadOnlyStoreHangsStart(t *testing.T) {
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, dir string) (storagePath string)
		want    string
	}{
		{"empty directory", func(t *testing.T, dir string) string {
			makeReadOnly(t, dir)
			return dir
		}, "is not writable"},
		{"existing store", func(t *testing.T, dir string) string {
			db, err := storage.OpenBadger(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			makeReadOnly(t, dir)
			return dir
		}, "is not writable"},
		{"directory to create", func(t *testing.T, dir string) string {
			makeReadOnly(t, dir)
			return filepath.Join(dir, "badger")
		}, "creating badger directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			storagePath := tc.prepare(t, t.TempDir())
			cf := globalOptions(storagePath, filepath.Join(t.TempDir(), "caddy.log")) + siteAddr() + " {\n\tmcp_auth {\n\t\t" + usersUpstream() + "\n\t}\n\trespond ok\n}\n"
			loaded := make(chan error, 1)
			go func() { loaded <- caddy.Load(adapt(t, cf), true) }()
			select {
			case err := <-loaded:
				if err == nil {
					_ = caddy.Stop()
					t.Fatal("Caddy started on a read-only store")
				}
				if !strings.Contains(err.Error(), storagePath) || !strings.Contains(err.Error(), tc.want) {
					t.Errorf("error %q should name %s and say %q", err, storagePath, tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("Caddy hangs starting on a read-only store")
			}
		})
	}
}
