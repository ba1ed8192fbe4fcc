package gate

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sync/singleflight"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// ErrUpstreamTokenGone is why a request is refused whose user's token at
// the identity provider is gone: revoked, or expired and not refreshable.
// The client is answered 401 invalid_token, and its refresh fails too
// (the grant is revoked with the token), so the user logs in again.
var ErrUpstreamTokenGone = errors.New("the user's token at the identity provider is gone; the user must log in again")

// Refreshing an upstream token: it is refreshed when it expires within
// upstreamRefreshMargin, or within a tenth of its lifetime if that is
// shorter; the store's refresh lock is held for at most upstreamRefreshLock,
// and an instance that finds it taken waits at most upstreamRefreshWait
// for the other's result.
const (
	upstreamRefreshMargin = time.Minute
	upstreamRefreshLock   = 30 * time.Second
	upstreamRefreshWait   = 5 * time.Second
	upstreamRefreshPoll   = 50 * time.Millisecond
	// upstreamCacheLifetime bounds how long a token read from the store
	// is reused without reading it again.
	upstreamCacheLifetime = time.Minute
	// upstreamCacheSize bounds the cache of tokens.
	upstreamCacheSize = 10000
)

// UpstreamTokens finds, for an allowed request, the user's token at the
// identity provider that the authorization server kept at login, for the
// backend: from a bounded cache, else from the store, refreshing it at the
// provider shortly before it expires. One refresh runs per token at a
// time in this process (the others wait for it) and across the instances
// sharing the store (a lock in the store).
//
// A cached token is reached only through an access token the gate
// accepted: revoking the grant denies its access tokens, at every
// instance, before the cache entry expires.
type UpstreamTokens struct {
	store    *state.UpstreamTokens
	provider upstream.TokenKeeper // nil: tokens are not refreshed
	logger   *zap.Logger

	flight singleflight.Group
	mu     sync.Mutex
	cache  map[string]cachedUpstreamToken
}

type cachedUpstreamToken struct {
	token string
	until time.Time
}

// NewUpstreamTokens returns the tokens kept in store, refreshed by
// provider (nil if the provider cannot refresh them).
func NewUpstreamTokens(store *state.UpstreamTokens, provider upstream.TokenKeeper, logger *zap.Logger) *UpstreamTokens {
	return &UpstreamTokens{store: store, provider: provider, logger: logger, cache: map[string]cachedUpstreamToken{}}
}

// For returns the access token at the identity provider of the user whose
// access token carries claims: ErrUpstreamTokenGone if there is none any
// more, another error if it cannot be read or refreshed now, and "" for
// an access token that names none (issued to a machine client, for an
// enterprise assertion, or before the site kept upstream tokens: those
// expire, and their grants refresh nothing).
func (u *UpstreamTokens) For(ctx context.Context, claims *tokens.AccessClaims) (string, error) {
	id := claims.UpstreamTokenID
	if id == "" {
		return "", nil
	}
	now := time.Now()
	u.mu.Lock()
	c, ok := u.cache[id]
	u.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.token, nil
	}
	// Detached from the request: the waiters share the result, and a
	// client going away must not cancel a refresh midway.
	done := u.flight.DoChan(id, func() (any, error) {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), upstreamRefreshLock)
		defer cancel()
		return u.load(ctx, id)
	})
	select {
	case res := <-done:
		if res.Err != nil {
			return "", res.Err
		}
		return res.Val.(string), nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}

// Forget drops the token id from the cache.
func (u *UpstreamTokens) Forget(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.cache, id)
}

// load reads the token id, refreshes it if it is due, and caches it.
func (u *UpstreamTokens) load(ctx context.Context, id string) (string, error) {
	tok, err := u.get(ctx, id)
	if err != nil {
		return "", err
	}
	if refreshDue(tok, time.Now()) {
		if tok, err = u.refresh(ctx, tok); err != nil {
			return "", err
		}
	}
	until := time.Now().Add(upstreamCacheLifetime)
	if at := refreshAt(tok); tok.Expiry != 0 && at.Before(until) {
		until = at
	}
	u.mu.Lock()
	if len(u.cache) >= upstreamCacheSize {
		clear(u.cache)
	}
	u.cache[id] = cachedUpstreamToken{token: tok.AccessToken, until: until}
	u.mu.Unlock()
	return tok.AccessToken, nil
}

func (u *UpstreamTokens) get(ctx context.Context, id string) (*state.UpstreamToken, error) {
	tok, err := u.store.Get(ctx, id)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return nil, ErrUpstreamTokenGone
	case errors.Is(err, state.ErrUnsealable):
		// Sealed with a key no longer configured: as good as gone, and
		// removed, so that the grant refreshes nothing either.
		u.drop(ctx, id, "it does not open with the configured keys")
		return nil, ErrUpstreamTokenGone
	case err != nil:
		return nil, fmt.Errorf("reading the upstream token: %w", err)
	}
	if tok.SealedWithOldKey() {
		// Sealed again with the current key, so the old one can go.
		again := *tok
		if err := u.store.Replace(ctx, tok, &again); err == nil {
			return &again, nil
		}
	}
	return tok, nil
}

// refreshAt is when tok is due for a refresh.
func refreshAt(tok *state.UpstreamToken) time.Time {
	expiry := time.Unix(tok.Expiry, 0)
	margin := upstreamRefreshMargin
	if tok.Obtained != 0 {
		margin = min(margin, expiry.Sub(time.Unix(tok.Obtained, 0))/10)
	}
	return expiry.Add(-margin)
}

func refreshDue(tok *state.UpstreamToken, now time.Time) bool {
	return tok.Expiry != 0 && !now.Before(refreshAt(tok))
}

func expired(tok *state.UpstreamToken, now time.Time) bool {
	return tok.Expiry != 0 && now.Unix() >= tok.Expiry
}

// refresh refreshes tok at the provider, under the store's lock, and
// returns the token to use: the new one, or the current one while it is
// still valid when the refresh cannot happen now.
func (u *UpstreamTokens) refresh(ctx context.Context, tok *state.UpstreamToken) (*state.UpstreamToken, error) {
	if tok.RefreshToken == "" || u.provider == nil {
		if expired(tok, time.Now()) {
			u.drop(ctx, tok.ID, "it expired and the provider issued no refresh token")
			return nil, ErrUpstreamTokenGone
		}
		return tok, nil
	}
	locked, err := u.store.Lock(ctx, tok.ID, upstreamRefreshLock)
	if err != nil {
		return u.stillValid(tok, fmt.Errorf("taking the refresh lock: %w", err))
	}
	if !locked {
		return u.awaitRefresh(ctx, tok)
	}
	defer u.store.Unlock(context.WithoutCancel(ctx), tok.ID)

	fresh, err := u.provider.Refresh(ctx, tok.RefreshToken)
	if errors.Is(err, upstream.ErrInvalidGrant) {
		u.drop(ctx, tok.ID, "the provider refused its refresh token")
		return nil, ErrUpstreamTokenGone
	}
	if err != nil {
		return u.stillValid(tok, fmt.Errorf("refreshing the upstream token: %w", err))
	}
	next := *tok
	next.AccessToken, next.RefreshToken, next.Obtained = fresh.AccessToken, fresh.RefreshToken, time.Now().Unix()
	next.Expiry = 0
	if !fresh.Expiry.IsZero() {
		next.Expiry = fresh.Expiry.Unix()
	}
	if len(fresh.Scopes) > 0 {
		next.Scopes = fresh.Scopes
	}
	switch err := u.store.Replace(ctx, tok, &next); {
	case errors.Is(err, storage.ErrNotFound):
		// Revoked while it was refreshed: the provider's new token is
		// dropped with it.
		return nil, ErrUpstreamTokenGone
	case errors.Is(err, storage.ErrConflict):
		// Another instance refreshed after its lock expired: use its.
		return u.get(ctx, tok.ID)
	case err != nil:
		return nil, fmt.Errorf("saving the refreshed upstream token: %w", err)
	}
	return &next, nil
}

// awaitRefresh waits for the refresh another instance holds the lock for.
func (u *UpstreamTokens) awaitRefresh(ctx context.Context, tok *state.UpstreamToken) (*state.UpstreamToken, error) {
	deadline := time.Now().Add(upstreamRefreshWait)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return u.stillValid(tok, ctx.Err())
		case <-time.After(upstreamRefreshPoll):
		}
		now, err := u.get(ctx, tok.ID)
		if err != nil {
			return nil, err
		}
		if now.AccessToken != tok.AccessToken {
			return now, nil
		}
	}
	return u.stillValid(tok, errors.New("another instance is still refreshing the upstream token"))
}

// stillValid returns tok if it has not expired yet, else err.
func (u *UpstreamTokens) stillValid(tok *state.UpstreamToken, err error) (*state.UpstreamToken, error) {
	if expired(tok, time.Now()) {
		return nil, err
	}
	u.logger.Warn("upstream token not refreshed; using it until it expires", zap.Error(err))
	return tok, nil
}

// drop removes a token that can no longer be used (the store hands it
// over for revocation at the provider).
func (u *UpstreamTokens) drop(ctx context.Context, id, why string) {
	u.logger.Info("upstream token dropped; its user must log in again", zap.String("reason", why))
	if err := u.store.Remove(ctx, id); err != nil {
		u.logger.Error("removing an upstream token", zap.Error(err))
	}
}
