package storage

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"
)

// reachability watches the outcome of every command a Redis client sends
// and logs once when Redis stops answering and once when it answers again,
// rather than one line per failed request during an outage.
//
// Only a command that began after the last change of state may change it
// again: a command still retrying against the old connection when Redis is
// back, or one answered just before it went away, would otherwise make the
// log flap.
type reachability struct {
	store  string // names the store, without credentials
	logger *zap.Logger

	mu          sync.Mutex
	unreachable bool
	since       time.Time // of the last change of state
}

// Interface guard
var _ redis.Hook = (*reachability)(nil)

// DialHook implements redis.Hook; dials are judged by the command that
// needed them.
func (h *reachability) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook implements redis.Hook.
func (h *reachability) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		h.observe(ctx, start, err)
		return err
	}
}

// ProcessPipelineHook implements redis.Hook.
func (h *reachability) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmds)
		h.observe(ctx, start, err)
		return err
	}
}

// observe records the outcome of a command that began at start.
func (h *reachability) observe(ctx context.Context, start time.Time, err error) {
	answered := err == nil || errors.Is(err, redis.Nil)
	if _, ok := errors.AsType[redis.Error](err); ok {
		answered = true // an error reply, such as READONLY or LOADING
	}
	if !answered && (ctx.Err() != nil || errors.Is(err, redis.ErrClosed)) {
		return // the caller gave up, or the store is closing: no news of Redis
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if answered != h.unreachable || start.Before(h.since) {
		return
	}
	now := time.Now()
	if answered {
		h.logger.Info("Redis reachable again", zap.String("store", h.store),
			zap.Duration("unreachable_for", now.Sub(h.since).Round(time.Millisecond)))
	} else {
		// The error names the address and what failed (refused, timed
		// out, closed), never a key, a value or a password.
		h.logger.Error("Redis unreachable: requests that need the state store fail with 503 until it answers again",
			zap.String("store", h.store), zap.Error(err))
	}
	h.unreachable, h.since = !answered, now
}
