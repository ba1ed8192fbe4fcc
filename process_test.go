package mcpauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// Tests that need Caddy as a process of its own (several instances, a
// crash, an exit) run this test binary again as `caddy`: with the same
// modules as ./cmd/caddy, its TestMain hands the arguments in
// caddyProcessArgs to Caddy's command line instead of running tests.
const caddyProcessArgs = "MCPAUTH_TEST_CADDY_ARGS"

// runCaddyProcess runs Caddy's command line with the JSON-encoded args.
func runCaddyProcess(args string) {
	var argv []string
	if err := json.Unmarshal([]byte(args), &argv); err != nil {
		panic(err)
	}
	os.Args = append([]string{"caddy"}, argv...)
	caddycmd.Main()
}

// caddyProcess is a Caddy running in a process of its own.
type caddyProcess struct {
	cmd *exec.Cmd
	// Admin is the host:port of its admin API; Log is its log file.
	Admin, Log string
	exited     chan struct{} // closed once the process is gone
}

// processGlobals are the global options of a process Caddy: plain HTTP,
// its own admin port, Caddy's storage and log file in dir, and mcpAuth
// inside the mcp_auth global block.
func processGlobals(dir string, admin int, mcpAuth string) string {
	return fmt.Sprintf(`{
	admin 127.0.0.1:%d
	auto_https off
	grace_period 1s
	storage file_system %s
	log {
		output file %s
		level INFO
	}
	mcp_auth {
		%s
	}
}
`, admin, filepath.Join(dir, "caddy"), filepath.Join(dir, "caddy.log"), mcpAuth)
}

// processSite is the Caddyfile of a Caddy process serving one gated
// resource, /mcp, for the test user alice: storeLine chooses its store,
// extra goes into the mcp_auth block, and handler answers what the gate
// lets through.
func processSite(dir string, admin, port int, storeLine, extra, handler string) string {
	return processGlobals(dir, admin, storeLine) + fmt.Sprintf(`
http://127.0.0.1:%d {
	mcp_auth {
		resource /mcp {
			scopes mcp:tools
		}%s
		%s
	}
	%s
}
`, port, extra, usersUpstream(), handler)
}

// startCaddyProcess runs `caddy run` on the Caddyfile in dir, waits until
// its admin API answers and kills the process when the test ends.
func startCaddyProcess(t *testing.T, dir, caddyfile string) *caddyProcess {
	t.Helper()
	p := spawnCaddyProcess(t, dir, caddyfile)
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + p.Admin + "/config/")
		if err == nil {
			resp.Body.Close()
			return p
		}
		select {
		case <-p.exited:
			stderr, _ := os.ReadFile(filepath.Join(dir, "stderr"))
			t.Fatalf("caddy exited at start: %s", stderr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("caddy did not start: %v", err)
		}
	}
}

// spawnCaddyProcess runs `caddy run` on the Caddyfile in dir, its output
// going to dir/stderr, and kills the process when the test ends. It does
// not wait for Caddy to start, nor check that it does.
func spawnCaddyProcess(t *testing.T, dir, caddyfile string) *caddyProcess {
	t.Helper()
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(caddyfile), 0o600); err != nil {
		t.Fatal(err)
	}
	admin := ""
	for line := range strings.Lines(caddyfile) {
		if f := strings.Fields(line); len(f) == 2 && f[0] == "admin" {
			admin = f[1]
			break
		}
	}
	args, _ := json.Marshal([]string{"run", "--config", file, "--adapter", "caddyfile"})
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), caddyProcessArgs+"="+string(args))
	out, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &caddyProcess{cmd: cmd, Admin: admin, Log: filepath.Join(dir, "caddy.log"), exited: make(chan struct{})}
	go func() { _ = cmd.Wait(); out.Close(); close(p.exited) }()
	t.Cleanup(func() { p.kill(); <-p.exited })
	return p
}

// kill ends the process at once, as a crash would.
func (p *caddyProcess) kill() { _ = p.cmd.Process.Kill() }

// waitExit waits at most bound for the process to exit and reports whether
// it did.
func (p *caddyProcess) waitExit(bound time.Duration) bool {
	select {
	case <-p.exited:
		return true
	case <-time.After(bound):
		return false
	}
}
