package mcpauth

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// The soak: a mixed load against a Caddy process for a while, watching
// that its goroutines, open files and memory stop growing once it is warm.
// scripts/soak.sh runs it (30 minutes by default; CI runs 60 seconds).

const (
	// soakDuration names the environment variable that turns the soak on
	// and says how long it runs, as a Go duration; soakReport the file
	// its report goes to.
	soakDuration = "MCPAUTH_SOAK"
	soakReport   = "MCPAUTH_SOAK_REPORT"

	// soakWorkers is how many clients work at once; each takes a fresh
	// login from the login loop when its previous one is revoked.
	soakWorkers = 4
	// soakCallsPerLogin is how many tool calls a worker makes with one
	// login, refreshing every fifth.
	soakCallsPerLogin = 30
	// soakSampleEvery is how often the process is measured.
	soakSampleEvery = 2 * time.Second
	// soakLoginEvery paces the logins, each of which also registers a
	// client.
	soakLoginEvery = 300 * time.Millisecond
)

// soakTolerance is how much a measure may grow between the first window
// after the warm-up and the last one: a fraction of it, plus a constant
// for small numbers and the noise of the garbage collector.
type soakTolerance struct {
	name     string
	fraction float64
	slack    float64
}

var soakTolerances = []soakTolerance{
	{"goroutines", 0.2, 25},
	{"open files", 0.2, 25},
	{"RSS (MiB)", 0.25, 32},
}

// soakSample is one measure of the process.
type soakSample struct {
	at     time.Duration // since the start
	values [3]float64    // as soakTolerances
}

// TestSoak runs when MCPAUTH_SOAK is set (see scripts/soak.sh).
func TestSoak(t *testing.T) {
	duration, err := time.ParseDuration(os.Getenv(soakDuration))
	if err != nil {
		t.Skipf("set %s to a duration (scripts/soak.sh does) to run the soak", soakDuration)
	}
	if duration < 30*time.Second {
		t.Fatalf("%s=%v: the soak needs at least 30s to warm up and compare", soakDuration, duration)
	}
	backend := httptest.NewServer(demomcp.Handler())
	t.Cleanup(backend.Close)
	dir, admin, port := t.TempDir(), freeport.One(), freeport.One()
	site := processSite(dir, admin, port, "storage_path "+filepath.Join(dir, "badger"), unlimitedRegistration, "reverse_proxy "+backend.Listener.Addr().String())
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	in := &instance{base: base, host: strings.TrimPrefix(base, "http://"), proc: startCaddyProcess(t, dir, site)}

	s := &soak{in: in, logins: make(chan soakLogin, soakWorkers), counts: map[string]*atomic.Int64{}}
	for _, op := range []string{"login", "register", "tools/call", "refresh", "revoke"} {
		s.counts[op] = new(atomic.Int64)
	}
	start := time.Now()
	end := start.Add(duration)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range soakWorkers {
		wg.Go(func() { s.work(t, stop) })
	}
	sampled := make(chan []soakSample, 1)
	go func() { sampled <- s.sample(t, start, stop) }()

	// Logins run here, as the browser helpers may fail the test.
	for n := 0; time.Now().Before(end) && !t.Failed(); n++ {
		next := time.Now().Add(soakLoginEvery)
		s.login(t, n)
		time.Sleep(time.Until(next))
	}
	close(stop)
	wg.Wait()
	s.check(t, <-sampled, duration)
}

// soakLogin is a fresh login a worker uses.
type soakLogin struct {
	client          oauthtest.Client
	access, refresh string
}

type soak struct {
	in     *instance
	logins chan soakLogin
	counts map[string]*atomic.Int64
}

// login registers a client and logs alice in for it, from one of many
// source addresses (each may start only so many authorizations an hour),
// and hands the tokens to a worker.
func (s *soak) login(t *testing.T, n int) {
	t.Helper()
	c, p := s.in.register(t), oauthtest.NewPKCE()
	b := aliceBrowser(t)
	b.client.Transport = clientFrom(t, fmt.Sprintf("127.1.%d.%d", n/250%250, 1+n%250)).Transport
	loc := redirectedTo(t, walk(t, b, s.in.base+"/authorize?"+s.in.authorizeParams(c, p).Encode(), s.in.base))
	// A browser is used once: its connections must not linger in Caddy.
	b.client.CloseIdleConnections()
	status, m := s.in.token(t, s.in.codeForm(c, loc.Query().Get("code"), p))
	if status != http.StatusOK {
		t.Fatalf("exchanging the code: %d %v", status, m)
	}
	s.counts["login"].Add(1)
	s.counts["register"].Add(1)
	s.logins <- soakLogin{client: c, access: m["access_token"].(string), refresh: m["refresh_token"].(string)}
}

// work takes logins until stopped: with each it opens an MCP session,
// calls tools and refreshes, registers one more client, then revokes the
// access token and the grant and checks that both are refused.
func (s *soak) work(t *testing.T, stop <-chan struct{}) {
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	expect := func(what string, want, status int, body []byte, err error) bool {
		if err != nil || status != want {
			t.Errorf("%s: %d %.300s %v, want %d", what, status, body, err, want)
			return false
		}
		return true
	}
	for {
		var l soakLogin
		select {
		case <-stop:
			return
		case l = <-s.logins:
		}
		status, hdr, body, err := s.in.try(http.MethodPost, "/mcp", oauthtest.MCPHeader(l.access), oauthtest.MCPInitialize)
		if !expect("initialize", http.StatusOK, status, body, err) {
			return
		}
		session := hdr.Get("Mcp-Session-Id")
		for i := range soakCallsPerLogin {
			h := oauthtest.MCPHeader(l.access)
			h.Set("Mcp-Session-Id", session)
			call := fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"echo","arguments":{"text":"call %d"}}}`, i+2, i)
			status, _, body, err := s.in.try(http.MethodPost, "/mcp", h, call)
			if !expect("tools/call", http.StatusOK, status, body, err) {
				return
			}
			s.counts["tools/call"].Add(1)
			if i%5 != 4 {
				continue
			}
			status, _, body, err = s.in.try(http.MethodPost, "/token", form, refreshForm(l.client, l.refresh).Encode())
			var answer struct {
				AccessToken  string `json:"access_token"`
				RefreshToken string `json:"refresh_token"`
			}
			if !expect("refresh", http.StatusOK, status, body, err) || json.Unmarshal(body, &answer) != nil {
				return
			}
			l.access, l.refresh = answer.AccessToken, answer.RefreshToken
			s.counts["refresh"].Add(1)
		}
		status, _, body, err = s.in.try(http.MethodPost, "/register", http.Header{"Content-Type": {"application/json"}}, refreshingClientBody)
		if !expect("register", http.StatusCreated, status, body, err) {
			return
		}
		s.counts["register"].Add(1)
		for _, token := range []string{l.access, l.refresh} {
			revocation := url.Values{"token": {token}, "client_id": {l.client.ID}}
			status, _, body, err := s.in.try(http.MethodPost, "/revoke", form, revocation.Encode())
			if !expect("revoke", http.StatusOK, status, body, err) {
				return
			}
			s.counts["revoke"].Add(1)
		}
		status, _, body, err = s.in.try(http.MethodPost, "/mcp", oauthtest.MCPHeader(l.access), oauthtest.MCPInitialize)
		if !expect("the revoked access token", http.StatusUnauthorized, status, body, err) {
			return
		}
		status, _, body, err = s.in.try(http.MethodPost, "/token", form, refreshForm(l.client, l.refresh).Encode())
		if !expect("the revoked grant", http.StatusBadRequest, status, body, err) {
			return
		}
	}
}

// sample measures the process every soakSampleEvery until stopped.
func (s *soak) sample(t *testing.T, start time.Time, stop <-chan struct{}) []soakSample {
	pid := s.in.proc.cmd.Process.Pid
	var samples []soakSample
	ticker := time.NewTicker(soakSampleEvery)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return samples
		case <-ticker.C:
		}
		goroutines, err := caddyGoroutines(s.in.proc.Admin)
		if err != nil {
			t.Errorf("counting goroutines: %v", err)
			return samples
		}
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Errorf("counting open files: %v", err)
			return samples
		}
		rss, err := residentMiB(pid)
		if err != nil {
			t.Errorf("reading RSS: %v", err)
			return samples
		}
		samples = append(samples, soakSample{at: time.Since(start), values: [3]float64{float64(goroutines), float64(len(fds)), rss}})
	}
}

// caddyGoroutines reads the goroutine count from Caddy's admin API.
func caddyGoroutines(admin string) (int, error) {
	resp, err := http.Get("http://" + admin + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	line, err := bufio.NewReader(resp.Body).ReadString('\n')
	if err != nil {
		return 0, err
	}
	// "goroutine profile: total 42"
	n, err := strconv.Atoi(strings.TrimSpace(line[strings.LastIndex(line, " ")+1:]))
	if err != nil {
		return 0, fmt.Errorf("unexpected first line %q", line)
	}
	return n, nil
}

// residentMiB reads the resident set size of the process.
func residentMiB(pid int) (float64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(raw)) {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// check compares the first window after the warm-up (a third of the run)
// with the last window (a sixth of the run each), fails the test for a
// measure that grew beyond its tolerance, and writes the report.
func (s *soak) check(t *testing.T, samples []soakSample, duration time.Duration) {
	t.Helper()
	warmUp, window := duration/3, duration/6
	mean := func(from, to time.Duration, i int) (float64, int) {
		var sum float64
		n := 0
		for _, x := range samples {
			if x.at >= from && x.at < to {
				sum += x.values[i]
				n++
			}
		}
		return sum / float64(max(n, 1)), n
	}
	var report strings.Builder
	fmt.Fprintf(&report, "soak of %v against one Caddy process (Badger), %d workers\n\n", duration, soakWorkers)
	ops := make([]string, 0, len(s.counts))
	for op := range s.counts {
		ops = append(ops, op)
	}
	slices.Sort(ops)
	for _, op := range ops {
		fmt.Fprintf(&report, "%-11s %d\n", op, s.counts[op].Load())
	}
	fmt.Fprintf(&report, "\nwarm-up %v; baseline: mean of %v-%v; final: mean of the last %v\n", warmUp, warmUp, warmUp+window, window)
	for i, tol := range soakTolerances {
		base, nb := mean(warmUp, warmUp+window, i)
		final, nf := mean(duration-window, duration+soakSampleEvery, i)
		limit := base*(1+tol.fraction) + tol.slack
		verdict := "ok"
		if nb == 0 || nf == 0 {
			verdict = "too few samples"
			t.Errorf("%s: %d samples in the baseline, %d in the final window", tol.name, nb, nf)
		} else if final > limit {
			verdict = "GREW"
			t.Errorf("%s grew after the warm-up: %.1f, then %.1f, beyond %.1f (+%.0f%% +%.0f)", tol.name, base, final, limit, tol.fraction*100, tol.slack)
		}
		fmt.Fprintf(&report, "%-11s baseline %8.1f  final %8.1f  limit %8.1f  %s\n", tol.name, base, final, limit, verdict)
	}
	fmt.Fprintf(&report, "\n%8s %10s %10s %10s\n", "t", "goroutines", "open files", "RSS (MiB)")
	for _, x := range samples {
		fmt.Fprintf(&report, "%8v %10.0f %10.0f %10.1f\n", x.at.Round(time.Second), x.values[0], x.values[1], x.values[2])
	}
	t.Log("\n" + report.String())
	if path := os.Getenv(soakReport); path != "" {
		if err := os.WriteFile(path, []byte(report.String()), 0o644); err != nil {
			t.Error(err)
		}
	}
}
