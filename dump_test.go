package mcpauth

import (
	"bytes"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/pflag"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
)

// runDump runs `caddy mcp-auth export|import <flags>` with in as its
// standard input and returns its standard output and error.
func runDump(t *testing.T, in []byte, args ...string) (out, log []byte, err error) {
	t.Helper()
	fs := pflag.NewFlagSet("mcp-auth", pflag.ContinueOnError)
	fs.String("storage-path", "", "")
	fs.String("redis", "", "")
	fs.String("redis-prefix", "", "")
	if err := fs.Parse(args); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	_, err = cmdDump(t.Context(), caddycmd.Flags{FlagSet: fs}, fs.Arg(0), bytes.NewReader(in), &stdout, &stderr)
	return stdout.Bytes(), stderr.Bytes(), err
}

func mustDump(t *testing.T, in []byte, args ...string) []byte {
	t.Helper()
	out, log, err := runDump(t, in, args...)
	if err != nil {
		t.Fatalf("caddy mcp-auth %s: %v", strings.Join(args, " "), err)
	}
	t.Logf("caddy mcp-auth %s: %s", args[0], log)
	return out
}

// A deployment moves from Badger to Redis and back with `caddy mcp-auth
// export` and `import`: after each move, Caddy on the new store honours
// the access token issued before it and refreshes the grant.
func TestMoveStateBadgerToRedisAndBack(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	ts := e.login(t, c, nil)
	if status := e.mcpStatus(t, ts.Access); status != http.StatusOK {
		t.Fatalf("access token: %d", status)
	}
	if err := caddy.Stop(); err != nil { // Badger locks its directory
		t.Fatal(err)
	}
	dump := mustDump(t, nil, "export", "--storage-path", e.storagePath)

	url := redistest.Start(t)
	t.Setenv("MCPAUTH_TEST_REDIS_URL", url)
	mustDump(t, dump, "import", "--redis", "{env.MCPAUTH_TEST_REDIS_URL}", "--redis-prefix", "moved:")
	// Importing again would mix two deployments' state.
	if _, _, err := runDump(t, dump, "import", "--redis", url, "--redis-prefix", "moved:"); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("second import: %v, want a refusal", err)
	}
	logDir := t.TempDir()
	onRedis := startASWith(t, redisASSite(t, redisGlobalOptions(url, "moved:", filepath.Join(logDir, "caddy.log")), logDir, usersUpstream()), logDir)
	if status := onRedis.mcpStatus(t, ts.Access); status != http.StatusOK {
		t.Fatalf("access token issued on Badger, at Caddy on Redis: %d", status)
	}
	next := onRedis.mustRefresh(t, c, ts.Refresh, nil)
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}

	dump = mustDump(t, nil, "export", "--redis", url, "--redis-prefix", "moved:")
	back := filepath.Join(t.TempDir(), "mcp_auth")
	mustDump(t, dump, "import", "--storage-path", back)
	logDir = t.TempDir()
	onBadger := startASWith(t, asSite(t, back, logDir, usersUpstream()), logDir)
	if status := onBadger.mcpStatus(t, next.Access); status != http.StatusOK {
		t.Fatalf("access token issued on Redis, at Caddy on Badger: %d", status)
	}
	onBadger.mustRefresh(t, c, next.Refresh, nil)
	// The refresh token rotated away on Redis stays used up.
	if status, _ := onBadger.refresh(t, c, ts.Refresh, nil); status == http.StatusOK {
		t.Error("a refresh token used before the move was accepted after it")
	}
}

// Export and import name what is wrong with their flags, and an export of
// a missing directory fails instead of exporting an empty store.
func TestDumpCommandErrors(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "missing")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"export", "--storage-path", missing}, "no such file or directory"},
		{[]string{"export", "--storage-path", missing, "--redis", "redis://127.0.0.1:1"}, "mutually exclusive"},
		{[]string{"export", "--redis-prefix", "x:"}, "--redis-prefix needs --redis"},
		{[]string{"import", "--storage-path", t.TempDir()}, "no header"},
	} {
		_, _, err := runDump(t, nil, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error saying %q", tc.args, err, tc.want)
		}
	}
}
