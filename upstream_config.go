package mcpauth

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/authserver"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/fetch"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// Upstream configures the identity provider users log in with.
type Upstream struct {
	// Provider is one of: oidc, google, github, users.
	Provider string `json:"provider"`

	// Issuer is the OpenID Connect issuer URL (oidc; for google it
	// defaults to https://accounts.google.com). https is required, except
	// for loopback hosts.
	Issuer string `json:"issuer,omitempty"`

	// ClientID and ClientSecret are the credentials of the OAuth app
	// registered at the provider, whose redirect URI is
	// `<issuer>/authorize/callback`. Placeholders such as {env.SECRET} are
	// expanded when the config loads, so the secret stays out of the
	// saved config.
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`

	// Scopes requested from an oidc provider (default: openid email
	// profile), or requested besides those the login needs from github
	// and google, for backends that use the user's token (see
	// UpstreamTokens): for example `repo read:org`, or
	// https://www.googleapis.com/auth/drive.readonly.
	Scopes []string `json:"scopes,omitempty"`

	// TrustPreferredUsername lets `allow users` and `grant_scope … to
	// users` name oidc users by their preferred_username. Set it only for a
	// provider where users cannot choose or change it, and where a name is
	// never given to another person (a directory the operator manages);
	// OpenID Connect itself promises neither. Otherwise name users by
	// subject, `oidc:<sub>`. oidc only.
	TrustPreferredUsername bool `json:"trust_preferred_username,omitempty"`

	// BaseURL and APIURL point github at GitHub Enterprise Server.
	// Default: https://github.com and https://api.github.com.
	BaseURL string `json:"base_url,omitempty"`
	APIURL  string `json:"api_url,omitempty"`

	// Users maps usernames to bcrypt password hashes, as printed by
	// `caddy hash-password` (users). Placeholders such as {env.HASH} are
	// expanded when the config loads.
	Users map[string]string `json:"users,omitempty"`
}

// upstreamHTTPClient talks to identity providers.
var upstreamHTTPClient = &http.Client{Timeout: 10 * time.Second}

// build returns the configured provider: a Redirector or a PasswordChecker.
// OIDC discovery happens on first use, so Caddy starts even while the
// provider is unreachable.
func (u *Upstream) build(wantOrgs, keepTokens bool) (upstream.Redirector, upstream.PasswordChecker, error) {
	repl := caddy.NewReplacer()
	clientID := repl.ReplaceAll(u.ClientID, "")
	clientSecret := repl.ReplaceAll(u.ClientSecret, "")
	needCredentials := func() error {
		if clientID == "" || clientSecret == "" {
			return fmt.Errorf("upstream %s: client_id and client_secret are required", u.Provider)
		}
		return nil
	}
	if u.TrustPreferredUsername && u.Provider != "oidc" {
		return nil, nil, fmt.Errorf("upstream %s: trust_preferred_username applies to oidc only", u.Provider)
	}
	switch u.Provider {
	case "users":
		if len(u.Users) == 0 {
			return nil, nil, fmt.Errorf("upstream users: list at least one user")
		}
		hashes := make(map[string]string, len(u.Users))
		for name, hash := range u.Users {
			hashes[name] = repl.ReplaceAll(hash, "")
		}
		users, err := upstream.NewUsers(hashes)
		if err != nil {
			return nil, nil, fmt.Errorf("upstream users: %v", err)
		}
		return nil, users, nil
	case "github":
		cfg := upstream.GitHubConfig{
			ClientID: clientID, ClientSecret: clientSecret,
			BaseURL: u.BaseURL, APIURL: u.APIURL, WantOrgs: wantOrgs, Scopes: u.Scopes,
		}
		if err := cfg.Validate(); err != nil {
			return nil, nil, fmt.Errorf("upstream github: %v", err)
		}
		return upstream.NewGitHub(cfg, upstreamHTTPClient), nil, nil
	case "google":
		if err := needCredentials(); err != nil {
			return nil, nil, err
		}
		cfg := upstream.GoogleConfig{ClientID: clientID, ClientSecret: clientSecret, Issuer: u.Issuer, Scopes: u.Scopes, Offline: keepTokens}
		return newDiscovered("google", discoveryRefresh, func(ctx context.Context) (upstream.Redirector, error) {
			return upstream.NewGoogle(ctx, cfg, upstreamHTTPClient)
		}), nil, nil
	case "oidc":
		if u.Issuer == "" {
			return nil, nil, fmt.Errorf("upstream oidc: issuer is required")
		}
		if err := needCredentials(); err != nil {
			return nil, nil, err
		}
		cfg := upstream.OIDCConfig{Issuer: u.Issuer, ClientID: clientID, ClientSecret: clientSecret, Scopes: u.Scopes}
		return newDiscovered("oidc", discoveryRefresh, func(ctx context.Context) (upstream.Redirector, error) {
			return upstream.NewOIDC(ctx, cfg, upstreamHTTPClient)
		}), nil, nil
	}
	return nil, nil, fmt.Errorf("unknown upstream provider %q (use oidc, google, github or users)", u.Provider)
}

// access describes, for the consent page, the access to users' accounts
// at the provider that backends get with upstream_tokens.
func (u *Upstream) access(wantOrgs bool) *authserver.UpstreamAccess {
	a := &authserver.UpstreamAccess{Descriptions: map[string]string{}}
	switch u.Provider {
	case "github":
		a.Account = "GitHub"
		a.Scopes = upstream.GitHubConfig{WantOrgs: wantOrgs, Scopes: u.Scopes}.RequestedScopes()
	case "google":
		a.Account = "Google"
		a.Scopes = upstream.GoogleConfig{Scopes: u.Scopes}.RequestedScopes()
	default:
		a.Account = u.Issuer
		if parsed, err := url.Parse(u.Issuer); err == nil && parsed.Host != "" {
			a.Account = parsed.Host
		}
		a.Scopes = upstream.OIDCConfig{Scopes: u.Scopes}.RequestedScopes()
	}
	for _, s := range a.Scopes {
		if d := upstream.DescribeScope(u.Provider, s); d != "" {
			a.Descriptions[s] = d
		}
	}
	return a
}

// identity names the provider and the instance of it (its issuer or base
// URL) that vouches for users' identities: a grant made with one is not
// honoured by another, even one of the same kind.
func (u *Upstream) identity() string {
	switch u.Provider {
	case "github":
		return "github " + cmp.Or(strings.TrimRight(u.BaseURL, "/"), upstream.GitHubBaseURL)
	case "google":
		return "google " + cmp.Or(u.Issuer, upstream.GoogleIssuer)
	case "oidc":
		return "oidc " + u.Issuer
	}
	return u.Provider
}

// Discovery is retried at most every discoveryRetry after a failure, and
// repeated every discoveryRefresh so that a provider's changed endpoints
// are picked up without a reload. One attempt takes at most
// discoveryTimeout.
const (
	discoveryRetry   = 10 * time.Second
	discoveryRefresh = time.Hour
	discoveryTimeout = 10 * time.Second
)

// discovered is a provider configured by discovery, done on first use.
// Discovery runs on its own, never with a request's context: one attempt
// at a time, which the requests that need it wait for (each only as long
// as its client does), so a client that goes away neither cancels it nor
// leaves a failure behind for others. Once discovered, the provider serves
// at once while a refresh runs in the background; a failed refresh keeps
// the provider it has.
type discovered struct {
	name      string
	provider  fetch.Refresher[upstream.Redirector]
	refreshIn time.Duration // discoveryRefresh; shorter in tests
}

func newDiscovered(name string, refreshIn time.Duration, discover func(context.Context) (upstream.Redirector, error)) *discovered {
	d := &discovered{name: name, refreshIn: refreshIn}
	d.provider.Fetch, d.provider.Timeout = discover, discoveryTimeout
	return d
}

func (d *discovered) Name() string { return d.name }

func (d *discovered) get(ctx context.Context) (upstream.Redirector, error) {
	known := d.provider.State()
	failedRecently := known.Err != nil && time.Since(known.Failed) < discoveryRetry
	if known.Have {
		if time.Since(known.Fetched) >= d.refreshIn && !failedRecently {
			d.provider.Start(0)
		}
		return known.Value, nil
	}
	if failedRecently {
		return nil, known.Err
	}
	select {
	case <-d.provider.Start(0):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	known = d.provider.State()
	if known.Have {
		return known.Value, nil
	}
	return nil, known.Err
}

// Prepare runs discovery; the authorization server calls it before
// sending a browser to the provider, to show an error page instead.
func (d *discovered) Prepare(ctx context.Context) error {
	_, err := d.get(ctx)
	return err
}

func (d *discovered) AuthCodeURL(state, verifier, nonce, redirectURL string) string {
	p, err := d.get(context.Background())
	if err != nil {
		return ""
	}
	return p.AuthCodeURL(state, verifier, nonce, redirectURL)
}

func (d *discovered) Exchange(ctx context.Context, code, verifier, nonce, redirectURL string) (*upstream.Identity, error) {
	p, err := d.get(ctx)
	if err != nil {
		return nil, err
	}
	return p.Exchange(ctx, code, verifier, nonce, redirectURL)
}

// Refresh implements upstream.TokenKeeper.
func (d *discovered) Refresh(ctx context.Context, refreshToken string) (*upstream.Token, error) {
	p, err := d.get(ctx)
	if err != nil {
		return nil, err
	}
	return p.(upstream.TokenKeeper).Refresh(ctx, refreshToken)
}

// Revoke implements upstream.TokenKeeper.
func (d *discovered) Revoke(ctx context.Context, tok *upstream.Token) error {
	p, err := d.get(ctx)
	if err != nil {
		return err
	}
	return p.(upstream.TokenKeeper).Revoke(ctx, tok)
}
