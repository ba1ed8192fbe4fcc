package state

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// maxDeniedTokens caps the revoked, unexpired access tokens one site keeps
// in memory (about 100 bytes each). Past it the gate refuses every token
// rather than forget a revocation.
const maxDeniedTokens = 500_000

// deniedChannel is the notification channel, in the site's key space, on
// which each revocation of an access token is announced as "jti until".
const deniedChannel = "denied-jti"

// deniedReconcileInterval is how often the revoked tokens are read again
// from a shared store while notifications flow; they cover what a
// notifier cannot (a message lost in a reconnection, a store without
// notifier). A set that is authoritative is read again only to drop
// expired tokens, and to recover once it is no longer full.
const (
	deniedReconcileInterval        = 5 * time.Second
	authoritativeReconcileInterval = time.Minute
)

var (
	errDeniedStale = errors.New("the revoked tokens are not known to be current: the store cannot be reached")
	errDeniedFull  = errors.New("more revoked tokens are live than can be kept in memory")
)

// Revocations stores what was revoked: access tokens, the marks of
// revocations of all of a user's or a client's tokens, and the indexes of
// each access token by user and by client that such revocations list.
//
// The revoked access tokens (by jti) that have not expired yet are also
// held in memory, so that the gate checks a token without asking the
// store. It is read from the store at creation and then kept current
// by this process's own revocations, by the store's notifications
// (storage.Notifier) of other processes' revocations, and by reading the
// store again every few seconds.
//
// With a store only this process uses, the set is authoritative. With a
// store shared by several processes, Bound is how stale it may be: when
// neither a reconciliation nor a live subscription vouches for the last
// Bound, Revoked fails, and the gate answers 503 rather than let a token
// revoked elsewhere through.
type Revocations struct {
	store    storage.Store
	notifier storage.Notifier // nil when the store has none
	bound    time.Duration    // 0: the set is authoritative
	// legacyLifetime is how long a revocation recorded without its
	// expiry is kept: the longest an access token lives.
	legacyLifetime time.Duration
	logger         *zap.Logger
	resubscribed   chan struct{}
	stopped        chan struct{}
	limit          int // maxDeniedTokens but in tests

	mu     sync.RWMutex
	until  map[string]int64 // jti → Unix second after which it needs no denial
	full   bool
	synced time.Time // when the last successful reconciliation began
	// listeningSince is when the subscription last (re)started, zero while
	// it is down; heard is its last sign of life.
	listeningSince, heard time.Time
}

// newRevocations reads the revoked access tokens of an authorization
// server from store (its key space) and keeps them current until ctx is
// done (see Open).
func newRevocations(ctx context.Context, store storage.Store, bound, tokenLifetime time.Duration, logger *zap.Logger) (*Revocations, error) {
	d := &Revocations{
		store: store, bound: bound, legacyLifetime: tokenLifetime + time.Minute, logger: logger,
		resubscribed: make(chan struct{}, 1), until: map[string]int64{}, limit: maxDeniedTokens,
		stopped: make(chan struct{}),
	}
	// Listen first, then read: a revocation is either read or heard.
	if n, ok := store.(storage.Notifier); ok {
		d.notifier = n
		n.Subscribe(ctx, deniedChannel, d.onMessage, d.onListening)
	}
	if err := d.reconcile(ctx); err != nil {
		return nil, err
	}
	go d.maintain(ctx)
	return d, nil
}

// Revoked reports whether the access token jti has been revoked. It
// fails when the set cannot be trusted to hold every revocation.
func (d *Revocations) Revoked(jti string) (bool, error) {
	now := time.Now()
	d.mu.RLock()
	defer d.mu.RUnlock()
	switch {
	case d.full:
		return false, errDeniedFull
	case d.bound > 0 && !d.currentLocked(now):
		return false, errDeniedStale
	}
	until, ok := d.until[jti]
	return ok && now.Unix() < until, nil
}

// currentLocked reports whether the set holds every revocation made
// before now-bound: it was read from the store since, or its subscription
// has been listening since before the last reading and was alive since.
func (d *Revocations) currentLocked(now time.Time) bool {
	if now.Sub(d.synced) < d.bound {
		return true
	}
	return !d.listeningSince.IsZero() && !d.listeningSince.After(d.synced) && now.Sub(d.heard) < d.bound
}

// deny records that the access token jti is revoked until the Unix second
// until, in the store, then in memory and, through the notifier, at every
// other process.
func (d *Revocations) deny(ctx context.Context, jti string, until int64) error {
	ttl, live := ttlUntil(until)
	if !live {
		return nil
	}
	value := strconv.FormatInt(until, 10)
	if err := d.store.Put(ctx, keyDenied+jti, []byte(value), ttl); err != nil {
		return err
	}
	d.add(jti, until)
	if d.notifier == nil {
		return nil
	}
	return d.notifier.Publish(ctx, deniedChannel, []byte(jti+" "+value))
}

// add puts jti in the set unless it has expired; when the set is full it
// drops expired entries and, if none are, marks the set as full instead
// of forgetting one.
func (d *Revocations) add(jti string, until int64) {
	if until <= time.Now().Unix() {
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if known, ok := d.until[jti]; ok {
		d.until[jti] = max(known, until)
		return
	}
	if len(d.until) >= d.limit {
		d.dropExpiredLocked(time.Now().Unix())
	}
	if len(d.until) >= d.limit {
		d.full = true
		return
	}
	d.until[jti] = until
}

func (d *Revocations) dropExpiredLocked(now int64) {
	for jti, until := range d.until {
		if until <= now {
			delete(d.until, jti)
		}
	}
}

// onMessage takes in a revocation another process announced; a message
// it cannot read makes it read the store instead.
func (d *Revocations) onMessage(message []byte) {
	jti, value, _ := strings.Cut(string(message), " ")
	until, err := strconv.ParseInt(value, 10, 64)
	if jti == "" || err != nil {
		d.logger.Warn("unreadable notification of a revoked token; reading them all again")
		d.requestReconcile()
		return
	}
	d.add(jti, until)
}

func (d *Revocations) onListening(listening bool) {
	now := time.Now()
	d.mu.Lock()
	restarted := listening && d.listeningSince.IsZero()
	switch {
	case !listening:
		d.listeningSince = time.Time{}
	case restarted:
		d.listeningSince = now
	}
	if listening {
		d.heard = now
	}
	d.mu.Unlock()
	if restarted {
		// Revocations announced while it was down were missed.
		d.requestReconcile()
	}
}

func (d *Revocations) requestReconcile() {
	select {
	case d.resubscribed <- struct{}{}:
	default:
	}
}

// maintain reads the store again every deniedReconcileInterval, at once
// after the subscription restarts, and twice per bound while it is down.
func (d *Revocations) maintain(ctx context.Context) {
	defer close(d.stopped)
	for {
		wait := authoritativeReconcileInterval
		d.mu.RLock()
		switch {
		case d.bound > 0 && d.listeningSince.IsZero():
			wait = d.bound / 2
		case d.bound > 0:
			wait = deniedReconcileInterval
		}
		d.mu.RUnlock()
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		case <-d.resubscribed:
			timer.Stop()
		}
		if err := d.reconcile(ctx); err != nil && ctx.Err() == nil {
			d.logger.Warn("reading revoked access tokens", zap.Error(err))
		}
	}
}

// Wait returns once the set, its context done, no longer uses the store,
// which may then be closed.
func (d *Revocations) Wait() { <-d.stopped }

// reconcile adds every revocation in the store to the set and drops the
// expired ones. Revocations are never withdrawn, so what the set holds
// and the store does not (yet) list is kept.
func (d *Revocations) reconcile(ctx context.Context) error {
	start := time.Now()
	d.mu.RLock()
	limit := d.limit
	d.mu.RUnlock()
	listed := map[string]int64{}
	err := d.store.List(ctx, keyDenied, func(key string, value []byte) error {
		if len(listed) >= limit {
			return errDeniedFull
		}
		until, err := strconv.ParseInt(string(value), 10, 64)
		if err != nil { // recorded without its expiry by an older release
			until = start.Add(d.legacyLifetime).Unix()
		}
		listed[strings.TrimPrefix(key, keyDenied)] = until
		return nil
	})
	d.mu.Lock()
	defer d.mu.Unlock()
	if errors.Is(err, errDeniedFull) {
		d.full = true
	}
	if err != nil {
		return err
	}
	d.dropExpiredLocked(start.Unix())
	for jti, until := range listed {
		d.until[jti] = max(d.until[jti], until)
	}
	d.full = len(d.until) > d.limit
	d.synced = start
	return nil
}
