package handlers

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

// Storage key prefixes of the login limits; the rest of each key is the
// hash of the username or source.
const (
	keyLoginFailures = "login-failures/"
	keyLoginWait     = "login-wait/"
	// keyLoginAttempts counts the password posts of one login.
	keyLoginAttempts = "login-attempts/"
)

// loginWait is a wait imposed after failures: from Since until Until (Unix
// nanoseconds).
type loginWait struct {
	Since int64 `json:"since"`
	Until int64 `json:"until"`
}

// loginSubjects are the store key suffixes of a login post's limits.
type loginSubjects struct{ user, source string }

func newLoginSubjects(username, source string) loginSubjects {
	return loginSubjects{user: "user/" + hashKey(username), source: "source/" + hashKey(source)}
}

// loginWaitFor returns how long a login post for subjects must wait.
func (a *AuthServer) loginWaitFor(ctx context.Context, subj loginSubjects, now time.Time) (time.Duration, error) {
	var sourceWait, userWait loginWait
	if err := a.getLoginWait(ctx, subj.source, &sourceWait); err != nil {
		return 0, err
	}
	if err := a.getLoginWait(ctx, subj.user, &userWait); err != nil {
		return 0, err
	}
	until := max(sourceWait.Until, 0)
	if userWait.Until > 0 {
		_, err := a.Store.Get(ctx, keyLoginFailures+subj.source)
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

func (a *AuthServer) getLoginWait(ctx context.Context, subject string, w *loginWait) error {
	err := a.getJSON(ctx, keyLoginWait+subject, w)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

// recordLoginFailure counts a failed password for subjects and starts the
// waits the counts call for.
func (a *AuthServer) recordLoginFailure(ctx context.Context, subj loginSubjects, now time.Time) error {
	for _, limit := range []struct {
		subject string
		free    int64
	}{
		{subj.source, freeSourceFailures},
		{subj.user, freeUserFailures},
	} {
		n, err := a.Store.Increment(ctx, keyLoginFailures+limit.subject, loginFailureWindow)
		if err != nil {
			return err
		}
		if n <= limit.free {
			continue
		}
		wait := backoff(n - limit.free)
		if err := a.putJSON(ctx, keyLoginWait+limit.subject, loginWait{Since: now.UnixNano(), Until: now.Add(wait).UnixNano()}, wait); err != nil {
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

// countLoginAttempt counts one password post of the login with this key
// and returns the count. Counted atomically in the store, before the
// password is checked, so parallel posts cannot exceed maxLoginAttempts.
func (a *AuthServer) countLoginAttempt(ctx context.Context, loginKey string) (int64, error) {
	return a.Store.Increment(ctx, keyLoginAttempts+loginKey, requestLifetime)
}

// loginWaitMessage is what the wait page says; the same whatever the
// reason, so it reveals nothing about the account.
const loginWaitMessage = "There were too many failed logins for this account or from your network."
