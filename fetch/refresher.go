package fetch

import (
	"context"
	"sync"
	"time"
)

// Refresher holds a value fetched off the request path: at most one fetch
// runs at a time, detached from the request that started it (so the
// others waiting for it do not fail because that one client went away)
// and bounded by Timeout. A failed fetch keeps the value known before and
// is remembered, with when it happened, so callers can decide when to try
// again. Callers decide when to start a fetch and how long to wait for it;
// Refresher only makes sure fetches do not pile up.
type Refresher[T any] struct {
	// Fetch gets a fresh value.
	Fetch func(context.Context) (T, error)
	// Timeout bounds one fetch.
	Timeout time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time

	mu       sync.Mutex
	state    State[T]
	inflight chan struct{} // closed when the running fetch ends; nil if none runs
}

// State is what a Refresher knows.
type State[T any] struct {
	// Value is the last value fetched, valid if Have.
	Value T
	Have  bool
	// Fetched is when Value arrived.
	Fetched time.Time
	// Started is when the last fetch started.
	Started time.Time
	// Err is why the last fetch failed, nil if it did not; Failed is when.
	Err    error
	Failed time.Time
}

func (r *Refresher[T]) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// State returns what is known now.
func (r *Refresher[T]) State() State[T] {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.state
}

// Running returns the running fetch's channel, closed when it ends, or
// nil if no fetch runs.
func (r *Refresher[T]) Running() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight
}

// Start starts a fetch unless one runs or the last one started less than
// minInterval ago, and returns the running fetch's channel, or nil if none
// runs.
func (r *Refresher[T]) Start(minInterval time.Duration) <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight != nil {
		return r.inflight
	}
	now := r.now()
	if !r.state.Started.IsZero() && now.Sub(r.state.Started) < minInterval {
		return nil
	}
	done := make(chan struct{})
	r.inflight, r.state.Started = done, now
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), r.Timeout)
		defer cancel()
		v, err := r.Fetch(ctx)
		r.mu.Lock()
		if err == nil {
			r.state.Value, r.state.Have, r.state.Fetched = v, true, r.now()
		} else {
			r.state.Failed = r.now()
		}
		r.state.Err, r.inflight = err, nil
		r.mu.Unlock()
		close(done)
	}()
	return done
}

// Wait waits for done to be closed, at most limit (no limit if limit is 0)
// and never past ctx: whoever waits then goes on with what is known. A nil
// done returns at once.
func Wait(ctx context.Context, done <-chan struct{}, limit time.Duration) {
	if done == nil {
		return
	}
	var timeout <-chan time.Time
	if limit > 0 {
		timer := time.NewTimer(limit)
		defer timer.Stop()
		timeout = timer.C
	}
	select {
	case <-done:
	case <-timeout:
	case <-ctx.Done():
	}
}
