package storage

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// DefaultRedisPrefix namespaces the keys of a Redis store when no prefix
// is configured.
const DefaultRedisPrefix = "mcp_auth:"

const (
	// redisPingTimeout bounds the connection check of OpenRedis, so that a
	// wrong address fails a config load quickly instead of hanging it.
	redisPingTimeout = 5 * time.Second

	// redisScanCount is the COUNT hint of each SCAN call in List.
	redisScanCount = 1000

	// redisBatch is how many values List fetches in one round trip.
	redisBatch = 128
)

// Redis is a Store backed by Redis (6.2 or newer): a standalone server, a
// master watched by Sentinel, or a Cluster. Every Caddy instance configured
// with the same Redis, database and prefix shares it: an authorization
// server behind a load balancer then shares its clients, grants,
// revocations and signing keys across instances.
//
// Each entry is one Redis string under the store's prefix followed by the
// Store key, with Redis's own millisecond expiry. Every method is a single
// Redis command or a Lua script on one key, so each is atomic on the server,
// also between instances, and in a Cluster each entry goes to the master of
// its own slot. A prefix with a hash tag, such as "{mcp_auth}:", keeps a
// whole store in one slot instead. Commands always go to masters: a replica
// may not have seen the latest revocation yet.
//
// The server should not evict keys (maxmemory-policy noeviction): an
// evicted revocation would be forgotten, an evicted key ring replaced.
type Redis struct {
	client redis.UniversalClient
	prefix string
	addr   string // for messages: never holds credentials
	// reachable hears every command's outcome, and the subscriptions',
	// which no command hook sees.
	reachable *reachability

	closeOnce sync.Once
	closeErr  error
}

// Interface guard
var _ Store = (*Redis)(nil)

// OpenRedis connects to Redis at rawURL and returns a store whose keys are
// under prefix, or DefaultRedisPrefix if prefix is empty. The URL's scheme
// names the topology:
//
//   - redis://, rediss:// (TLS) or unix://: a standalone server, in the
//     form redis.ParseURL accepts, for example redis://:password@host:6379/2
//     or rediss://user:password@host:6380/0 for an ACL user over TLS;
//   - redis-sentinel:// or rediss-sentinel://: Sentinel, in the form
//     redis.ParseFailoverURL accepts: the host and each addr parameter are
//     sentinels, master_name names the master (required), the URL's user
//     and password authenticate at the sentinels and the username and
//     password parameters at the master, for example
//     redis-sentinel://sentinel1:26379/0?addr=sentinel2:26379&master_name=mymaster;
//   - redis-cluster:// or rediss-cluster://: a Cluster, in the form
//     redis.ParseClusterURL accepts: the host and each addr parameter are
//     seed nodes, for example redis-cluster://:password@node1:6379?addr=node2:6379.
//
// Options that would read from replicas are refused. Before it returns,
// OpenRedis checks within a few seconds, without retrying, that Redis
// answers and has GETDEL. Errors name the servers but never a password.
// When Redis stops answering, and when it answers again, the store says so
// once to logger, which may be nil. Callers must call Close when done.
func OpenRedis(ctx context.Context, rawURL string, prefix string, logger *zap.Logger) (*Redis, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	target, err := parseRedisURL(rawURL)
	if err != nil {
		// url.Parse errors quote the whole URL, password included.
		if uerr, ok := errors.AsType[*url.Error](err); ok {
			err = uerr.Err
		}
		return nil, fmt.Errorf("storage: invalid redis URL: %w", err)
	}
	if prefix == "" {
		prefix = DefaultRedisPrefix
	}
	addr := target.String()
	if err := probeRedis(ctx, target, addr, prefix); err != nil {
		return nil, err
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	r := &Redis{client: target.client(false), prefix: prefix, addr: addr}
	r.reachable = &reachability{store: r.String(), logger: logger.Named("redis")}
	r.client.AddHook(r.reachable)
	ctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	if err := checkSchema(ctx, r, r.String()); err != nil {
		_ = r.Close()
		return nil, err
	}
	return r, nil
}

// redisTarget is a parsed Redis URL: exactly one of its fields is set.
type redisTarget struct {
	standalone *redis.Options
	sentinel   *redis.FailoverOptions
	cluster    *redis.ClusterOptions
}

// Topology suffixes of URL schemes; the scheme without them is go-redis's.
const (
	sentinelScheme = "-sentinel"
	clusterScheme  = "-cluster"
)

// parseRedisURL parses a URL of one of the forms OpenRedis documents.
func parseRedisURL(rawURL string) (redisTarget, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return redisTarget{}, err
	}
	scheme := u.Scheme // url.Parse lowercases it
	switch {
	case strings.HasSuffix(scheme, sentinelScheme):
		u.Scheme = strings.TrimSuffix(scheme, sentinelScheme)
		opts, err := redis.ParseFailoverURL(u.String())
		if err != nil {
			return redisTarget{}, err
		}
		if opts.MasterName == "" {
			return redisTarget{}, errors.New("a sentinel URL needs the master_name parameter")
		}
		if opts.ReplicaOnly || opts.RouteByLatency || opts.RouteRandomly {
			return redisTarget{}, errors.New("replica_only, route_by_latency and route_randomly would read from replicas, which may lag behind the master")
		}
		verifyEachHost(opts.TLSConfig)
		return redisTarget{sentinel: opts}, nil
	case strings.HasSuffix(scheme, clusterScheme):
		if db := strings.Trim(u.Path, "/"); db != "" && db != "0" {
			return redisTarget{}, fmt.Errorf("a cluster has only database 0, not %q", db)
		}
		u.Scheme, u.Path = strings.TrimSuffix(scheme, clusterScheme), ""
		opts, err := redis.ParseClusterURL(u.String())
		if err != nil {
			return redisTarget{}, err
		}
		if opts.ReadOnly || opts.RouteByLatency || opts.RouteRandomly {
			return redisTarget{}, errors.New("read_only, route_by_latency and route_randomly would read from replicas, which may lag behind their masters")
		}
		verifyEachHost(opts.TLSConfig)
		return redisTarget{cluster: opts}, nil
	}
	opts, err := redis.ParseURL(rawURL)
	if err != nil {
		return redisTarget{}, err
	}
	return redisTarget{standalone: opts}, nil
}

// verifyEachHost makes TLS check each server's certificate against the
// host it dials: go-redis names the URL's first host for all of them, but
// the master a sentinel points to, or another cluster node, is elsewhere.
func verifyEachHost(cfg *tls.Config) {
	if cfg != nil {
		cfg.ServerName = ""
	}
}

// client returns a client for the target. A probe client makes one
// attempt per command and dial on one connection.
func (t redisTarget) client(probe bool) redis.UniversalClient {
	switch {
	case t.sentinel != nil:
		opts := *t.sentinel
		if probe {
			opts.MaxRetries, opts.DialerRetries, opts.PoolSize = -1, 1, 1
		}
		return redis.NewFailoverClient(&opts)
	case t.cluster != nil:
		opts := *t.cluster
		if probe {
			opts.MaxRetries, opts.DialerRetries, opts.PoolSize = -1, 1, 1
		}
		return redis.NewClusterClient(&opts)
	}
	opts := *t.standalone
	if probe {
		opts.MaxRetries, opts.DialerRetries, opts.PoolSize = -1, 1, 1
	}
	return redis.NewClient(&opts)
}

// String names the servers of the target for messages, without
// credentials.
func (t redisTarget) String() string {
	switch {
	case t.sentinel != nil:
		return fmt.Sprintf("%s://%s/%d master %q", tlsScheme(t.sentinel.TLSConfig, "redis-sentinel"),
			strings.Join(t.sentinel.SentinelAddrs, ","), t.sentinel.DB, t.sentinel.MasterName)
	case t.cluster != nil:
		return fmt.Sprintf("%s://%s", tlsScheme(t.cluster.TLSConfig, "redis-cluster"),
			strings.Join(t.cluster.Addrs, ","))
	case t.standalone.Network == "unix":
		return fmt.Sprintf("unix://%s (db %d)", t.standalone.Addr, t.standalone.DB)
	}
	return fmt.Sprintf("%s://%s/%d", tlsScheme(t.standalone.TLSConfig, "redis"), t.standalone.Addr, t.standalone.DB)
}

// tlsScheme is scheme, with the s of TLS if cfg is set.
func tlsScheme(cfg *tls.Config, scheme string) string {
	if cfg != nil {
		return strings.Replace(scheme, "redis", "rediss", 1)
	}
	return scheme
}

// probeRedis checks that the target answers and has GETDEL (Redis 6.2),
// with a client of its own that does not retry: the store's client retries
// failed commands and dials, which serves a running server with a blip but
// would only delay the report of a wrong address.
func probeRedis(ctx context.Context, target redisTarget, addr, prefix string) error {
	probe := target.client(true)
	defer probe.Close()

	ctx, cancel := context.WithTimeout(ctx, redisPingTimeout)
	defer cancel()
	err := probe.Ping(ctx).Err()
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		err = fmt.Errorf("no answer within %v: %w", redisPingTimeout, err)
	}
	if err != nil {
		return fmt.Errorf("storage: cannot reach redis at %s: %w", addr, err)
	}
	// Take needs GETDEL. The probe key is no Store key, as those are
	// printable, so there is nothing to delete.
	if err := probe.GetDel(ctx, prefix+"\x00probe").Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("storage: redis at %s: GETDEL failed (Redis 6.2 or newer is required): %w", addr, err)
	}
	return nil
}

// String describes the store, its server and prefix, without credentials.
func (r *Redis) String() string {
	return fmt.Sprintf("%s prefix %q", r.addr, r.prefix)
}

// Close closes the connections to Redis, giving up after CloseTimeout. It
// is safe to call more than once; later calls return the first result.
// Entries stay in Redis.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() { r.closeErr = closeWithin(CloseTimeout, "redis "+r.String(), r.client.Close) })
	return r.closeErr
}

// key is the Redis key of a Store key.
func (r *Redis) key(key string) string { return r.prefix + key }

// redisTTL converts a Store ttl into the milliseconds of a PX argument;
// zero means no expiry.
//
// Redis keeps a key until its clock has passed the deadline millisecond,
// that is up to a millisecond past it, so the TTL is rounded down and one
// millisecond taken off: an entry is never returned after its ttl, counted
// from when Redis executes the write. Redis cannot expire within less than
// a millisecond, so that is the least.
func redisTTL(ttl time.Duration) int64 {
	if ttl <= 0 {
		return 0
	}
	return max(ttl.Milliseconds()-1, 1)
}

// redisErr wraps a Redis error with the operation, but with neither key nor
// value: keys can be derived from secrets and values are secrets.
func redisErr(op string, err error) error {
	return fmt.Errorf("storage: redis %s: %w", op, err)
}

// Get implements Store with GET.
func (r *Redis) Get(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	value, err := r.client.Get(ctx, r.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, redisErr("GET", err)
	}
	return value, nil
}

// Put implements Store with SET, plus PX for a ttl.
func (r *Redis) Put(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkWrite(ctx, ttl); err != nil {
		return err
	}
	args := []any{"SET", r.key(key), value}
	if px := redisTTL(ttl); px > 0 {
		args = append(args, "PX", px)
	}
	if err := r.client.Do(ctx, args...).Err(); err != nil {
		return redisErr("SET", err)
	}
	return nil
}

// Create implements Store with SET NX: Redis sets the key only if it does
// not exist (an expired key does not), in one step.
func (r *Redis) Create(ctx context.Context, key string, value []byte, ttl time.Duration) error {
	if err := checkWrite(ctx, ttl); err != nil {
		return err
	}
	args := []any{"SET", r.key(key), value, "NX"}
	if px := redisTTL(ttl); px > 0 {
		args = append(args, "PX", px)
	}
	err := r.client.Do(ctx, args...).Err()
	if errors.Is(err, redis.Nil) { // NX condition not met
		return ErrConflict
	}
	if err != nil {
		return redisErr("SET NX", err)
	}
	return nil
}

// Take implements Store with GETDEL (Redis 6.2), which reads and deletes in
// one command, so of concurrent callers only one gets the value.
func (r *Redis) Take(ctx context.Context, key string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	value, err := r.client.GetDel(ctx, r.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, redisErr("GETDEL", err)
	}
	return value, nil
}

// swapScript compares and sets in one step: Redis runs a script without
// interleaving other commands. Lua strings are byte strings, so ~= compares
// byte for byte. ARGV[3] is the PX in milliseconds, "0" for no expiry.
var swapScript = redis.NewScript(`
local current = redis.call('GET', KEYS[1])
if current == false then
	return 0
end
if current ~= ARGV[1] then
	return 1
end
if ARGV[3] == '0' then
	redis.call('SET', KEYS[1], ARGV[2])
else
	redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 2
`)

// Results of swapScript.
const (
	swapMissing  = 0
	swapMismatch = 1
	swapDone     = 2
)

// Swap implements Store with a Lua script (see swapScript).
func (r *Redis) Swap(ctx context.Context, key string, old, value []byte, ttl time.Duration) error {
	if err := checkWrite(ctx, ttl); err != nil {
		return err
	}
	// A nil []byte is sent as an empty string, as Store's nil means empty.
	res, err := swapScript.Run(ctx, r.client, []string{r.key(key)}, old, value, redisTTL(ttl)).Int64()
	if err != nil {
		return redisErr("swap script", err)
	}
	switch res {
	case swapMissing:
		return ErrNotFound
	case swapMismatch:
		return ErrConflict
	case swapDone:
		return nil
	}
	return fmt.Errorf("storage: redis swap script returned %d", res)
}

// incrementScript counts and, on the first count, sets the expiry in one
// step, so a counter never outlives its window. ARGV[1] is the PX in
// milliseconds, "0" for no expiry.
var incrementScript = redis.NewScript(`
local n = redis.call('INCR', KEYS[1])
if n == 1 and ARGV[1] ~= '0' then
	redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
`)

// Increment implements Store with a Lua script (see incrementScript).
func (r *Redis) Increment(ctx context.Context, key string, ttl time.Duration) (int64, error) {
	if err := checkWrite(ctx, ttl); err != nil {
		return 0, err
	}
	n, err := incrementScript.Run(ctx, r.client, []string{r.key(key)}, redisTTL(ttl)).Int64()
	if err != nil {
		return 0, redisErr("increment script", err)
	}
	return n, nil
}

// Delete implements Store with DEL.
func (r *Redis) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := r.client.Del(ctx, r.key(key)).Err(); err != nil {
		return redisErr("DEL", err)
	}
	return nil
}

// List implements Store. It collects the matching keys with SCAN (on every
// master of a Cluster), sorts them, and reads their values with pipelined
// GETs in batches as fn consumes them. It is not a snapshot: an entry that
// expires or is deleted (by fn too) before its batch is read is skipped,
// and one created meanwhile may or may not be visited.
func (r *Redis) List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	return r.walk(ctx, prefix, false, func(e Entry) error { return fn(e.Key, e.Value) })
}

// Dump implements Dumper. Like List, it is not a snapshot.
func (r *Redis) Dump(ctx context.Context, fn func(Entry) error) error {
	return r.walk(ctx, "", true, fn)
}

// walk calls fn for every entry whose key starts with prefix, in ascending
// key order, with its remaining time to live if withTTL is set.
func (r *Redis) walk(ctx context.Context, prefix string, withTTL bool, fn func(Entry) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	keys, err := r.scan(ctx, r.key(prefix))
	if err != nil {
		return err
	}
	// SCAN may return a key more than once.
	slices.Sort(keys)
	keys = slices.Compact(keys)

	for batch := range slices.Chunk(keys, redisBatch) {
		if err := ctx.Err(); err != nil {
			return err
		}
		// GETs rather than one MGET: in a Cluster the keys are in many
		// slots, and the pipeline sends each GET to its key's master.
		gets := make([]*redis.StringCmd, len(batch))
		ttls := make([]*redis.DurationCmd, len(batch))
		_, err := r.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range batch {
				gets[i] = p.Get(ctx, k)
				if withTTL {
					ttls[i] = p.PTTL(ctx, k)
				}
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) && !isWrongType(err) {
			return redisErr("GET", err)
		}
		for i, get := range gets {
			value, err := get.Bytes()
			if errors.Is(err, redis.Nil) || isWrongType(err) {
				continue // gone (deleted or expired) since SCAN, or not a string
			}
			if err != nil {
				return redisErr("GET", err)
			}
			e := Entry{Key: strings.TrimPrefix(batch[i], r.prefix), Value: value}
			if withTTL {
				ttl, err := ttls[i].Result()
				if err != nil {
					return redisErr("PTTL", err)
				}
				switch {
				case ttl == -1: // go-redis's value for no expiry
				case ttl > 0:
					e.TTL = ttl
				default:
					continue // gone since the GET, or expiring this millisecond
				}
			}
			if err := fn(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// scan returns the keys that begin with full, from every master of a
// Cluster, possibly some more than once.
func (r *Redis) scan(ctx context.Context, full string) ([]string, error) {
	cluster, ok := r.client.(*redis.ClusterClient)
	if !ok {
		return scanNode(ctx, r.client, r.prefix, full)
	}
	var mu sync.Mutex
	var keys []string
	err := cluster.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		found, err := scanNode(ctx, node, r.prefix, full)
		mu.Lock()
		defer mu.Unlock()
		keys = append(keys, found...)
		return err
	})
	return keys, err
}

// scanNode returns the keys of one server that begin with full, except the
// store's own under prefix.
func scanNode(ctx context.Context, node redis.Cmdable, prefix, full string) ([]string, error) {
	match := escapeGlob(full) + "*"
	var keys []string
	var cursor uint64
	for {
		page, next, err := node.Scan(ctx, cursor, match, redisScanCount).Result()
		if err != nil {
			return nil, redisErr("SCAN", err)
		}
		for _, k := range page {
			// The pattern is exact, but keys of other stores must never leak.
			if strings.HasPrefix(k, full) && !isInternalKey(strings.TrimPrefix(k, prefix)) {
				keys = append(keys, k)
			}
		}
		if next == 0 {
			return keys, nil
		}
		cursor = next
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
}

// isWrongType reports whether err is Redis refusing a command on a key of
// another type.
func isWrongType(err error) bool {
	rerr, ok := errors.AsType[redis.Error](err)
	return ok && strings.HasPrefix(rerr.Error(), "WRONGTYPE")
}

// escapeGlob escapes the characters special in Redis glob-style patterns,
// so that a pattern built from s matches s literally.
func escapeGlob(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// Interface guard
var _ Notifier = (*Redis)(nil)

// Publish publishes message on channel, under the store's prefix, with
// Redis pub/sub.
func (r *Redis) Publish(ctx context.Context, channel string, message []byte) error {
	return r.client.Publish(ctx, r.key(channel), message).Err()
}

// Subscribe subscribes to channel, under the store's prefix, with Redis
// pub/sub. While no message comes it pings the server at half the
// heartbeat: the answer comes on the subscription's connection after any
// message published before it, so it proves that none was missed.
func (r *Redis) Subscribe(ctx context.Context, channel string, onMessage func([]byte), onListening func(bool)) {
	go func() {
		sub := r.client.Subscribe(ctx, r.key(channel))
		defer sub.Close()
		listening := false
		for ctx.Err() == nil {
			start := time.Now()
			msg, err := sub.ReceiveTimeout(ctx, NotifierHeartbeat/2)
			netErr, _ := errors.AsType[net.Error](err)
			quiet := listening && netErr != nil && netErr.Timeout()
			if quiet {
				err = sub.Ping(ctx) // its pong, or its absence, is news
			}
			if !quiet || err != nil {
				// A Sentinel or Cluster client may ride out a failover
				// by retrying its commands; the subscription's
				// connection cannot, and may be the only sign of it.
				r.reachable.observe(ctx, start, err)
			}
			if err != nil {
				if listening {
					listening = false
					onListening(false)
				}
				// The next receive reconnects and subscribes again.
				select {
				case <-ctx.Done():
				case <-time.After(NotifierHeartbeat / 2):
				}
				continue
			}
			switch m := msg.(type) {
			case *redis.Subscription:
				listening = true
				onListening(true)
			case *redis.Message:
				onMessage([]byte(m.Payload))
				onListening(true) // as good a sign of life as a pong
			case *redis.Pong:
				if listening {
					onListening(true)
				}
			}
		}
	}()
}
