package mcpauth

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/redis/go-redis/v9"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Tests of the Redis state store through the App and a real Caddy: several
// instances sharing one Redis share clients, grants and signing keys.

// redisGlobalOptions are globalOptions with the state in Redis instead of
// storage_path. redisURL may be a placeholder.
func redisGlobalOptions(redisURL, prefix, logFile string) string {
	storage := "redis " + redisURL
	if prefix != "" {
		storage += "\n\t\tredis_prefix " + prefix
	}
	return globalOptionsWith(storage, logFile)
}

// redisASSite is asSite with global options of its own.
func redisASSite(t *testing.T, global, logDir, authConfig string) string {
	t.Helper()
	site, ok := strings.CutPrefix(asSite(t, "", logDir, authConfig), globalOptions("", filepath.Join(logDir, "caddy.log")))
	if !ok {
		t.Fatal("asSite no longer starts with globalOptions")
	}
	return global + site
}

// startASWith is startAS for a full Caddyfile.
func startASWith(t *testing.T, caddyfile, logDir string) *asEnv {
	t.Helper()
	e := &asEnv{logDir: logDir}
	startCaddy(t, caddyfile)
	e.Server = siteServer(t)
	return e
}

// redisClient is a client of the Redis server at url, closed when the
// test ends.
func redisClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// redisKeys returns the Redis keys that start with prefix, sorted.
func redisKeys(t *testing.T, url, prefix string) []string {
	t.Helper()
	c := redisClient(t, url)
	keys, err := c.Keys(t.Context(), prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	return keys
}

// TestRedisSharedState runs the authorization server on Redis, then hands
// over to a second instance (a reload onto a new Redis client, so nothing
// but Redis carries the state over) that must honour the first one's
// tokens and refresh its grant.
func TestRedisSharedState(t *testing.T) {
	const password = "redis-password-4f1c"
	url := withPassword(t, redistest.Start(t), password)
	const prefix = "e2e:"
	// The URL comes from the environment, as it should in production to
	// keep the password out of the config.
	t.Setenv("MCPAUTH_TEST_REDIS_URL", url)
	logDir := t.TempDir()
	logFile := filepath.Join(logDir, "caddy.log")
	first := redisASSite(t, redisGlobalOptions("{env.MCPAUTH_TEST_REDIS_URL}", prefix, logFile), logDir, usersUpstream())
	e := startASWith(t, first, logDir)

	c := e.publicClient(t)
	ts := e.login(t, c, nil)
	if status := e.mcpStatus(t, ts.Access); status != http.StatusOK {
		t.Fatalf("access token at /mcp: %d", status)
	}
	_, _, jwks := oauthtest.Get(t, e.HTTP, siteAddr()+"/jwks", nil)

	// The state is in Redis, under the prefix.
	keys := redisKeys(t, url, prefix)
	site := prefix + siteKeyPrefix(siteAddr())
	for _, want := range []string{prefix + "keys/ring", site + string(state.KindClient), site + string(state.KindGrant), site + string(state.KindRefresh)} {
		if !slices.ContainsFunc(keys, func(k string) bool { return strings.HasPrefix(k, want) }) {
			t.Errorf("no Redis key %s…; keys: %q", want, keys)
		}
	}
	if others := redisKeys(t, url, storage.DefaultRedisPrefix); len(others) != 0 {
		t.Errorf("keys outside the configured prefix: %q", others)
	}
	firstKey := "redis:" + url + "|" + prefix
	if n, _ := stores.References(firstKey); n != 1 {
		t.Fatalf("pooled Redis store %q has %d users, want 1", firstKey, n)
	}

	// The second instance: a client of its own (another client_name makes
	// another pool key) on the same server and prefix. The URL is in the
	// config this time, which also makes it a config Caddy does not skip
	// as unchanged.
	secondURL := url + "?client_name=second"
	reloadCaddy(t, redisASSite(t, redisGlobalOptions(secondURL, prefix, logFile), logDir, usersUpstream()))
	// The first instance's server closes its connections; a POST on one of
	// them would fail rather than be retried.
	e.HTTP.CloseIdleConnections()
	if n, _ := stores.References(firstKey); n != 0 {
		t.Errorf("the first instance's Redis client is still open (%d users)", n)
	}
	if n, _ := stores.References("redis:" + secondURL + "|" + prefix); n != 1 {
		t.Errorf("the second instance's Redis client has %d users, want 1", n)
	}

	if status := e.mcpStatus(t, ts.Access); status != http.StatusOK {
		t.Fatalf("access token from the first instance at the second: %d", status)
	}
	if _, _, after := oauthtest.Get(t, e.HTTP, siteAddr()+"/jwks", nil); !bytes.Equal(after, jwks) {
		t.Errorf("the second instance publishes other keys:\n%s\nwant\n%s", after, jwks)
	}
	next := e.mustRefresh(t, c, ts.Refresh, nil)
	if status := e.mcpStatus(t, next.Access); status != http.StatusOK {
		t.Fatalf("refreshed access token: %d", status)
	}
	// A new client and login work on the second instance alone.
	c2 := e.publicClient(t)
	if status := e.mcpStatus(t, e.login(t, c2, nil).Access); status != http.StatusOK {
		t.Fatalf("login on the second instance: %d", status)
	}

	logs, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logs, []byte(`"state store is redis"`)) {
		t.Error("the log does not say the state is in Redis")
	}
	if bytes.Contains(logs, []byte(password)) {
		t.Error("the log shows the Redis password")
	}
}

// withPassword makes the Redis server at url require password and returns
// the URL with it.
func withPassword(t *testing.T, url, password string) string {
	t.Helper()
	if err := redisClient(t, url).ConfigSet(t.Context(), "requirepass", password).Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Replace(url, "redis://", "redis://:"+password+"@", 1)
}

func TestRedisConfigErrors(t *testing.T) {
	const password = "hunter2-secret"
	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(freeport.One()))
	t.Setenv("MCPAUTH_TEST_UNSET", "")
	for _, tc := range []struct {
		name string
		app  string // JSON of the mcp_auth app
		want []string
	}{
		{
			name: "storage_path and redis",
			app:  `{"storage_path": "/tmp/x", "redis": "redis://` + closed + `"}`,
			want: []string{"storage_path and redis are mutually exclusive"},
		},
		{
			name: "redis_prefix alone",
			app:  `{"redis_prefix": "x:"}`,
			want: []string{"redis_prefix is set but redis is not"},
		},
		{
			name: "unset environment variable",
			app:  `{"redis": "{env.MCPAUTH_TEST_UNSET}"}`,
			want: []string{`redis "{env.MCPAUTH_TEST_UNSET}" expands to an empty URL`},
		},
		{
			name: "nothing listening",
			app:  `{"redis": "redis://:` + password + `@` + closed + `/2"}`,
			want: []string{"cannot reach redis at redis://" + closed + "/2", "connection refused"},
		},
		{
			name: "not a URL",
			app:  `{"redis": "redis://:` + password + `@host:port/2"}`,
			want: []string{"invalid redis URL"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := fmt.Sprintf(`{"admin": {"listen": %q}, "apps": {"mcp_auth": %s}}`, adminAddr, tc.app)
			start := time.Now()
			err := caddy.Load([]byte(cfg), true)
			if err == nil {
				_ = caddy.Stop()
				t.Fatal("Caddy started")
			}
			if d := time.Since(start); d > 3*time.Second {
				t.Errorf("took %v to fail", d)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), password) {
				t.Errorf("error shows the password: %v", err)
			}
		})
	}
}

func TestRedisCaddyfileErrors(t *testing.T) {
	for _, tc := range []struct {
		name, caddyfile, want string
	}{
		{"missing URL", "{\n\tmcp_auth {\n\t\tredis\n\t}\n}\n", "Caddyfile:3"},
		{"extra value", "{\n\tmcp_auth {\n\t\tredis redis://a redis://b\n\t}\n}\n", "Caddyfile:3"},
		{"duplicate", "{\n\tmcp_auth {\n\t\tredis redis://a\n\t\tredis redis://b\n\t}\n}\n", "Caddyfile:4"},
		{"duplicate prefix", "{\n\tmcp_auth {\n\t\tredis redis://a\n\t\tredis_prefix a:\n\t\tredis_prefix b:\n\t}\n}\n", "Caddyfile:5"},
		{"storage_path then redis", "{\n\tmcp_auth {\n\t\tstorage_path /a\n\t\tredis redis://a\n\t}\n}\n", "Caddyfile:4"},
		{"redis then storage_path", "{\n\tmcp_auth {\n\t\tredis redis://a\n\t\tstorage_path /a\n\t}\n}\n", "Caddyfile:4"},
		{"prefix without redis", "{\n\tmcp_auth {\n\t\tredis_prefix a:\n\t\tkey_rotation 24h\n\t}\n}\n", "Caddyfile:3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := adaptCaddyfile(t, tc.caddyfile)
			if err == nil {
				t.Fatalf("adapting:\n%s\nwant an error, got none:\n%s", tc.caddyfile, out)
			}
			if m := adaptLineRE.FindString(err.Error()); m != tc.want {
				t.Errorf("error %q points at %q, want %s", err, m, tc.want)
			}
			for _, w := range []string{"wrong argument count", "already specified", "mutually exclusive", "requires redis"} {
				if strings.Contains(err.Error(), w) {
					return
				}
			}
			t.Errorf("unexpected error: %v", err)
		})
	}
}

// Instances sharing a Redis sign with the same keys, and one whose ring is
// out of date finds a key another instance rotated in.
func TestRedisKeyRingsAcrossInstances(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	cfg := tokens.KeyRingConfig{RotationPeriod: 30 * 24 * time.Hour, RetainPeriod: 30 * 24 * time.Hour}
	open := func(prefix string) storage.Store {
		s, err := storage.OpenRedis(ctx, url, prefix, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		return s
	}

	// Instances starting at once on an empty store agree on one ring.
	rings := make([]*tokens.KeyRing, 6)
	var wg sync.WaitGroup
	for i := range rings {
		s := open("rings:")
		wg.Go(func() {
			r, err := tokens.NewKeyRing(ctx, s, cfg)
			if err != nil {
				t.Errorf("NewKeyRing: %v", err)
				return
			}
			rings[i] = r
		})
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	for _, r := range rings[1:] {
		if r.SigningKeyID() != rings[0].SigningKeyID() || !bytes.Equal(r.JWKS(), rings[0].JWKS()) {
			t.Fatalf("instances started together disagree on the keys:\n%s\n%s", r.JWKS(), rings[0].JWKS())
		}
	}

	a, b := rings[0], rings[1]
	audience := siteAddr() + "/mcp"
	verify := func(ring *tokens.KeyRing, tok, what string) {
		t.Helper()
		if _, err := tokens.NewVerifier(ring, siteAddr()).Verify(ctx, tok, audience); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	verify(b, mint(t, a, nil), "b verifying a's token")
	verify(a, mint(t, b, nil), "a verifying b's token")

	// Two rotations on a make it sign with a key b has never seen: the
	// first successor was published when b loaded, the second was not.
	before := b.SigningKeyID()
	for range 2 {
		if err := a.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	tok := mint(t, a, nil)
	if a.SigningKeyID() == before || strings.Contains(string(b.JWKS()), a.SigningKeyID()) {
		t.Fatalf("a's new key %s is already known to b", a.SigningKeyID())
	}
	verify(b, tok, "b verifying a token signed with a key a rotated in")
	if !bytes.Equal(a.JWKS(), b.JWKS()) {
		t.Error("b did not load a's rotated keys")
	}

	// And the other way round.
	for range 2 {
		if err := b.Rotate(ctx); err != nil {
			t.Fatal(err)
		}
	}
	verify(a, mint(t, b, nil), "a verifying a token signed with a key b rotated in")

	// Another prefix is another deployment, with keys of its own.
	other, err := tokens.NewKeyRing(ctx, open("other:"), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tokens.NewVerifier(other, siteAddr()).Verify(context.Background(), mint(t, a, nil), audience); err == nil {
		t.Error("a deployment under another prefix accepted a's token")
	}
}

// Caddy keeps its state in Redis Sentinel and Redis Cluster as in one
// server: a login on them is honoured, and with Sentinel a refresh after
// the replica took over from the master still works.
func TestRedisTopologiesServeLogins(t *testing.T) {
	sentinel := redistest.StartSentinel(t)
	for name, url := range map[string]string{
		"sentinel": sentinel.URL,
		"cluster":  redistest.StartCluster(t),
	} {
		t.Run(name, func(t *testing.T) {
			logDir := t.TempDir()
			e := startASWith(t, redisASSite(t, redisGlobalOptions(url, "", filepath.Join(logDir, "caddy.log")), logDir, usersUpstream()), logDir)
			c := e.publicClient(t)
			ts := e.login(t, c, nil)
			if status := e.mcpStatus(t, ts.Access); status != http.StatusOK {
				t.Fatalf("access token: %d", status)
			}
			if name == "sentinel" {
				sentinel.Failover(t)
			}
			// The first request after a failover may meet the old master
			// and get 503; the store then asks the sentinel again.
			deadline := time.Now().Add(10 * time.Second)
			for {
				status, body := e.refresh(t, c, ts.Refresh, nil)
				if status == http.StatusOK {
					break
				}
				if status != http.StatusServiceUnavailable || time.Now().After(deadline) {
					t.Fatalf("refresh: %d %v", status, body)
				}
				time.Sleep(100 * time.Millisecond)
			}
			_ = caddy.Stop()
		})
	}
}
