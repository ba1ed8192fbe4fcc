package mcpauth

import (
	"bufio"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Attacks on what the gate keeps in memory instead of asking the store on
// every request: revoked tokens and session owners.

// TestHelperCaddyInstance is another Caddy instance, in a process of its
// own, for tests of several instances sharing a store: it runs the
// Caddyfile in MCPAUTH_HELPER_CADDYFILE until it is killed.
func TestHelperCaddyInstance(t *testing.T) {
	caddyfile := os.Getenv("MCPAUTH_HELPER_CADDYFILE")
	if caddyfile == "" {
		t.Skip("helper process only")
	}
	if err := caddy.Load(adapt(t, caddyfile), true); err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("ready\n")
	time.Sleep(time.Hour)
}

// startOtherInstance starts, in another process, a Caddy that gates
// http://127.0.0.1:<port>/mcp for this test's authorization server with
// the state in redisURL, and returns the URL of its resource.
func startOtherInstance(t *testing.T, redisURL string) string {
	t.Helper()
	port := freeport.One()
	caddyfile := fmt.Sprintf(`{
	admin off
	log {
		output discard
	}
	http_port %d
	https_port %d
	storage file_system %s
	mcp_auth {
		redis %s
	}
}
http://127.0.0.1:%d {
	mcp_auth {
		issuer %s
		resource /mcp {
			scopes mcp:tools mcp:admin
		}
		%s
	}
	respond "ok"
}
`, freeport.One(), freeport.One(), t.TempDir(), redisURL, port, siteAddr(), usersUpstream())
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperCaddyInstance$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), "MCPAUTH_HELPER_CADDYFILE="+caddyfile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("the other instance did not start: %v %q", err, line)
	}
	return fmt.Sprintf("http://127.0.0.1:%d/mcp", port)
}

// statusAt sends a gated request with token to resource.
func statusAt(t *testing.T, resource, token string) int {
	t.Helper()
	status, _, _ := oauthtest.Do(t, http.DefaultClient, http.MethodPost, resource, oauthtest.Bearer(token), []byte(`{"jsonrpc":"2.0","id":1,"method":"ping"}`))
	return status
}

// waitForStatus polls until resource answers want for token, and returns
// how long that took; it fails the test after limit.
func waitForStatus(t *testing.T, resource, token string, want int, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		got := statusAt(t, resource, token)
		if got == want {
			return time.Since(start)
		}
		if time.Since(start) > limit {
			t.Fatalf("%s still answers %d, not %d, %v later", resource, got, want, limit)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Two instances share Redis. A token revoked at one must be refused at the
// other within the bound the README states, and an instance that can no
// longer hear of revocations must refuse every token rather than pass one
// that may have been revoked.
func TestAttackRevokedTokenStillWorksAtOtherInstance(t *testing.T) {
	redisServer := redistest.StartRestartable(t)
	logDir := t.TempDir()
	e := startASWith(t, redisASSite(t, redisGlobalOptions(redisServer.URL, "", filepath.Join(logDir, "caddy.log")), logDir, usersUpstream()), logDir)
	other := startOtherInstance(t, redisServer.URL)
	c := e.publicClient(t)
	revoked, kept := e.login(t, c, nil), e.login(t, c, nil)
	for _, token := range []string{revoked.Access, kept.Access} {
		if status := statusAt(t, other, token); status != http.StatusOK {
			t.Fatalf("test setup: a fresh token at the other instance: %d", status)
		}
	}

	form := url.Values{"token": {revoked.Access}, "client_id": {c.ID}}
	revokedAt := time.Now()
	if status, _, m := e.PostForm(t, "/revoke", form, nil); status != http.StatusOK {
		t.Fatalf("revoking: %d %v", status, m)
	}
	if status := e.mcpStatus(t, revoked.Access); status != http.StatusUnauthorized {
		t.Errorf("the revoked token at the instance that revoked it: %d, want 401", status)
	}
	took := waitForStatus(t, other, revoked.Access, http.StatusUnauthorized, 2*revocationBound)
	if since := time.Since(revokedAt); since > revocationBound {
		t.Errorf("the other instance refused the revoked token only %v after the revocation (polling took %v), beyond the %v bound", since, took, revocationBound)
	}

	// Redis goes away: within the bound, both instances refuse with 503,
	// and the revoked token never passes.
	redisServer.Stop()
	stoppedAt := time.Now()
	for time.Since(stoppedAt) < revocationBound+time.Second {
		if status := statusAt(t, other, revoked.Access); status == http.StatusOK {
			t.Fatalf("the revoked token passed %v after Redis went away", time.Since(stoppedAt))
		}
		status := statusAt(t, other, kept.Access)
		if time.Since(stoppedAt) > revocationBound+100*time.Millisecond && status != http.StatusServiceUnavailable {
			t.Fatalf("%v after Redis went away, a token passed the other instance unchecked: %d, want 503", time.Since(stoppedAt), status)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if status := e.mcpStatus(t, kept.Access); status != http.StatusServiceUnavailable {
		t.Errorf("without Redis, this instance: %d, want 503", status)
	}

	// Redis is back: both recover on their own, and still know the
	// revocation.
	redisServer.Restart()
	restartedAt := time.Now()
	waitForStatus(t, other, kept.Access, http.StatusOK, recoveryLimit)
	if status := statusAt(t, other, revoked.Access); status != http.StatusUnauthorized {
		t.Errorf("after Redis came back, the revoked token at the other instance: %d, want 401", status)
	}
	// Each instance reconnects on its own schedule: this one too must
	// recover within the same limit of the restart.
	for status := e.mcpStatus(t, kept.Access); status != http.StatusOK; status = e.mcpStatus(t, kept.Access) {
		if time.Since(restartedAt) > recoveryLimit {
			t.Fatalf("%v after Redis came back, this instance: %d, want 200", recoveryLimit, status)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// recoveryLimit is how long an instance may take to serve again once its
// Redis is back.
const recoveryLimit = 10 * time.Second

// Session owners answered from memory: once alice's session is known to
// be hers, no other user, however close their sub is to hers, may use it,
// before or after her uses warm the cache.
func TestAttackCachedSessionServesAnotherUser(t *testing.T) {
	client, ring, _ := startGate(t, "")
	alice := mint(t, ring, nil)
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "session-test", Version: "0"}, nil).Connect(t.Context(),
		&mcp.StreamableClientTransport{Endpoint: siteAddr() + "/mcp", HTTPClient: client, OAuthHandler: staticToken(alice)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	list := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`)
	send := func(token string) int {
		h := oauthtest.Bearer(token)
		h.Set("Mcp-Session-Id", cs.ID())
		h.Set("Mcp-Protocol-Version", cs.InitializeResult().ProtocolVersion)
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "application/json, text/event-stream")
		status, _, _ := oauthtest.Do(t, client, http.MethodPost, siteAddr()+"/mcp", h, list)
		return status
	}
	for range 3 {
		if status := send(alice); status != http.StatusOK {
			t.Fatalf("alice with her session: %d", status)
		}
	}
	// Subs that a sloppy comparison of "issuer sub" could take for hers.
	for _, sub := range []string{"user-bob", "user-ALICE", "user-alic", "user-alice ", " user-alice", "user-alice\x00", "user-alicee"} {
		other := mint(t, ring, func(c *tokens.AccessClaims) { c.Subject = sub })
		if status := send(other); status != http.StatusNotFound {
			t.Errorf("sub %q with alice's session: %d, want 404", sub, status)
		}
		if status := send(alice); status != http.StatusOK {
			t.Errorf("alice after %q tried her session: %d", sub, status)
		}
	}
}

// The gate answers from memory on the hot path, Redis included: once a
// session is bound and its token seen, tool calls in it make no Redis
// commands (only the revocation subscription's keepalive pings and its
// periodic reconcile may fall in the window). A store round trip per
// request would show as one or more commands per call.
func TestHotPathMakesNoRedisCommands(t *testing.T) {
	redisURL := redistest.Start(t)
	logDir := t.TempDir()
	e := startASWith(t, redisASSite(t, redisGlobalOptions(redisURL, "", filepath.Join(logDir, "caddy.log")), logDir, usersUpstream()), logDir)
	token := e.login(t, e.publicClient(t), nil).Access
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "hot-path-test", Version: "0"}, nil).Connect(t.Context(),
		&mcp.StreamableClientTransport{Endpoint: canonicalResource(), HTTPClient: e.HTTP, OAuthHandler: staticToken(token)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	call := func() {
		t.Helper()
		res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"text": "hi"}})
		if err != nil || res.IsError {
			t.Fatalf("tool call: %v %+v", err, res)
		}
	}
	for range 3 {
		call()
	}

	rdb := redisClient(t, redisURL)
	before := redisCommandCalls(t, rdb)
	const calls = 300
	for range calls {
		call()
	}
	after := redisCommandCalls(t, rdb)
	total, made := 0, []string{}
	for name, n := range after {
		if d := n - before[name]; d > 0 && name != "info" {
			total += d
			made = append(made, fmt.Sprintf("%s×%d", name, d))
		}
	}
	// Pings and a reconcile every few seconds are a handful of commands;
	// a round trip per call would be at least one command per call.
	if total > calls/20 {
		t.Errorf("%d tool calls in a bound session made %d Redis commands: %v", calls, total, made)
	}
}

// redisCommandCalls returns how many times the Redis server has run each
// command (INFO commandstats).
func redisCommandCalls(t *testing.T, rdb *redis.Client) map[string]int {
	t.Helper()
	info, err := rdb.Info(t.Context(), "commandstats").Result()
	if err != nil {
		t.Fatal(err)
	}
	counts := map[string]int{}
	for _, line := range strings.Split(info, "\n") {
		name, stats, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "cmdstat_"), ":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(stats, ",")
		n, err := strconv.Atoi(calls)
		if err != nil {
			t.Fatalf("INFO commandstats line %q", line)
		}
		counts[name] = n
	}
	return counts
}
