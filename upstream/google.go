package upstream

import (
	"cmp"
	"context"
	"net/http"
	"slices"
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
	// Scopes are requested besides openid, email and profile, for
	// backends that use the user's token, such as
	// https://www.googleapis.com/auth/drive.readonly.
	Scopes []string
	// Offline asks for a refresh token, to keep the user's token fresh
	// for backends.
	Offline bool
}

// Google logs users in with Google. It is an OIDC provider with Google's
// issuer. Subject is Google's stable numeric account id, never the email,
// which users can change. HostedDomain is the account's Google Workspace
// domain (hd), and Email is set only when Google is authoritative for the
// address (see googleVouch).
type Google struct {
	oidc *OIDC
}

// NewGoogle fetches Google's discovery document (waiting at most 10
// seconds) and returns the provider. httpClient is as for NewOIDC.
func NewGoogle(ctx context.Context, cfg GoogleConfig, httpClient *http.Client) (*Google, error) {
	oc := cfg.oidcConfig()
	issuer := oc.Issuer
	o, err := newOIDC(ctx, "google", oc, httpClient)
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
	o.vouch = googleVouch
	return &Google{oidc: o}, nil
}

// oidcConfig is the OIDC configuration of a Google login.
func (cfg GoogleConfig) oidcConfig() OIDCConfig {
	oc := OIDCConfig{
		Issuer:       cmp.Or(cfg.Issuer, GoogleIssuer),
		ClientID:     cfg.ClientID,
		ClientSecret: cfg.ClientSecret,
		Scopes:       slices.Clone(DefaultOIDCScopes),
	}
	for _, s := range cfg.Scopes {
		if !slices.Contains(oc.Scopes, s) {
			oc.Scopes = append(oc.Scopes, s)
		}
	}
	if cfg.Offline {
		// Google issues a refresh token only with access_type=offline,
		// and again for a user who consented before only with
		// prompt=consent.
		// https://developers.google.com/identity/protocols/oauth2/web-server#offline
		oc.AuthParams = map[string]string{"access_type": "offline", "prompt": "consent"}
	}
	return oc
}

// googleVouch keeps the Workspace domain and drops an email address Google
// is not authoritative for. Google is authoritative for Gmail addresses and
// for the addresses of a Workspace account in its own domain (hd); a
// personal Google account can show any address its owner once verified,
// such as a work address kept after leaving the company, which proves
// nothing about membership of that company.
// https://developers.google.com/identity/openid-connect/openid-connect#an-id-tokens-payload
func googleVouch(cl *idClaims, id *Identity) {
	id.HostedDomain = strings.ToLower(cl.HostedDomain)
	domain := strings.ToLower(id.Email[strings.LastIndexByte(id.Email, '@')+1:])
	if domain != "gmail.com" && (id.HostedDomain == "" || domain != id.HostedDomain) {
		id.Email = ""
	}
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

// Refresh implements TokenKeeper.
func (g *Google) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	return g.oidc.Refresh(ctx, refreshToken)
}

// Revoke implements TokenKeeper at https://oauth2.googleapis.com/revoke,
// from Google's discovery document; it ends the user's whole
// authorization of the application.
func (g *Google) Revoke(ctx context.Context, tok *Token) error {
	return g.oidc.Revoke(ctx, tok)
}
