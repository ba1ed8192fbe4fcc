// Package upstream logs users in at an identity provider on the
// authorization server's behalf: any OpenID Connect provider, Google,
// GitHub, or a built-in list of users. The MCP client never sees the
// provider or its tokens; it only gets the authorization server's own.
package upstream

import (
	"context"
	"errors"
)

// Identity is what the authorization server learns about a user who logged in.
type Identity struct {
	// Subject is the user's stable, unique id at the provider.
	Subject string
	// Username is the user's login or preferred username, if any.
	Username string
	// Email is the user's email address; set only when the provider
	// reports it verified.
	Email   string
	Name    string
	Picture string
	// Orgs are the GitHub organizations the user belongs to (github only).
	Orgs []string
	// HostedDomain is the Google Workspace domain of the account, the ID
	// token's hd claim (google only).
	HostedDomain string
}

// ErrDenied is returned when the provider reports that the user refused or
// could not log in; the flow ends with access_denied.
var ErrDenied = errors.New("upstream login denied")

// ErrInvalidGrant is wrapped by Exchange when the provider's token endpoint
// rejects the authorization code (OAuth invalid_grant, GitHub
// bad_verification_code): it expired, was already used, or does not match
// the redirect URI or PKCE verifier. The user can simply log in again.
var ErrInvalidGrant = errors.New("upstream rejected the authorization code")

// Redirector is a provider the browser is redirected to (OIDC, Google, GitHub).
type Redirector interface {
	// Name identifies the provider in logs and metrics, e.g. "github".
	Name() string
	// AuthCodeURL returns the provider URL that starts a login. state,
	// the PKCE verifier and nonce are fresh per login; redirectURL is the
	// authorization server's callback.
	AuthCodeURL(state, verifier, nonce, redirectURL string) string
	// Exchange redeems the code the provider sent to the callback and
	// returns the user's identity. It checks the ID token's nonce where
	// the provider issues one. The provider's tokens are discarded.
	Exchange(ctx context.Context, code, verifier, nonce, redirectURL string) (*Identity, error)
}

// PasswordChecker is a provider that checks a username and password itself
// (the built-in user list).
type PasswordChecker interface {
	Name() string
	// CheckPassword returns the identity of the user if the password is
	// right, ErrDenied if not, ErrBusy if it cannot check now. It takes
	// the same time whether or not the user exists.
	CheckPassword(username, password string) (*Identity, error)
}
