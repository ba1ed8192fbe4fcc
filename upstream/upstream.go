// Package upstream logs users in at an identity provider on the
// authorization server's behalf: any OpenID Connect provider, Google,
// GitHub, or a built-in list of users. The MCP client never sees the
// provider or its tokens; it only gets the authorization server's own.
// The provider's token is returned with the identity, for a site that
// keeps it for its backends, which the providers also refresh and revoke.
package upstream

import (
	"context"
	"errors"
	"time"
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
	// Token is the user's token at the provider, from the login; nil for
	// the built-in users.
	Token *Token
}

// Token is a user's token at the provider, to call its API as the user.
type Token struct {
	AccessToken  string
	RefreshToken string
	// Expiry is when AccessToken expires; zero when the provider did
	// not say (GitHub OAuth apps' tokens do not expire).
	Expiry time.Time
	// Scopes are those the provider granted, when it said.
	Scopes []string
}

// TokenKeeper is a provider that refreshes and revokes the tokens it
// issued.
type TokenKeeper interface {
	// Refresh redeems a refresh token for a new token. A rejected one
	// (expired, revoked, already used) yields an error wrapping
	// ErrInvalidGrant. The new token keeps refreshToken when the provider
	// issued no new one.
	Refresh(ctx context.Context, refreshToken string) (*Token, error)
	// Revoke revokes the token at the provider (Google revokes the
	// user's whole authorization of the application with it). It
	// returns ErrNoRevocation if the provider offers no revocation.
	Revoke(ctx context.Context, tok *Token) error
}

// ErrNoRevocation is returned by Revoke for a provider without revocation.
var ErrNoRevocation = errors.New("the identity provider offers no token revocation")

// ErrDenied is returned when the provider reports that the user refused or
// could not log in; the flow ends with access_denied.
var ErrDenied = errors.New("upstream login denied")

// ErrInvalidGrant is wrapped by Exchange and Refresh when the provider's
// token endpoint rejects the authorization code or refresh token (OAuth
// invalid_grant, GitHub bad_verification_code or bad_refresh_token): it
// expired, was already used or revoked, or does not match the redirect
// URI or PKCE verifier. The user can simply log in again.
var ErrInvalidGrant = errors.New("upstream rejected the grant")

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
	// the provider issues one. Identity.Token is the provider's token.
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
