package storage

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
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

	// redisBatch is how many values one MGET in List fetches.
	redisBatch = 128
)

// Redis is a Store backed by a Redis server (6.2 or newer), shared by every
// Caddy instance configured with the same server, database and prefix: an
// authorization server behind a load balancer then shares its clients,
// grants, revocations and signing keys across instances.
//
// Each entry is one Redis string under the store's prefix followed by the
// Store key, with Redis's own millisecond expiry. Every method is a single
// Redis command or Lua script, so each is atomic on the server, also
// between instances. Redis Cluster is not supported (List scans one node).
//
// The server should not evict keys (maxmemory-policy noeviction): an
// evicted revocation would be forgotten, an evicted key ring replaced.
type Redis struct {
	client *redis.Client
	prefix string
	addr   string // for messages: never holds credentials

	closeOnce sync.Once
	closeErr  error
}

// Interface guard
var _ Store = (*Redis)(nil)

// OpenRedis connects to the Redis server at rawURL, a redis://, rediss://
// (TLS) or unix:// URL in the form redis.ParseURL accepts, for example
// redis://:password@host:6379/2. Before it returns, it checks within a few
// seconds, without retrying, that the server answers and has GETDEL. Keys are stored under prefix, or DefaultRedisPrefix
// if prefix is empty. Errors name the server's address but never the
// password. Callers must call Close when done.
func OpenRedis(ctx context.Context, rawURL string, prefix string) (*Redis, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	opts, err := redis.ParseURL(rawURL)
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
	addr := describeRedis(opts)
	if err := probeRedis(ctx, opts, addr, prefix); err != nil {
		return nil, err
	}
	return &Redis{client: redis.NewClient(opts), prefix: prefix, addr: addr}, nil
}

// probeRedis checks that the server of opts answers and has GETDEL (Redis
// 6.2), with a client of its own that does not retry: the store's client
// retries failed commands and dials, which serves a running server with a
// blip but would only delay the report of a wrong address.
func probeRedis(ctx context.Context, opts *redis.Options, addr, prefix string) error {
	probeOpts := *opts
	probeOpts.MaxRetries = -1
	probeOpts.DialerRetries = 1
	probeOpts.PoolSize = 1
	probe := redis.NewClient(&probeOpts)
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

// describeRedis names the server of opts for messages, without credentials.
func describeRedis(opts *redis.Options) string {
	switch {
	case opts.Network == "unix":
		return fmt.Sprintf("unix://%s (db %d)", opts.Addr, opts.DB)
	case opts.TLSConfig != nil:
		return fmt.Sprintf("rediss://%s/%d", opts.Addr, opts.DB)
	}
	return fmt.Sprintf("redis://%s/%d", opts.Addr, opts.DB)
}

// String describes the store, its server and prefix, without credentials.
func (r *Redis) String() string {
	return fmt.Sprintf("%s prefix %q", r.addr, r.prefix)
}

// Close closes the connections to Redis. It is safe to call more than once;
// later calls return the first result. Entries stay in Redis.
func (r *Redis) Close() error {
	r.closeOnce.Do(func() { r.closeErr = r.client.Close() })
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
	if err := ctx.Err(); err != nil {
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
	if err := ctx.Err(); err != nil {
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
	if err := ctx.Err(); err != nil {
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
	if err := ctx.Err(); err != nil {
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

// List implements Store. It collects the matching keys with SCAN, sorts
// them, and reads their values with MGET in batches as fn consumes them.
// It is not a snapshot: an entry that expires or is deleted (by fn too)
// before its batch is read is skipped, and one created meanwhile may or may
// not be visited.
func (r *Redis) List(ctx context.Context, prefix string, fn func(key string, value []byte) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	full := r.key(prefix)
	match := escapeGlob(full) + "*"
	var keys []string
	var cursor uint64
	for {
		page, next, err := r.client.Scan(ctx, cursor, match, redisScanCount).Result()
		if err != nil {
			return redisErr("SCAN", err)
		}
		for _, k := range page {
			// The pattern is exact, but keys of other stores must never leak.
			if strings.HasPrefix(k, full) {
				keys = append(keys, k)
			}
		}
		if next == 0 {
			break
		}
		cursor = next
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	// SCAN may return a key more than once.
	slices.Sort(keys)
	keys = slices.Compact(keys)

	for batch := range slices.Chunk(keys, redisBatch) {
		if err := ctx.Err(); err != nil {
			return err
		}
		values, err := r.client.MGet(ctx, batch...).Result()
		if err != nil {
			return redisErr("MGET", err)
		}
		for i, v := range values {
			s, ok := v.(string)
			if !ok { // gone (deleted or expired) since SCAN, or not a string
				continue
			}
			if err := fn(strings.TrimPrefix(batch[i], r.prefix), []byte(s)); err != nil {
				return err
			}
		}
	}
	return nil
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
