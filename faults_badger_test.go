//go:build linux

package mcpauth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/disktest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// The Badger store on a disk of its own (a small tmpfs) that fills up or
// is read-only, under a Caddy in a process of its own.

// faultRequestBound is the longest any request may take while the disk
// is full: a refusal is immediate, and the rest is room for a loaded
// machine.
const faultRequestBound = 5 * time.Second

// badgerFaultInstance starts a Caddy whose Badger store is in storagePath,
// an authorization server for the resource /mcp, with Caddy's own files
// in dir.
func badgerFaultInstance(t *testing.T, dir, storagePath string, admin, port int) *instance {
	t.Helper()
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	return &instance{base: base, host: strings.TrimPrefix(base, "http://"),
		proc: startCaddyProcess(t, dir, badgerFaultSite(dir, storagePath, admin, port))}
}

func badgerFaultSite(dir, storagePath string, admin, port int) string {
	return processSite(dir, admin, port, "storage_path "+storagePath, "", "respond ok")
}

// loginAcknowledged logs n clients in at in and records them and their
// grants as acknowledged.
func loginAcknowledged(t *testing.T, in *instance, acks *acknowledged, n int) {
	t.Helper()
	for range n {
		c, tokens := loginThrough(t, in)
		acks.client(c.ID)
		acks.grant(c.ID, tokens["refresh_token"].(string))
	}
}

// stopWithin stops Caddy as `caddy stop` would on SIGTERM and fails the
// test unless it exits within shutdownBound.
func stopWithin(t *testing.T, p *caddyProcess) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if !p.waitExit(shutdownBound) {
		t.Fatalf("caddy did not exit within %s of SIGTERM", shutdownBound)
	}
}

// timedRequest is in.try, failing the test if the answer takes longer
// than faultRequestBound.
func timedRequest(t *testing.T, in *instance, method, path string, header http.Header, body string) (int, []byte) {
	t.Helper()
	start := time.Now()
	status, _, raw, err := in.try(method, path, header, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	if took := time.Since(start); took > faultRequestBound {
		t.Errorf("%s %s took %v, beyond %v", method, path, took, faultRequestBound)
	}
	return status, raw
}

// The disk of the Badger store fills up under a running Caddy: writes are
// refused at once with 503 and an RFC 6749 error, reads (the gate) go on,
// the log names the disk, nothing crashes; once space is freed, writes
// work again without a restart; Caddy stops within its bound, and a
// restart finds everything acknowledged.
func TestFaultBadgerDiskFull(t *testing.T) {
	disk := disktest.Mount(t, 128<<20)
	dir, store := t.TempDir(), filepath.Join(disk.Dir, "badger")
	admin, port := freeport.One(), freeport.One()
	in := badgerFaultInstance(t, dir, store, admin, port)
	acks := newAcknowledged()
	loginAcknowledged(t, in, acks, 2)
	var access, accessClient string
	for id, rt := range acks.grants {
		status, m := in.token(t, refreshForm(oauthtest.Client{ID: id}, rt))
		if status != http.StatusOK {
			t.Fatalf("refresh: %d %v", status, m)
		}
		acks.grant(id, m["refresh_token"].(string))
		access, accessClient = m["access_token"].(string), id
	}
	revocation := url.Values{"token": {access}, "client_id": {accessClient}}.Encode()

	disk.Fill(32 << 20) // below what the store keeps free
	form := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
	unavailable := func(what string, status int, raw []byte) {
		t.Helper()
		var e struct{ Error string }
		if status != http.StatusServiceUnavailable || json.Unmarshal(raw, &e) != nil || e.Error != "temporarily_unavailable" {
			t.Errorf("%s on a full disk: %d %s, want 503 temporarily_unavailable", what, status, raw)
		}
	}
	status, raw := timedRequest(t, in, http.MethodPost, "/register", http.Header{"Content-Type": {"application/json"}}, refreshingClientBody)
	unavailable("registering", status, raw)
	for id, rt := range acks.grants {
		status, raw := timedRequest(t, in, http.MethodPost, "/token", form, refreshForm(oauthtest.Client{ID: id}, rt).Encode())
		unavailable("refreshing", status, raw)
	}
	// RFC 7009 section 2.2.1: the client must take the token as still valid.
	status, raw = timedRequest(t, in, http.MethodPost, "/revoke", form, revocation)
	unavailable("revoking an access token", status, raw)
	if status, raw := timedRequest(t, in, http.MethodGet, "/mcp", oauthtest.Bearer(access), ""); status != http.StatusOK {
		t.Errorf("a gated request, which only reads, on a full disk: %d %s", status, raw)
	}
	log, _ := os.ReadFile(in.proc.Log)
	if !strings.Contains(string(log), "the disk of the state store is full") || !strings.Contains(string(log), store) {
		t.Errorf("the log does not say that the disk of %s is full:\n%s", store, log)
	}

	disk.Unfill()
	if status, raw := timedRequest(t, in, http.MethodPost, "/revoke", form, revocation); status != http.StatusOK {
		t.Errorf("revoking after space was freed: %d %s", status, raw)
	}
	if status, raw := timedRequest(t, in, http.MethodGet, "/mcp", oauthtest.Bearer(access), ""); status != http.StatusUnauthorized {
		t.Errorf("the access token revoked after space was freed: %d %s", status, raw)
	}
	loginAcknowledged(t, in, acks, 1)
	for id, rt := range acks.grants {
		status, m := in.token(t, refreshForm(oauthtest.Client{ID: id}, rt))
		if status != http.StatusOK {
			t.Fatalf("refresh after space was freed: %d %v", status, m)
		}
		acks.grant(id, m["refresh_token"].(string))
	}
	log, _ = os.ReadFile(in.proc.Log)
	if !strings.Contains(string(log), "the disk of the state store has space again") {
		t.Errorf("the log does not say that the disk has space again:\n%s", log)
	}

	stopWithin(t, in.proc)
	in.proc = startCaddyProcess(t, dir, badgerFaultSite(dir, store, admin, port))
	checkAcknowledged(t, in, acks)
}

// A Badger store on a read-only disk. The kernel refuses to make the disk
// read-only under a running Caddy, which holds files open for writing;
// stopped and restarted on the read-only disk, Caddy refuses to start, at
// once, naming the directory and the cause; once the disk is writable
// again it starts and finds everything acknowledged.
func TestFaultBadgerDiskReadOnly(t *testing.T) {
	disk := disktest.Mount(t, 128<<20)
	dir, store := t.TempDir(), filepath.Join(disk.Dir, "badger")
	admin, port := freeport.One(), freeport.One()
	in := badgerFaultInstance(t, dir, store, admin, port)
	acks := newAcknowledged()
	loginAcknowledged(t, in, acks, 2)

	if err := disk.Remount(true); err == nil {
		t.Fatal("the disk became read-only under a running Caddy; this test expects the kernel to refuse while Badger's files are open for writing")
	} else {
		t.Logf("under a running Caddy: %v", err)
	}
	stopWithin(t, in.proc)
	if err := disk.Remount(true); err != nil {
		t.Fatal(err)
	}
	p := spawnCaddyProcess(t, dir, badgerFaultSite(dir, store, admin, port))
	if !p.waitExit(20 * time.Second) {
		t.Fatal("Caddy did not refuse to start on a read-only disk within 20s")
	}
	stderr, _ := os.ReadFile(filepath.Join(dir, "stderr"))
	log, _ := os.ReadFile(p.Log)
	said := string(stderr) + string(log)
	if !strings.Contains(said, store) || !strings.Contains(said, "read-only file system") {
		t.Errorf("Caddy's error does not name %s and say its file system is read-only:\n%s", store, said)
	}

	if err := disk.Remount(false); err != nil {
		t.Fatal(err)
	}
	in.proc = startCaddyProcess(t, dir, badgerFaultSite(dir, store, admin, port))
	checkAcknowledged(t, in, acks)
}
