package state

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Users stores the latest profile of each user and the GitHub logins
// pinned to their accounts.
type Users struct {
	store storage.Store
}

// User is the identity a grant carries, namespaced by upstream: what the
// tokens say about the user, and what the allow and grant_scope rules look
// at, as of the login, so that every refresh can apply the rules again.
type User struct {
	// Subject is "<provider>:<the provider's stable id>".
	Subject  string `json:"sub"`
	Username string `json:"username,omitempty"`
	// Email is set only when the provider vouches for it.
	Email   string `json:"email,omitempty"`
	Name    string `json:"name,omitempty"`
	Picture string `json:"picture,omitempty"`
	// AuthTime is when the user logged in (Unix seconds).
	AuthTime int64 `json:"auth_time,omitempty"`
	// HostedDomain is the Google Workspace domain of the account.
	HostedDomain string `json:"hd,omitempty"`
	// Orgs are the user's GitHub organizations.
	Orgs []string `json:"orgs,omitempty"`
	// LoginPinned says the GitHub login Username is bound to this
	// Subject (see Users.PinLogin), so rules naming it may match.
	LoginPinned bool `json:"login_pinned,omitempty"`
	// Upstream names the provider instance (kind and issuer) that
	// vouched for the user.
	Upstream string `json:"upstream,omitempty"`
}

// SaveProfile keeps the user's latest profile, for /userinfo, for ttl.
func (u *Users) SaveProfile(ctx context.Context, user *User, ttl time.Duration) error {
	return putJSON(ctx, u.store, keyUser+Hash(user.Subject), user, ttl)
}

// Profile returns the latest profile of the user sub.
func (u *Users) Profile(ctx context.Context, sub string) (*User, error) {
	var user User
	if err := getJSON(ctx, u.store, keyUser+Hash(sub), &user); err != nil {
		return nil, err
	}
	return &user, nil
}

// PinLogin binds a GitHub login to the account (subject) that first logs
// in with it, and reports whether subject is that account. GitHub frees a
// renamed login for anyone to register; without the pin, whoever takes it
// would pass the rules written for its former owner.
func (u *Users) PinLogin(ctx context.Context, login, subject string) (bool, error) {
	key := keyLoginPin + strings.ToLower(login)
	switch err := u.store.Create(ctx, key, []byte(subject), storage.NoExpiry); {
	case err == nil:
		return true, nil
	case !errors.Is(err, storage.ErrConflict):
		return false, err
	}
	bound, err := u.store.Get(ctx, key)
	if err != nil {
		return false, err
	}
	return string(bound) == subject, nil
}
