package state

import (
	"context"
	"errors"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Password guessing on the built-in login is limited across logins, in the
// shared store, along two lines:
//
//   - per source (SourceBucket): after freeSourceFailures failures in
//     loginFailureWindow, each further one makes the source wait twice as
//     long as the last, up to maxLoginWait, for any username;
//   - per username: after freeUserFailures failures from anywhere, each
//     further one makes the username wait, doubling the same way.
//
// A username's wait slows guessing spread over many sources without
// locking its owner out: a source that has no failures of its own waits
// for it at most cleanSourceMaxWait, so the right password from a clean
// network works within that bound however long someone else keeps
// guessing, and whoever wants to keep the user waiting must spend a fresh
// source on every guess, each then held by its own, longer waits.
const (
	loginFailureWindow = 24 * time.Hour
	freeSourceFailures = 10
	freeUserFailures   = 5
	maxLoginWait       = 15 * time.Minute
	cleanSourceMaxWait = 30 * time.Second
)

// loginWait is a wait imposed after failures: from Since until Until (Unix
// nanoseconds).
type loginWait struct {
	Since int64 `json:"since"`
	Until int64 `json:"until"`
}

// LoginSubjects are what a login post's limits count: its username and
// its source, as store key suffixes.
type LoginSubjects struct{ user, source string }

// NewLoginSubjects returns the subjects of a post of username from source
// (see authserver.SourceBucket).
func NewLoginSubjects(username, source string) LoginSubjects {
	return LoginSubjects{user: loginSubjectUser + Hash(username), source: loginSubjectSource + Hash(source)}
}

// LoginWait returns how long a login post for subj must wait.
func (l *Logins) LoginWait(ctx context.Context, subj LoginSubjects, now time.Time) (time.Duration, error) {
	var sourceWait, userWait loginWait
	if err := l.getLoginWait(ctx, subj.source, &sourceWait); err != nil {
		return 0, err
	}
	if err := l.getLoginWait(ctx, subj.user, &userWait); err != nil {
		return 0, err
	}
	until := max(sourceWait.Until, 0)
	if userWait.Until > 0 {
		_, err := l.store.Get(ctx, keyLoginFailures+subj.source)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			// A clean source: the username's wait is bounded for it.
			until = max(until, min(userWait.Until, userWait.Since+int64(cleanSourceMaxWait)))
		case err != nil:
			return 0, err
		default:
			until = max(until, userWait.Until)
		}
	}
	return time.Duration(until - now.UnixNano()), nil
}

func (l *Logins) getLoginWait(ctx context.Context, subject string, w *loginWait) error {
	err := getJSON(ctx, l.store, keyLoginWait+subject, w)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// RecordLoginFailure counts a failed password for subj and starts the
// waits the counts call for.
func (l *Logins) RecordLoginFailure(ctx context.Context, subj LoginSubjects, now time.Time) error {
	for _, limit := range []struct {
		subject string
		free    int64
	}{
		{subj.source, freeSourceFailures},
		{subj.user, freeUserFailures},
	} {
		n, err := l.store.Increment(ctx, keyLoginFailures+limit.subject, loginFailureWindow)
		if err != nil {
			return err
		}
		if n <= limit.free {
			continue
		}
		wait := backoff(n - limit.free)
		if err := putJSON(ctx, l.store, keyLoginWait+limit.subject, loginWait{Since: now.UnixNano(), Until: now.Add(wait).UnixNano()}, wait); err != nil {
			return err
		}
	}
	return nil
}

// backoff is the wait after the nth failure beyond the free ones: 1s, 2s,
// 4s… up to maxLoginWait.
func backoff(n int64) time.Duration {
	if n > 20 {
		return maxLoginWait
	}
	return min(time.Second<<(n-1), maxLoginWait)
}

// CountLoginAttempt counts one password post of the login with this state
// and returns the count. Counted atomically in the store, before the
// password is checked, so that parallel posts cannot exceed the login's
// attempts.
func (l *Logins) CountLoginAttempt(ctx context.Context, state string) (int64, error) {
	return l.store.Increment(ctx, keyLoginAttempts+Hash(state), requestLifetime)
}
