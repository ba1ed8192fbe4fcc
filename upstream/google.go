package upstream

import (
	"context"
	"net/http"
	"strings"
)

// GoogleIssuer is Google's OpenID Connect issuer.
const GoogleIssuer = "https://accounts.google.com"

// GoogleConfig configures login with Google.
type GoogleConfig struct {
	// ClientID and ClientSecret are the OAuth client's credentials from
	// the Google Cloud console ("Web application" type).
	ClientID     string
	ClientSecret string
	// Issuer is GoogleIssuer if empty. Tests point it at a fake.
	Issuer string
}

// Google logs users in with Google. It is an OIDC provider with Google's
// issuer; the identity's Email is set only when Google reports it
// verified, as for any OIDC provider. Subject is Google's stable numeric
// account id, never the email, which users can change.
type Google struct {
	oidc *OIDC
}

// NewGoogle fetches Google's discovery document (waiting at most 10
// seconds) and returns the provider. httpClient is as for NewOIDC.
func NewGoogle(ctx context.Context, cfg GoogleConfig, httpClient *http.Client) (*Google, error) {
	issuer := cfg.Issuer
	if issuer == "" {
		issuer = GoogleIssuer
	}
	o, err := newOIDC(ctx, "google", OIDCConfig{
		Issuer:       issuer,
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Scopes:       DefaultOIDCScopes,
	}, httpClient)
	if err != nil {
		return nil, err
	}
	// Google documents that its ID tokens' iss is "https://accounts.google.com"
	// or "accounts.google.com"; accept the scheme-less spelling of whatever
	// issuer is configured so a fake can exercise it too.
	if alias, ok := strings.CutPrefix(issuer, "https://"); ok {
		o.issuers = append(o.issuers, alias)
	} else if alias, ok := strings.CutPrefix(issuer, "http://"); ok {
		o.issuers = append(o.issuers, alias)
	}
	return &Google{oidc: o}, nil
}

// Name implements Redirector.
func (g *Google) Name() string { return "google" }

// AuthCodeURL implements Redirector.
func (g *Google) AuthCodeURL(state, verifier, nonce, redirectURL string) string {
	return g.oidc.AuthCodeURL(state, verifier, nonce, redirectURL)
}

// Exchange implements Redirector.
func (g *Google) Exchange(ctx context.Context, code, verifier, nonce, redirectURL string) (*Identity, error) {
	return g.oidc.Exchange(ctx, code, verifier, nonce, redirectURL)
}
