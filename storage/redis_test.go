package storage_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

func openRedis(t *testing.T, url, prefix string) *storage.Redis {
	t.Helper()
	r, err := storage.OpenRedis(t.Context(), url, prefix, nil)
	if err != nil {
		t.Fatalf("OpenRedis: %v", err)
	}
	t.Cleanup(func() {
		if err := r.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return r
}

// rawClient is a plain go-redis client for looking at what the store wrote.
func rawClient(t *testing.T, url string) *redis.Client {
	t.Helper()
	opts, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(opts)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func TestRedisContract(t *testing.T) {
	url := redistest.Start(t)
	var n atomic.Int64
	storagetest.Run(t, func(t *testing.T) storage.Store {
		// One server for all subtests; a prefix of its own makes each
		// store empty.
		return openRedis(t, url, fmt.Sprintf("contract%d:", n.Add(1)))
	})
}

func TestRedisPrefixedContract(t *testing.T) {
	url := redistest.Start(t)
	var n atomic.Int64
	storagetest.Run(t, func(t *testing.T) storage.Store {
		r := openRedis(t, url, fmt.Sprintf("prefixed%d:", n.Add(1)))
		// A neighbour whose prefix shares a beginning stays invisible.
		if err := r.Put(t.Context(), "site/ab/k/neighbour", []byte("x"), 0); err != nil {
			t.Fatal(err)
		}
		return storage.Prefixed(r, "site/a/")
	})
}

// Two stores on one server and prefix are what two Caddy instances behind
// a load balancer have: each sees the other's writes, and the atomic
// operations hold between them.
func TestRedisSharedBetweenStores(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	a, b := openRedis(t, url, ""), openRedis(t, url, "")

	if err := a.Put(ctx, "client/1", []byte("registered on a"), 0); err != nil {
		t.Fatal(err)
	}
	if got, err := b.Get(ctx, "client/1"); err != nil || string(got) != "registered on a" {
		t.Fatalf("b.Get = %q, %v; want a's value", got, err)
	}
	if err := b.Create(ctx, "client/1", []byte("again"), 0); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("b.Create over a's key: %v, want ErrConflict", err)
	}
	if err := b.Swap(ctx, "client/1", []byte("registered on a"), []byte("updated on b"), time.Hour); err != nil {
		t.Fatalf("b.Swap: %v", err)
	}
	if err := a.Swap(ctx, "client/1", []byte("registered on a"), []byte("lost update"), 0); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a.Swap with stale value: %v, want ErrConflict", err)
	}
	var listed []string
	if err := a.List(ctx, "client/", func(k string, v []byte) error {
		listed = append(listed, k+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := []string{"client/1=updated on b"}; !slices.Equal(listed, want) {
		t.Fatalf("a.List = %q, want %q", listed, want)
	}
	if err := b.Delete(ctx, "client/1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Get(ctx, "client/1"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a.Get after b.Delete: %v, want ErrNotFound", err)
	}

	// An authorization code redeemed at both instances at once is redeemed
	// once.
	for i := range 20 {
		key := fmt.Sprintf("code/%d", i)
		if err := a.Put(ctx, key, []byte("code"), time.Minute); err != nil {
			t.Fatal(err)
		}
		var wins atomic.Int64
		var wg sync.WaitGroup
		for _, s := range []storage.Store{a, b, a, b, a, b} {
			wg.Go(func() {
				_, err := s.Take(ctx, key)
				switch {
				case err == nil:
					wins.Add(1)
				case !errors.Is(err, storage.ErrNotFound):
					t.Errorf("Take: %v", err)
				}
			})
		}
		wg.Wait()
		if wins.Load() != 1 {
			t.Fatalf("%s redeemed %d times", key, wins.Load())
		}
	}

	// The entries are where another instance, or an operator, finds them.
	if n, err := rawClient(t, url).Exists(ctx, storage.DefaultRedisPrefix+"code/0").Result(); err != nil || n != 0 {
		t.Fatalf("EXISTS taken code: %d, %v", n, err)
	}
	if err := a.Put(ctx, "keys/ring", []byte("ring"), 0); err != nil {
		t.Fatal(err)
	}
	if v, err := rawClient(t, url).Get(ctx, "mcp_auth:keys/ring").Result(); err != nil || v != "ring" {
		t.Fatalf("GET mcp_auth:keys/ring = %q, %v", v, err)
	}
}

func TestRedisPrefixIsolation(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	one, two := openRedis(t, url, "one:"), openRedis(t, url, "two:")
	def := openRedis(t, url, "")

	for _, s := range []*storage.Redis{one, two, def} {
		if err := s.Put(ctx, "grant/x", []byte(s.String()), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := one.Put(ctx, "grant/only-one", []byte("1"), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := two.Get(ctx, "grant/only-one"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("two sees one's key: %v", err)
	}
	if _, err := two.Take(ctx, "grant/only-one"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("two takes one's key: %v", err)
	}
	if err := two.Create(ctx, "grant/only-one", []byte("2"), 0); err != nil {
		t.Errorf("two cannot create a key that only one has: %v", err)
	}
	if err := two.Delete(ctx, "grant/x"); err != nil {
		t.Fatal(err)
	}
	for _, s := range []*storage.Redis{one, def} {
		if got, err := s.Get(ctx, "grant/x"); err != nil || string(got) != s.String() {
			t.Errorf("%s: Get = %q, %v after two deleted its own", s, got, err)
		}
	}
	for s, want := range map[*storage.Redis][]string{
		one: {"grant/only-one", "grant/x"},
		two: {"grant/only-one"},
		def: {"grant/x"},
	} {
		if got := listKeys(t, s, ""); !slices.Equal(got, want) {
			t.Errorf("%s: List = %q, want %q", s, got, want)
		}
	}
	if !strings.Contains(def.String(), `"mcp_auth:"`) {
		t.Errorf("default store is %s; want prefix mcp_auth:", def)
	}
}

// Redis SCAN patterns are globs; the prefixes given to List and OpenRedis
// are literal.
func TestRedisGlobCharacters(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	keys := []string{`a*/1`, `ab/1`, `a?/1`, `ax/1`, `a[b]/1`, `a[b/1`, `a]/1`, `a\/1`, `a\*/1`, `a^/1`, `a-/1`}
	// Stores whose prefixes are globs matching each other's keys.
	stores := []*storage.Redis{
		openRedis(t, url, "g*:"), openRedis(t, url, "gx:"),
		openRedis(t, url, "h[xy]:"), openRedis(t, url, "hx:"),
		openRedis(t, url, `i\`), openRedis(t, url, "i?"),
	}
	for _, s := range stores {
		for _, k := range keys {
			if err := s.Put(ctx, k, []byte(s.String()+" "+k), 0); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, s := range stores {
		for _, prefix := range append(keys, `a*`, `a?`, `a[b]`, `a[`, `a]`, `a\`, `a\*`, `a`, "") {
			var got []string
			err := s.List(ctx, prefix, func(k string, v []byte) error {
				if string(v) != s.String()+" "+k {
					t.Errorf("%s: List(%q) gave %q the value %q", s, prefix, k, v)
				}
				got = append(got, k)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for _, k := range keys {
				if strings.HasPrefix(k, prefix) {
					want = append(want, k)
				}
			}
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("%s: List(%q) = %q, want %q", s, prefix, got, want)
			}
		}
	}
}

// An entry is never returned once its TTL has passed since the write
// returned, however the TTL falls between milliseconds.
func TestRedisExpiryIsNeverLate(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	s := openRedis(t, url, "")
	for _, ttl := range []time.Duration{2 * time.Millisecond, 20*time.Millisecond + 700*time.Microsecond, 101 * time.Millisecond} {
		if err := s.Put(ctx, "k", []byte("v"), ttl); err != nil {
			t.Fatal(err)
		}
		written := time.Now()
		for {
			asked := time.Now()
			_, err := s.Get(ctx, "k")
			if errors.Is(err, storage.ErrNotFound) {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			if late := asked.Sub(written) - ttl; late >= 0 {
				t.Fatalf("ttl %v: entry returned %v after it expired", ttl, late)
			}
		}
	}
}

func TestRedisUnreachable(t *testing.T) {
	port := freeport.One() // nothing listens there
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	const password = "hunter2-secret"
	start := time.Now()
	r, err := storage.OpenRedis(t.Context(), "redis://user:"+password+"@"+addr+"/3", "", nil)
	if err == nil {
		r.Close()
		t.Fatal("OpenRedis on a closed port succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("OpenRedis took %v to fail", d)
	}
	msg := err.Error()
	if !strings.Contains(msg, addr) || !strings.Contains(msg, "redis") {
		t.Errorf("error should name the address: %v", err)
	}
	if strings.Contains(msg, password) || strings.Contains(msg, "user:") {
		t.Errorf("error shows the credentials: %v", err)
	}
	t.Logf("error after %v: %v", time.Since(start), err)

	for _, bad := range []string{
		"redis://user:" + password + "@127.0.0.1:notaport/0",
		"redis://:" + password + "@127.0.0.1:6379/notadb",
		"http://:" + password + "@127.0.0.1:6379",
		"redis://:" + password + "@127.0.0.1:6379/0?unknown_option=" + password,
		"redis://:" + password + "@host%zz/0",
	} {
		r, err := storage.OpenRedis(t.Context(), bad, "", nil)
		if err == nil {
			r.Close()
			t.Errorf("OpenRedis(%q) succeeded", bad)
			continue
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("OpenRedis(%q): error shows the password: %v", bad, err)
		}
		if !strings.Contains(err.Error(), "redis URL") {
			t.Errorf("OpenRedis(%q): error should say the URL is wrong: %v", bad, err)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := storage.OpenRedis(ctx, "redis://"+addr, "", nil); !errors.Is(err, context.Canceled) {
		t.Errorf("OpenRedis with canceled context: %v", err)
	}
}

func TestRedisWrongPassword(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	if err := rawClient(t, url).ConfigSet(ctx, "requirepass", "right-password").Err(); err != nil {
		t.Fatal(err)
	}
	withPassword := strings.Replace(url, "redis://", "redis://:wrong-password@", 1)
	r, err := storage.OpenRedis(ctx, withPassword, "", nil)
	if err == nil {
		r.Close()
		t.Fatal("OpenRedis with the wrong password succeeded")
	}
	if strings.Contains(err.Error(), "wrong-password") || !strings.Contains(err.Error(), strings.TrimPrefix(url, "redis://")) {
		t.Errorf("error should name the server but not the password: %v", err)
	}
	t.Logf("error: %v", err)
	r = openRedis(t, strings.Replace(url, "redis://", "redis://:right-password@", 1), "")
	if err := r.Put(ctx, "k", []byte("v"), 0); err != nil {
		t.Fatal(err)
	}
}

// A server without GETDEL (before Redis 6.2) is refused when the store
// opens, not when the first authorization code is redeemed.
func TestRedisWithoutGetDel(t *testing.T) {
	url := redistest.Start(t, "--rename-command", "GETDEL", "")
	_, err := storage.OpenRedis(t.Context(), url, "", nil)
	if err == nil || !strings.Contains(err.Error(), "6.2") || !strings.Contains(err.Error(), strings.TrimPrefix(url, "redis://")) {
		t.Fatalf("OpenRedis on a server without GETDEL: %v; want an error naming the server and Redis 6.2", err)
	}
	t.Logf("error: %v", err)
}

func TestRedisCloseTwice(t *testing.T) {
	url := redistest.Start(t)
	r, err := storage.OpenRedis(t.Context(), url, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("first Close: %v", err)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := r.Put(t.Context(), "k", []byte("v"), 0); err == nil {
		t.Error("Put after Close succeeded")
	}
}

// Values never show up in errors, which end up in logs.
func TestRedisErrorsHideValues(t *testing.T) {
	url := redistest.Start(t)
	ctx := t.Context()
	s := openRedis(t, url, "")
	// A key of another type makes every command fail on the server.
	if err := rawClient(t, url).LPush(ctx, "mcp_auth:k", "x").Err(); err != nil {
		t.Fatal(err)
	}
	const secret = "secret-value-123"
	errs := map[string]error{
		"Swap": s.Swap(ctx, "k", []byte(secret), []byte(secret), 0),
	}
	_, errs["Get"] = s.Get(ctx, "k")
	_, errs["Take"] = s.Take(ctx, "k")
	for op, err := range errs {
		if err == nil || errors.Is(err, storage.ErrNotFound) || errors.Is(err, storage.ErrConflict) {
			t.Errorf("%s on a list: %v, want a server error", op, err)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("%s: error shows the value: %v", op, err)
		}
	}
	// List skips what is not a string value.
	if got := listKeys(t, s, ""); len(got) != 0 {
		t.Errorf("List = %q, want nothing", got)
	}
}

func listKeys(t *testing.T, s storage.Store, prefix string) []string {
	t.Helper()
	var keys []string
	if err := s.List(t.Context(), prefix, func(k string, _ []byte) error {
		keys = append(keys, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return keys
}

// contractPrefixes gives each store of a contract run a prefix of its own
// on one server, so that each starts empty.
func contractPrefixes(t *testing.T, url string) func(t *testing.T) storage.Store {
	var n atomic.Int64
	return func(t *testing.T) storage.Store {
		return openRedis(t, url, fmt.Sprintf("contract%d:", n.Add(1)))
	}
}

// An ACL user over TLS, verified against a CA the process trusts through
// SSL_CERT_FILE, as an operator with a private CA would configure it. The
// user has the least rights the README recommends: its prefix (and the
// contract's), and no dangerous commands.
func TestRedisTLSWithACLUserContract(t *testing.T) {
	const user, password = "mcp", "acl-password-9d2e"
	server := redistest.StartTLS(t, user, password,
		"~mcp_auth:*", "~contract*", "+@read", "+@write", "+@scripting", "+@connection", "-@dangerous")
	// Go reads the system roots once; no TLS connection in this test
	// binary precedes this one.
	t.Setenv("SSL_CERT_FILE", server.CAFile)
	r := openRedis(t, server.URL, "")
	if s := r.String(); strings.Contains(s, password) || !strings.HasPrefix(s, "rediss://127.0.0.1:") {
		t.Errorf("String() = %q", s)
	}
	storagetest.Run(t, contractPrefixes(t, server.URL))

	// The server refuses the user with another password.
	wrong := strings.Replace(server.URL, password, "wrong", 1)
	if r, err := storage.OpenRedis(t.Context(), wrong, "", nil); err == nil {
		r.Close()
		t.Error("OpenRedis with a wrong ACL password succeeded")
	}
}

// The contract holds with Sentinel, and after Sentinel promotes the
// replica the store finds the new master on its own: what was replicated
// is there, and writes, single-use takes and swaps work again. (One
// Sentinel setup for both: it takes seconds to come up.)
func TestRedisSentinelContractAndFailover(t *testing.T) {
	sentinel := redistest.StartSentinel(t)
	storagetest.Run(t, contractPrefixes(t, sentinel.URL))
	ctx := t.Context()
	s := openRedis(t, sentinel.URL, "")
	for i := range 50 {
		if err := s.Put(ctx, fmt.Sprintf("grant/%02d", i), []byte("before"), time.Hour); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Put(ctx, "code/1", []byte("code"), time.Hour); err != nil {
		t.Fatal(err)
	}
	sentinel.Failover(t)

	// The client may meet the old master, now a read-only replica, or a
	// closed connection once before it asks the sentinel again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := s.Put(ctx, "after", []byte("failover"), 0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Put after failover: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got := listKeys(t, s, "grant/"); len(got) != 50 {
		t.Errorf("%d grants after failover, want 50", len(got))
	}
	if v, err := s.Take(ctx, "code/1"); err != nil || string(v) != "code" {
		t.Errorf("Take after failover = %q, %v", v, err)
	}
	if _, err := s.Take(ctx, "code/1"); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("second Take after failover: %v, want ErrNotFound", err)
	}
	if err := s.Swap(ctx, "grant/00", []byte("before"), []byte("rotated"), time.Hour); err != nil {
		t.Errorf("Swap after failover: %v", err)
	}
	if n, err := s.Increment(ctx, "count", time.Minute); err != nil || n != 1 {
		t.Errorf("Increment after failover = %d, %v", n, err)
	}
}

func TestRedisClusterContract(t *testing.T) {
	storagetest.Run(t, contractPrefixes(t, redistest.StartCluster(t)))
}

// Entries spread over the masters of a Cluster, and List finds them on
// every one of them, in order.
func TestRedisClusterListsEveryMaster(t *testing.T) {
	url := redistest.StartCluster(t)
	ctx := t.Context()
	s := openRedis(t, url, "")
	var want []string
	for i := range 300 {
		key := fmt.Sprintf("client/%03d", i)
		want = append(want, key)
		if err := s.Put(ctx, key, []byte(key), 0); err != nil {
			t.Fatal(err)
		}
	}
	if got := listKeys(t, s, "client/"); !slices.Equal(got, want) {
		t.Fatalf("List found %d of %d entries", len(got), len(want))
	}

	opts, err := redis.ParseClusterURL(strings.Replace(url, "redis-cluster", "redis", 1))
	if err != nil {
		t.Fatal(err)
	}
	raw := redis.NewClusterClient(opts)
	defer raw.Close()
	var mu sync.Mutex
	var holding int
	if err := raw.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		n, err := node.DBSize(ctx).Result()
		if n > 0 {
			mu.Lock()
			holding++
			mu.Unlock()
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if holding != 3 {
		t.Errorf("entries on %d masters, want all 3", holding)
	}
}

// Topology options that would read from replicas, or that a topology
// cannot honour, are refused with the reason and without the password.
func TestRedisTopologyURLs(t *testing.T) {
	const password = "topology-secret"
	for bad, reason := range map[string]string{
		"redis-sentinel://:" + password + "@127.0.0.1:26379/0":                                 "master_name",
		"redis-sentinel://:" + password + "@127.0.0.1:26379/0?master_name=m&replica_only=true": "replicas",
		"rediss-sentinel://127.0.0.1:26379/0?master_name=m&route_randomly=true":                "replicas",
		"redis-cluster://:" + password + "@127.0.0.1:7000?read_only=true":                      "replicas",
		"redis-cluster://127.0.0.1:7000?route_by_latency=true":                                 "replicas",
		"redis-cluster://:" + password + "@127.0.0.1:7000/3":                                   "database 0",
		"redis-cluster://127.0.0.1:7000?addr=nohost":                                           "addr",
		"redis-replica://127.0.0.1:7000":                                                       "scheme",
	} {
		r, err := storage.OpenRedis(t.Context(), bad, "", nil)
		if err == nil {
			r.Close()
			t.Errorf("OpenRedis(%q) succeeded", bad)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, "redis URL") || !strings.Contains(msg, reason) || strings.Contains(msg, password) {
			t.Errorf("OpenRedis(%q) = %v, want an invalid URL error about %s without the password", bad, err, reason)
		}
	}
}
