package mcpauth

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/authserver"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

func init() {
	caddy.RegisterModule(App{})
}

// App holds what every mcp_auth site of a configuration shares: the state
// store and the signing key ring. It is configured by the `mcp_auth` global
// option; without it, the defaults apply.
type App struct {
	// StoragePath is the directory of the embedded Badger database.
	// Default: `{caddy.AppDataDir}/mcp_auth`. Not with Redis.
	StoragePath string `json:"storage_path,omitempty"`

	// Redis is the URL of Redis (6.2 or newer); its scheme names the
	// topology: redis:// or rediss:// (TLS) for one server, such as
	// `redis://:password@redis.internal:6379/0`; redis-sentinel:// or
	// rediss-sentinel:// for Sentinel, with the sentinels as hosts and a
	// master_name parameter; redis-cluster:// or rediss-cluster:// for
	// Redis Cluster, with seed nodes as hosts. Placeholders such as
	// {env.REDIS_URL} are expanded at provision. When set, all state lives
	// in Redis instead of Badger, so several Caddy instances behind a load
	// balancer share clients, grants, revocations and signing keys.
	Redis string `json:"redis,omitempty"`

	// RedisPrefix namespaces the keys in Redis, so that several independent
	// deployments can share one database: instances that must share state
	// use the same prefix. Avoid a prefix that begins another one. Default:
	// `mcp_auth:`.
	RedisPrefix string `json:"redis_prefix,omitempty"`

	// SigningAlgorithm is the JWS algorithm of new signing keys: ES256,
	// RS256 or EdDSA. Default: ES256.
	SigningAlgorithm string `json:"signing_algorithm,omitempty"`

	// KeyRotation is how long a signing key signs before its successor,
	// published one period earlier, takes over. A retired key stays
	// published for one more period, so it must exceed the longest token
	// lifetime. Default: 30 days.
	KeyRotation caddy.Duration `json:"key_rotation,omitempty"`

	store    storage.Store
	storeKey string
	ring     *tokens.KeyRing
	logger   *zap.Logger
	// keysMaintained is closed when maintainKeys has stopped using the
	// store.
	keysMaintained chan struct{}

	sites *siteRegistry
}

// siteRegistry holds the authorization servers of a configuration, each
// with its own key space of the store, in the order they were provisioned.
type siteRegistry struct {
	sync.Mutex
	list []*authserver.Admin
}

// stores keeps each store open across config reloads: a reload provisions
// the new config before cleaning up the old one, and Badger locks its
// directory. Badger databases are keyed by absolute path, Redis stores by
// "redis:"+url+"|"+prefix, so a reload shares one Redis client.
var stores = caddy.NewUsagePool()

// pooledStore lets the pool close the database when its last user is gone.
type pooledStore struct {
	*storage.Badger
	logger *zap.Logger
}

func (p pooledStore) Destruct() error { return closeStore(p.logger, p.Badger) }

// pooledRedis lets the pool close the Redis client when its last user is
// gone.
type pooledRedis struct {
	*storage.Redis
	logger *zap.Logger
}

func (p pooledRedis) Destruct() error { return closeStore(p.logger, p.Redis) }

// closeStore closes a store and logs why it failed. Closing gives up after
// storage.CloseTimeout, so a failing disk cannot keep Caddy from exiting or
// reloading; the error names the store.
func closeStore(logger *zap.Logger, store io.Closer) error {
	err := store.Close()
	if err != nil {
		logger.Error("closing the state store", zap.Error(err))
	}
	return err
}

// CaddyModule returns the Caddy module information.
func (App) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "mcp_auth",
		New: func() caddy.Module { return new(App) },
	}
}

// Provision opens (or joins) the store and loads the key ring.
func (a *App) Provision(ctx caddy.Context) error {
	a.logger = ctx.Logger()
	a.sites = new(siteRegistry)
	if a.KeyRotation == 0 {
		a.KeyRotation = caddy.Duration(30 * 24 * time.Hour)
	}
	if a.KeyRotation < caddy.Duration(time.Hour) {
		return fmt.Errorf("key_rotation (%s) must be at least 1h", time.Duration(a.KeyRotation))
	}
	var where string // the store, for messages
	var err error
	if a.Redis != "" || a.RedisPrefix != "" {
		where, err = a.openRedis(ctx)
	} else {
		where, err = a.openBadger()
	}
	if err != nil {
		return err
	}

	a.ring, err = tokens.NewKeyRing(ctx, a.store, tokens.KeyRingConfig{
		Algorithm:      a.SigningAlgorithm,
		RotationPeriod: time.Duration(a.KeyRotation),
		RetainPeriod:   time.Duration(a.KeyRotation),
	})
	if err != nil {
		return fmt.Errorf("signing keys in %s: %w", where, err)
	}
	a.keysMaintained = make(chan struct{})
	go a.maintainKeys(ctx, maintenanceInterval(time.Duration(a.KeyRotation)))
	return nil
}

// openBadger opens (or joins) the Badger database at StoragePath.
func (a *App) openBadger() (string, error) {
	if a.StoragePath == "" {
		a.StoragePath = filepath.Join(caddy.AppDataDir(), "mcp_auth")
	}
	abs, err := filepath.Abs(a.StoragePath)
	if err != nil {
		return "", fmt.Errorf("storage_path %q: %w", a.StoragePath, err)
	}
	val, _, err := stores.LoadOrNew(abs, func() (caddy.Destructor, error) {
		db, err := storage.OpenBadger(abs, a.logger.Named("badger"))
		if err != nil {
			return nil, err
		}
		return pooledStore{db, a.logger}, nil
	})
	if err != nil {
		return "", err
	}
	a.storeKey, a.store = abs, val.(pooledStore).Badger
	return abs, nil
}

// openRedis connects to (or joins the pooled client of) the Redis server.
// Its URL may hold a password, so messages never show it.
func (a *App) openRedis(ctx caddy.Context) (string, error) {
	if a.Redis == "" {
		return "", errors.New("redis_prefix is set but redis is not")
	}
	if a.StoragePath != "" {
		return "", errors.New("storage_path and redis are mutually exclusive: state lives either in a local Badger database or in Redis")
	}
	repl := caddy.NewReplacer()
	url := repl.ReplaceKnown(a.Redis, "")
	if url == "" {
		// Most likely an unset environment variable; falling back to a
		// local database would split the state between instances.
		return "", fmt.Errorf("redis %q expands to an empty URL", a.Redis)
	}
	prefix := repl.ReplaceKnown(a.RedisPrefix, "")
	if prefix == "" {
		prefix = storage.DefaultRedisPrefix
	}
	key := "redis:" + url + "|" + prefix
	val, _, err := stores.LoadOrNew(key, func() (caddy.Destructor, error) {
		r, err := storage.OpenRedis(ctx, url, prefix, a.logger)
		if err != nil {
			return nil, err
		}
		a.logger.Info("state store is redis", zap.Stringer("redis", r))
		return pooledRedis{r, a.logger}, nil
	})
	if err != nil {
		return "", err
	}
	r := val.(pooledRedis).Redis
	a.storeKey, a.store = key, r
	return r.String(), nil
}

// siteStore returns the key space of the authorization server whose
// canonical issuer is issuer, with its revoked access tokens in memory,
// and registers it for the admin API. Every record of the server lives
// there and nowhere else, so that no other site can read or redeem it:
// only the signing keys are shared. Handlers with the same issuer are one
// authorization server and share one key space.
func (a *App) siteStore(ctx context.Context, issuer string, accessTokenLifetime time.Duration) (*authserver.Admin, error) {
	a.sites.Lock()
	defer a.sites.Unlock()
	for _, site := range a.sites.list {
		if site.Issuer == issuer {
			return site, nil
		}
	}
	store := storage.Prefixed(a.store, siteKeyPrefix(issuer))
	// Access tokens revoked before sites had key spaces of their own must
	// stay revoked until they expire.
	if err := state.CarryOverDenials(ctx, a.store, store, accessTokenLifetime); err != nil {
		return nil, fmt.Errorf("carrying over revoked access tokens: %w", err)
	}
	var bound time.Duration // Badger: this process alone writes revocations
	if a.Redis != "" {
		bound = revocationBound
	}
	stores, err := state.Open(ctx, store, bound, accessTokenLifetime, a.logger.Named("revocations"))
	if err != nil {
		return nil, fmt.Errorf("reading revoked access tokens: %w", err)
	}
	site := &authserver.Admin{Issuer: issuer, State: stores}
	a.sites.list = append(a.sites.list, site)
	return site, nil
}

// revocationBound is, with Redis, how long after a revocation at one
// instance every other may still accept the token: beyond it, an instance
// that has not heard from Redis refuses every token with 503.
const revocationBound = time.Second

// siteKeyPrefix is the key prefix of an issuer's records: a short, stable
// id of the issuer. All prefixes have the same length, so none begins
// another.
func siteKeyPrefix(issuer string) string {
	sum := sha256.Sum256([]byte(issuer))
	return "site/" + hex.EncodeToString(sum[:8]) + "/"
}

// siteAdmins returns the authorization servers of this configuration, or
// only the one whose issuer is issuer when it is not empty.
func (a *App) siteAdmins(issuer string) []*authserver.Admin {
	a.sites.Lock()
	defer a.sites.Unlock()
	if issuer == "" {
		return slices.Clone(a.sites.list)
	}
	for _, site := range a.sites.list {
		if site.Issuer == issuer {
			return []*authserver.Admin{site}
		}
	}
	return nil
}

// keyRefreshInterval bounds how long an instance sharing the store keeps
// signing with, and accepting, keys another instance revoked.
const keyRefreshInterval = 10 * time.Second

// maintainKeys keeps the key ring rotated and in step with the store until
// the config unloads, and audits each change of the signing key.
func (a *App) maintainKeys(ctx caddy.Context, every time.Duration) {
	defer close(a.keysMaintained)
	maintain, refresh := time.NewTicker(every), time.NewTicker(keyRefreshInterval)
	defer maintain.Stop()
	defer refresh.Stop()
	audit := a.logger.Named("audit")
	last := a.ring.SigningKeyID()
	for {
		var err error
		select {
		case <-ctx.Done():
			return
		case <-maintain.C:
			err = a.ring.Maintain(ctx)
		case <-refresh.C:
			err = a.ring.Refresh(ctx)
		}
		if err != nil && ctx.Err() == nil {
			a.logger.Error("maintaining signing keys", zap.Error(err))
		}
		if kid := a.ring.SigningKeyID(); kid != last {
			audit.Info("signing key rotated", zap.String("kid", kid), zap.String("previous_kid", last))
			last = kid
		}
	}
}

// rotateKeys makes the published successor key sign from now on or, with
// revoke, replaces every signing key (see tokens.KeyRing.Revoke), and
// audits the change.
func (a *App) rotateKeys(ctx context.Context, revoke bool, by string) (map[string]any, error) {
	audit := a.logger.Named("audit")
	if !revoke {
		if err := a.ring.Rotate(ctx); err != nil {
			return nil, err
		}
		audit.Info("signing key rotated", zap.String("kid", a.ring.SigningKeyID()), zap.String("by", by))
		return map[string]any{"kid": a.ring.SigningKeyID()}, nil
	}
	revoked, err := a.ring.Revoke(ctx)
	if err != nil {
		return nil, err
	}
	audit.Warn("signing keys revoked", zap.String("kid", a.ring.SigningKeyID()), zap.Strings("revoked_kids", revoked), zap.String("by", by))
	return map[string]any{"kid": a.ring.SigningKeyID(), "revoked": revoked}, nil
}

// maintenanceInterval checks often enough to publish each successor key
// well ahead of its use, and to notice keys other instances created.
func maintenanceInterval(rotation time.Duration) time.Duration {
	return min(rotation/24, time.Hour)
}

// Start implements caddy.App. Everything the sites need is ready after
// Provision, because the HTTP app may start first; starting makes this the
// App the admin API acts on, which it must not be before its config runs.
func (a *App) Start() error {
	a.setRunning(true)
	return nil
}

// Stop implements caddy.App. The admin API goes back to the App of the
// config still running, if any.
func (a *App) Stop() error {
	a.setRunning(false)
	return nil
}

// Cleanup releases the store; it is safe after a failed Provision.
func (a *App) Cleanup() error {
	a.setRunning(false)
	if a.storeKey == "" {
		return nil
	}
	// The config's context is done: wait until the key maintenance and
	// the sites let go of the store, which may close now.
	if a.keysMaintained != nil {
		<-a.keysMaintained
	}
	for _, site := range a.siteAdmins("") {
		site.State.Revocations.Wait()
	}
	_, err := stores.Delete(a.storeKey)
	a.storeKey = ""
	return err
}

// errNoApp is returned when a handler cannot reach the app.
var errNoApp = errors.New("mcp_auth app is not available")

// appFrom returns the configuration's App, provisioning it with defaults if
// the global option was not used.
func appFrom(ctx caddy.Context) (*App, error) {
	mod, err := ctx.App("mcp_auth")
	if err != nil {
		return nil, err
	}
	app, ok := mod.(*App)
	if !ok {
		return nil, errNoApp
	}
	return app, nil
}

// Interface guards
var (
	_ caddy.App          = (*App)(nil)
	_ caddy.Provisioner  = (*App)(nil)
	_ caddy.CleanerUpper = (*App)(nil)
)
