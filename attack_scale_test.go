package mcpauth

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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
