package mcpauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
)

// Redis going away under load, with Caddy in a process of its own: its
// clients keep calling tools and refreshing while Redis is killed and
// comes back (standalone, restarted from its append-only file) or is
// replaced (Sentinel promotes the replica).

// outageGrace is how long after Redis answers again an instance may still
// answer 503: the revocation subscription reconnects and the revoked
// tokens are read again, which takes well under a second; the rest is
// room for a loaded machine. The README states it.
const outageGrace = 3 * time.Second

// outageRequestBound is the longest a request may take while Redis is
// away: the store's client tries a few times within about two seconds,
// then the request fails.
const outageRequestBound = 5 * time.Second

// outageLoadClients is how many clients call tools and refresh at once.
const outageLoadClients = 3

// loadRefreshInterval is the least time between a load client's
// rotations: a grant holds at most 32 usable access tokens
// (docs/security.md), and a client rotating faster would be refused with
// 429 before the test ends. Refreshes that failed are retried sooner.
const loadRefreshInterval = time.Second

// redisProcessInstance starts a Caddy process on the Redis at redisURL,
// an authorization server in front of the demo MCP backend at /mcp.
func redisProcessInstance(t *testing.T, redisURL string) *instance {
	t.Helper()
	backend := httptest.NewServer(demomcp.Handler())
	t.Cleanup(backend.Close)
	dir, admin, port := t.TempDir(), freeport.One(), freeport.One()
	site := processSite(dir, admin, port, "redis "+redisURL, "", "reverse_proxy "+backend.Listener.Addr().String())
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	return &instance{base: base, host: strings.TrimPrefix(base, "http://"), proc: startCaddyProcess(t, dir, site)}
}

// loadClient is one client of the load: a grant, its latest tokens and
// an MCP session.
type loadClient struct {
	oauthtest.Client
	refresh, access, session string
	acked                    time.Time // when the latest rotation was answered
	lost                     bool      // its latest rotation was lost in a failover
}

// loadAnswer is one request of the load and what came back.
type loadAnswer struct {
	kind       string // "tools/call" or "refresh"
	sent, done time.Time
	status     int
	body       string
	err        error
}

// outageLoad drives gated tool calls and refreshes from a few clients at
// one instance and records every answer.
type outageLoad struct {
	in      *instance
	clients []*loadClient
	// lossAfter is when the replica last had every write: a rotation
	// acknowledged after it may be lost in a failover. Zero when nothing
	// acknowledged may be lost.
	lossAfter time.Time

	mu      sync.Mutex
	answers []loadAnswer
	stop    chan struct{}
	wg      sync.WaitGroup
}

// newOutageLoad logs in outageLoadClients clients at in and opens an MCP
// session for each.
func newOutageLoad(t *testing.T, in *instance) *outageLoad {
	t.Helper()
	l := &outageLoad{in: in, stop: make(chan struct{})}
	for range outageLoadClients {
		c, tokens := loginThrough(t, in)
		lc := &loadClient{Client: c, refresh: tokens["refresh_token"].(string), access: tokens["access_token"].(string)}
		status, hdr, body := in.mcp(t, lc.access, "", oauthtest.MCPInitialize)
		lc.session = hdr.Get("Mcp-Session-Id")
		if status != http.StatusOK || lc.session == "" {
			t.Fatalf("initialize: %d %s", status, body)
		}
		if status, _, body := in.mcp(t, lc.access, lc.session, `{"jsonrpc":"2.0","method":"notifications/initialized"}`); status != http.StatusAccepted {
			t.Fatalf("notifications/initialized: %d %s", status, body)
		}
		l.clients = append(l.clients, lc)
	}
	return l
}

// start runs one worker per client until finish.
func (l *outageLoad) start(t *testing.T) {
	for _, c := range l.clients {
		l.wg.Go(func() { l.work(t, c) })
	}
}

// finish stops the workers and waits for them.
func (l *outageLoad) finish() {
	close(l.stop)
	l.wg.Wait()
}

// work calls a tool, and refreshes every third round once its last
// rotation is loadRefreshInterval old, until stopped. A refresh answered
// 503 is tried again with the same refresh token, as a client would.
func (l *outageLoad) work(t *testing.T, c *loadClient) {
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	for round := 0; ; round++ {
		select {
		case <-l.stop:
			return
		default:
		}
		h := oauthtest.MCPHeader(c.access)
		h.Set("Mcp-Session-Id", c.session)
		call := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"round %d"}}}`, round+2, round)
		a := l.send("tools/call", http.MethodPost, "/mcp", h, call)
		l.record(a)
		if a.status == http.StatusOK && !strings.Contains(a.body, fmt.Sprintf(`"text":"round %d"`, round)) {
			t.Errorf("tools/call answered 200 without the tool's result: %s", a.body)
		}
		if round%3 != 0 || time.Since(c.acked) < loadRefreshInterval {
			continue
		}
		a = l.send("refresh", http.MethodPost, "/token", form, refreshForm(c.Client, c.refresh).Encode())
		var answer struct {
			AccessToken  string `json:"access_token"`
			RefreshToken string `json:"refresh_token"`
			Error        string `json:"error"`
		}
		_ = json.Unmarshal([]byte(a.body), &answer)
		l.mu.Lock()
		lossAfter := l.lossAfter
		l.mu.Unlock()
		if a.status == http.StatusBadRequest && answer.Error == "invalid_grant" && !lossAfter.IsZero() && c.acked.After(lossAfter) {
			// The rotation was acknowledged after the replica last
			// caught up, and the failover lost it: the user logs in again.
			c.lost = true
			return
		}
		l.record(a)
		if a.status == http.StatusOK {
			c.refresh, c.access, c.acked = answer.RefreshToken, answer.AccessToken, a.done
		}
	}
}

// send sends one request of the load.
func (l *outageLoad) send(kind, method, path string, header http.Header, body string) loadAnswer {
	a := loadAnswer{kind: kind, sent: time.Now()}
	var raw []byte
	a.status, _, raw, a.err = l.in.try(method, path, header, body)
	a.done, a.body = time.Now(), string(raw)
	return a
}

// record keeps an answer for check.
func (l *outageLoad) record(a loadAnswer) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.answers = append(l.answers, a)
}

// check fails the test unless every answer was a success or, for a
// request that overlapped the outage (from down until up plus
// outageGrace), 503; a tool call sent once the instance could no longer
// vouch for its revocations (down plus the revocation bound, plus a
// second for a loaded machine) and answered while Redis was still known
// to be away (stillDown) was refused; and requests after up plus
// outageGrace succeeded.
func (l *outageLoad) check(t *testing.T, down, stillDown, up time.Time) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	stale := down.Add(revocationBound + time.Second)
	var during, unavailable, after int
	var slowest time.Duration
	for _, a := range l.answers {
		slowest = max(slowest, a.done.Sub(a.sent))
		at := fmt.Sprintf("%s sent %v after the kill and answered %v after it", a.kind,
			a.sent.Sub(down).Round(time.Millisecond), a.done.Sub(down).Round(time.Millisecond))
		inOutage := !a.done.Before(down) && a.sent.Before(up.Add(outageGrace))
		switch {
		case a.err != nil:
			t.Errorf("%s: %v", at, a.err)
		case a.status == http.StatusServiceUnavailable && inOutage:
			unavailable++
			if strings.Contains(a.body, "access_token") || strings.Contains(a.body, "refresh_token") {
				t.Errorf("%s: 503 with tokens: %s", at, a.body)
			}
		case a.status == http.StatusServiceUnavailable:
			t.Errorf("%s: 503 outside the outage and its %v grace", at, outageGrace)
		case a.status != http.StatusOK:
			t.Errorf("%s: %d %s; only 200 or, during the outage, 503 are right", at, a.status, a.body)
		case a.sent.After(stale) && a.done.Before(stillDown):
			t.Errorf("%s: 200 while Redis was away, beyond what the instance can vouch for", at)
		}
		if !a.sent.Before(down) && a.done.Before(up) {
			during++
		}
		if a.sent.After(up.Add(outageGrace)) {
			after++
		}
	}
	if unavailable == 0 || during == 0 {
		t.Errorf("the load did not meet the outage: %d requests during it, %d answered 503", during, unavailable)
	}
	if after == 0 {
		t.Error("no request after the outage and its grace: recovery is not shown")
	}
	if slowest > outageRequestBound {
		t.Errorf("the slowest request took %v, beyond %v", slowest, outageRequestBound)
	}
	t.Logf("%d requests: %d during the outage, %d answered 503, %d after it and its grace; the slowest took %v",
		len(l.answers), during, unavailable, after, slowest.Round(time.Millisecond))
}

// checkAcknowledgedGrants fails the test unless every client's latest
// acknowledged refresh token refreshes and gives an access token that
// works, except for clients whose rotation a failover lost, and the
// revoked grant and access token stay revoked.
func (l *outageLoad) checkAcknowledgedGrants(t *testing.T, revoked *loadClient) {
	t.Helper()
	lost := 0
	for _, c := range l.clients {
		if c.lost {
			lost++
			continue
		}
		status, m := l.in.token(t, refreshForm(c.Client, c.refresh))
		if status != http.StatusOK {
			t.Errorf("client %s's acknowledged refresh token after the outage: %d %v", c.ID, status, m)
			continue
		}
		if status, _, raw := l.in.mcp(t, m["access_token"].(string), "", oauthtest.MCPInitialize); status != http.StatusOK {
			t.Errorf("an access token refreshed after the outage: %d %s", status, raw)
		}
	}
	if lost > 0 {
		t.Logf("%d of %d clients had a rotation acknowledged after the replica last caught up, lost in the failover", lost, len(l.clients))
	}
	if status, m := l.in.token(t, refreshForm(revoked.Client, revoked.refresh)); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("the grant revoked before the outage refreshes after it: %d %v", status, m)
	}
	if status, _, raw := l.in.mcp(t, revoked.access, "", oauthtest.MCPInitialize); status != http.StatusUnauthorized {
		t.Errorf("the access token revoked before the outage after it: %d %s", status, raw)
	}
}

// revokedClient logs a client in at in and revokes its grant (through its
// refresh token) and its access token.
func revokedClient(t *testing.T, in *instance) *loadClient {
	t.Helper()
	c, tokens := loginThrough(t, in)
	lc := &loadClient{Client: c, refresh: tokens["refresh_token"].(string), access: tokens["access_token"].(string)}
	for _, token := range []string{lc.refresh, lc.access} {
		form := url.Values{"token": {token}, "client_id": {c.ID}}
		if status, _, raw := in.request(t, http.MethodPost, "/revoke", http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, form.Encode()); status != http.StatusOK {
			t.Fatalf("revoking: %d %s", status, raw)
		}
	}
	return lc
}

// checkTransitionsLogged fails the test unless the instance's log says
// once that Redis became unreachable and once that it is reachable again.
func checkTransitionsLogged(t *testing.T, in *instance) {
	t.Helper()
	// The line of recovery may come a moment after the first success.
	deadline := time.Now().Add(outageGrace)
	for {
		raw, err := os.ReadFile(in.proc.Log)
		if err != nil {
			t.Fatal(err)
		}
		log := string(raw)
		down, up := strings.Count(log, `"Redis unreachable`), strings.Count(log, `"Redis reachable again"`)
		if down == 1 && up == 1 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the log says %d times that Redis is unreachable and %d times that it is reachable again, want once each:\n%s", down, up, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Redis killed with SIGKILL under load and started again on the same port
// from its append-only file: gated requests fail closed with 503 only
// during the outage, nothing acknowledged is lost, and Caddy recovers on
// its own, saying so in its log.
func TestFaultRedisKilledUnderLoad(t *testing.T) {
	server := redistest.StartRestartable(t)
	in := redisProcessInstance(t, server.URL)
	revoked := revokedClient(t, in)
	load := newOutageLoad(t, in)
	load.start(t)
	time.Sleep(time.Second) // warm up

	down := time.Now()
	server.Kill()
	time.Sleep(2 * revocationBound) // long enough for the gate to refuse everything
	stillDown := time.Now()
	server.Restart()
	up := time.Now()
	time.Sleep(outageGrace + 2*time.Second) // recovery, then some more load
	load.finish()

	load.check(t, down, stillDown, up)
	load.checkAcknowledgedGrants(t, revoked)
	checkTransitionsLogged(t, in)
	checkStillRunning(t, in)
}

// checkStillRunning fails the test if the instance's Caddy has exited:
// recovering must not need a restart.
func checkStillRunning(t *testing.T, in *instance) {
	t.Helper()
	select {
	case <-in.proc.exited:
		t.Error("Caddy exited during the outage")
	default:
	}
}

// A Sentinel master killed with SIGKILL under load: the sentinels promote
// the replica and Caddy follows without a restart; gated requests fail
// closed with 503 only until then; what the replica had when it last
// caught up survives. Rotations acknowledged after that may be lost, as
// the README says; the clients that held them get invalid_grant.
func TestFaultRedisSentinelMasterKilledUnderLoad(t *testing.T) {
	sentinel := redistest.StartSentinel(t)
	in := redisProcessInstance(t, sentinel.URL)
	revoked := revokedClient(t, in)
	load := newOutageLoad(t, in)
	load.start(t)
	time.Sleep(time.Second) // warm up

	load.mu.Lock()
	load.lossAfter = time.Now()
	load.mu.Unlock()
	sentinel.WaitReplicated(t)
	down := time.Now()
	stillDown := sentinel.KillMaster(t)
	up := time.Now()
	t.Logf("the sentinels promoted the replica %v after the master was killed", up.Sub(down).Round(time.Millisecond))
	time.Sleep(outageGrace + 2*time.Second)
	load.finish()

	load.check(t, down, stillDown, up)
	load.checkAcknowledgedGrants(t, revoked)
	checkTransitionsLogged(t, in)
	checkStillRunning(t, in)
}
