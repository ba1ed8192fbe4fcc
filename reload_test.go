package mcpauth

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

func TestReloadKeepsStoreAndKeys(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	site := gatedSite(t, storagePath, logDir, "")
	startCaddy(t, site)
	client := mustTLSClient(t)
	ring := testRing(t, storagePath)
	before := mint(t, ring, nil)
	_, _, jwksBefore := oauthtest.Get(t, client, siteAddr()+"/jwks", nil)

	abs, _ := filepath.Abs(storagePath)
	for i, change := range []string{`realm first-reload`, `realm second-reload
		allowed_origins https://app.example.com`} {
		reloadCaddy(t, strings.Replace(site, "require_scope /admin/* admin", "require_scope /admin/* admin\n\t\t"+change, 1))

		status, hdr, _ := oauthtest.Get(t, client, siteAddr()+"/other", nil)
		if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("WWW-Authenticate"), strings.Fields(change)[1]) {
			t.Fatalf("reload %d did not take effect: %d %q", i+1, status, hdr.Get("WWW-Authenticate"))
		}
		if status, _, body := oauthtest.Get(t, client, siteAddr()+"/other", oauthtest.Bearer(before)); status != http.StatusOK {
			t.Fatalf("reload %d: a token minted before no longer works: %d %s", i+1, status, body)
		}
		if _, _, jwks := oauthtest.Get(t, client, siteAddr()+"/jwks", nil); string(jwks) != string(jwksBefore) {
			t.Errorf("reload %d changed the published keys", i+1)
		}
		if n, _ := stores.References(abs); n < 1 {
			t.Fatalf("reload %d: the store is not open", i+1)
		}
	}
	// The store stays writable across reloads, and a token minted now works.
	after := mint(t, ring, nil)
	if status, _, _ := oauthtest.Get(t, client, siteAddr()+"/other", oauthtest.Bearer(after)); status != http.StatusOK {
		t.Errorf("token minted after reloads refused: %d", status)
	}
	status, _, _ := oauthtest.Get(t, client, siteAddr()+"/other", http.Header{"Authorization": {"Bearer " + after}, "Origin": {"https://evil.test"}})
	if status != http.StatusForbidden {
		t.Errorf("origin outside allowed_origins: %d, want 403", status)
	}
}

// The child process started by TestLockedStore holds the store open.
func TestHelperHoldStore(t *testing.T) {
	dir := os.Getenv("MCPAUTH_HOLD_STORE")
	if dir == "" {
		t.Skip("helper process only")
	}
	db, err := storage.OpenBadger(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	os.Stdout.WriteString("holding\n")
	time.Sleep(time.Minute)
}

func TestUnusableStoreGivesClearError(t *testing.T) {
	locked := t.TempDir()
	holder := exec.Command(os.Args[0], "-test.run=^TestHelperHoldStore$")
	holder.Env = append(os.Environ(), "MCPAUTH_HOLD_STORE="+locked)
	out, err := holder.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = holder.Process.Kill(); _ = holder.Wait() })
	buf := make([]byte, 8)
	if _, err := out.Read(buf); err != nil || !strings.HasPrefix(string(buf), "holding") {
		t.Fatalf("helper process did not open the store: %v %q", err, buf)
	}

	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	// A store written by a newer release, which this one must not
	// misread or overwrite.
	newer := filepath.Join(t.TempDir(), "newer")
	if err := os.CopyFS(newer, os.DirFS("storage/testdata/badger-newer-schema")); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{locked, "reload"},
		{filepath.Join(file, "db"), "not a directory"},
		{newer, fmt.Sprintf("written with schema version %d by caddy-mcp-auth v99.0.0", storage.SchemaVersion+1)},
	} {
		cf := globalOptions(tc.path, filepath.Join(t.TempDir(), "caddy.log")) + siteAddr() + " {\n\tmcp_auth {\n\t\t" + usersUpstream() + "\n\t}\n\trespond ok\n}\n"
		err := caddy.Load(adapt(t, cf), true)
		if err == nil {
			_ = caddy.Stop()
			t.Fatalf("storage_path %s: Caddy started", tc.path)
		}
		if !strings.Contains(err.Error(), tc.path) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("storage_path %s: error %q should name the path and %q", tc.path, err, tc.want)
		}
	}
}
