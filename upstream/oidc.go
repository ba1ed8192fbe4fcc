package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// discoveryTimeout bounds fetching the discovery document in NewOIDC.
const discoveryTimeout = 10 * time.Second

// DefaultOIDCScopes are requested when OIDCConfig.Scopes is empty.
var DefaultOIDCScopes = []string{"openid", "email", "profile"}

// OIDCConfig configures a generic OpenID Connect provider.
type OIDCConfig struct {
	// Issuer is the provider's issuer identifier, e.g.
	// "https://login.example.com/realms/main". It must be https (plain
	// http only for loopback hosts) and must equal, character for
	// character, the issuer in the provider's discovery document,
	// including the presence or absence of a trailing slash.
	Issuer string
	// ClientID and ClientSecret are the authorization server's client
	// credentials at the provider. An empty secret makes it a public
	// client that relies on PKCE alone.
	ClientID     string
	ClientSecret string
	// Scopes to request; DefaultOIDCScopes if empty. "openid" is added if
	// missing, since without it there is no ID token.
	Scopes []string
	// AuthParams are added to the authorization request, such as Google's
	// access_type=offline, which it needs to issue a refresh token.
	AuthParams map[string]string
}

// OIDC logs users in at an OpenID Connect provider with the authorization
// code flow, PKCE (S256) and a nonce, and identifies them by the verified
// ID token. It is safe for concurrent use.
type OIDC struct {
	name          string   // for errors and Name(): "oidc", or "google" when wrapped
	issuers       []string // accepted iss values; [0] is the configured issuer
	clientID      string
	oauth         oauth2.Config // RedirectURL is set per call on a copy
	userinfoURL   string
	revocationURL string
	authParams    []oauth2.AuthCodeOption
	client        *http.Client
	keys          *idTokenKeys
	now           func() time.Time
	// vouch, if set, adjusts the identity to what this provider vouches
	// for, from the verified ID token's claims (Google: hd).
	vouch func(*idClaims, *Identity)
}

// discoveryDoc is the part of the OpenID Provider Metadata that is used.
type discoveryDoc struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
}

// NewOIDC fetches the provider's discovery document from
// {Issuer}/.well-known/openid-configuration (waiting at most 10 seconds)
// and returns a provider ready to use. httpClient is used for all requests
// to the provider; nil means a client with a 30-second timeout.
func NewOIDC(ctx context.Context, cfg OIDCConfig, httpClient *http.Client) (*OIDC, error) {
	return newOIDC(ctx, "oidc", cfg, httpClient)
}

func newOIDC(ctx context.Context, name string, cfg OIDCConfig, httpClient *http.Client) (*OIDC, error) {
	if cfg.Issuer == "" {
		return nil, fmt.Errorf("%s: issuer is required", name)
	}
	iss, err := checkEndpoint("issuer", cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if iss.RawQuery != "" || iss.ForceQuery {
		return nil, fmt.Errorf("%s: issuer %q must not contain a query", name, cfg.Issuer)
	}
	if cfg.ClientID == "" {
		return nil, fmt.Errorf("%s: client_id is required", name)
	}
	client := providerClient(httpClient)

	// OpenID Connect Discovery 1.0, section 4: strip one trailing slash,
	// then append the well-known path.
	discoveryURL := strings.TrimSuffix(cfg.Issuer, "/") + "/.well-known/openid-configuration"
	ctx, cancel := context.WithTimeout(ctx, discoveryTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, discoveryURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: discovery %s: %v", name, discoveryURL, err)
	}
	req.Header.Set("Accept", "application/json")
	var doc discoveryDoc
	if _, err := getJSON(client, req, &doc); err != nil {
		return nil, fmt.Errorf("%s: fetching discovery document: %w", name, err)
	}
	if err := doc.check(cfg.Issuer, discoveryURL); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}

	authStyle, err := doc.authStyle(cfg.ClientSecret)
	if err != nil {
		return nil, fmt.Errorf("%s: discovery document at %s: %w", name, discoveryURL, err)
	}
	scopes := cfg.RequestedScopes()
	var authParams []oauth2.AuthCodeOption
	for k, v := range cfg.AuthParams {
		authParams = append(authParams, oauth2.SetAuthURLParam(k, v))
	}
	return &OIDC{
		name:     name,
		issuers:  []string{doc.Issuer},
		clientID: cfg.ClientID,
		oauth: oauth2.Config{
			ClientID:     cfg.ClientID,
			ClientSecret: cfg.ClientSecret,
			Endpoint: oauth2.Endpoint{
				AuthURL:   doc.AuthorizationEndpoint,
				TokenURL:  doc.TokenEndpoint,
				AuthStyle: authStyle,
			},
			Scopes: scopes,
		},
		userinfoURL:   doc.UserinfoEndpoint,
		revocationURL: doc.RevocationEndpoint,
		authParams:    authParams,
		client:        client,
		keys:          newIDTokenKeys(doc.JWKSURI, client),
		now:           time.Now,
	}, nil
}

// check validates the discovery document fetched from discoveryURL for the
// configured issuer.
func (d *discoveryDoc) check(issuer, discoveryURL string) error {
	// Discovery section 4.3: the issuer in the document MUST be identical
	// to the one the document was looked up for. Being lenient here
	// (trailing slashes, case) would let ID tokens carry an issuer string
	// the operator never configured.
	if d.Issuer != issuer {
		return fmt.Errorf("discovery document at %s has issuer %q, which is not the configured issuer %q (they must match exactly, including any trailing slash)",
			discoveryURL, sanitize(d.Issuer), issuer)
	}
	for _, ep := range []struct{ name, url string }{
		{"authorization_endpoint", d.AuthorizationEndpoint},
		{"token_endpoint", d.TokenEndpoint},
		{"jwks_uri", d.JWKSURI},
	} {
		if ep.url == "" {
			return fmt.Errorf("discovery document at %s has no %s", discoveryURL, ep.name)
		}
		if _, err := checkEndpoint(ep.name, ep.url); err != nil {
			return fmt.Errorf("discovery document at %s: %w", discoveryURL, err)
		}
	}
	for _, ep := range []struct{ name, url string }{
		{"userinfo_endpoint", d.UserinfoEndpoint},
		{"revocation_endpoint", d.RevocationEndpoint},
	} {
		if ep.url == "" {
			continue
		}
		if _, err := checkEndpoint(ep.name, ep.url); err != nil {
			return fmt.Errorf("discovery document at %s: %w", discoveryURL, err)
		}
	}
	return nil
}

// authStyle picks how the client authenticates at the token endpoint.
// Choosing from the metadata avoids x/oauth2's auto-detection, which on
// failure retries with the other style and so sends the code twice.
func (d *discoveryDoc) authStyle(secret string) (oauth2.AuthStyle, error) {
	if secret == "" {
		// Public client: client_id goes in the body, no secret at all.
		return oauth2.AuthStyleInParams, nil
	}
	methods := d.TokenEndpointAuthMethodsSupported
	switch {
	case len(methods) == 0, slices.Contains(methods, "client_secret_basic"):
		// client_secret_basic is the default when the provider lists none.
		return oauth2.AuthStyleInHeader, nil
	case slices.Contains(methods, "client_secret_post"):
		return oauth2.AuthStyleInParams, nil
	default:
		return 0, fmt.Errorf("token endpoint supports neither client_secret_basic nor client_secret_post (it lists %q)", methods)
	}
}

// Name implements Redirector.
func (o *OIDC) Name() string { return o.name }

// AuthCodeURL implements Redirector. It sends the S256 PKCE challenge for
// verifier and the nonce the ID token must echo.
func (o *OIDC) AuthCodeURL(state, verifier, nonce, redirectURL string) string {
	cfg := o.oauth
	cfg.RedirectURL = redirectURL
	opts := append([]oauth2.AuthCodeOption{
		oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("nonce", nonce),
	}, o.authParams...)
	return cfg.AuthCodeURL(state, opts...)
}

// Exchange implements Redirector. It redeems code with the PKCE verifier,
// verifies the ID token (signature, issuer, audience, expiry, nonce) and
// builds the identity from its claims, asking the userinfo endpoint when
// the token lacks the email or name. The email is kept only if the
// provider says it is verified. A rejected code yields an error wrapping
// ErrInvalidGrant.
func (o *OIDC) Exchange(ctx context.Context, code, verifier, nonce, redirectURL string) (*Identity, error) {
	switch {
	case code == "":
		return nil, fmt.Errorf("%s: no authorization code", o.name)
	case verifier == "":
		return nil, fmt.Errorf("%s: no PKCE verifier", o.name)
	case nonce == "":
		// The nonce check is what binds the ID token to this login;
		// refuse to run without one rather than silently skip it.
		return nil, fmt.Errorf("%s: no nonce", o.name)
	}
	ctx, cancel := withExchangeTimeout(ctx)
	defer cancel()

	cfg := o.oauth
	cfg.RedirectURL = redirectURL
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, o.client), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, tokenError(o.oauth.Endpoint.TokenURL, err))
	}
	rawIDToken, _ := tok.Extra("id_token").(string)
	if rawIDToken == "" {
		return nil, fmt.Errorf("%s: token response from %s has no id_token (is the openid scope granted?)", o.name, o.oauth.Endpoint.TokenURL)
	}

	claims, err := o.verifyIDToken(ctx, rawIDToken, nonce)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, err)
	}
	id := claims.profileClaims.identity()
	if (id.Email == "" || id.Name == "") && o.userinfoURL != "" {
		info, err := o.userinfo(ctx, tok.AccessToken)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", o.name, err)
		}
		// Core 5.3.2: the userinfo sub must match the ID token's, or the
		// response may belong to someone else and must not be used.
		if info.Subject != claims.Subject {
			return nil, fmt.Errorf("%s: userinfo sub %q does not match ID token sub %q", o.name, sanitize(info.Subject), sanitize(claims.Subject))
		}
		id.fill(info.identity())
	}
	if o.vouch != nil {
		o.vouch(claims, id)
	}
	id.Token = providerToken(tok)
	return id, nil
}

// providerToken converts an x/oauth2 token.
func providerToken(tok *oauth2.Token) *Token {
	out := &Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expiry: tok.Expiry}
	if scope, ok := tok.Extra("scope").(string); ok {
		out.Scopes = splitScopes(scope)
	}
	return out
}

// Refresh implements TokenKeeper.
func (o *OIDC) Refresh(ctx context.Context, refreshToken string) (*Token, error) {
	ctx, cancel := withExchangeTimeout(ctx)
	defer cancel()
	// An expired token makes the source refresh; it keeps refreshToken
	// when the provider sends no new one.
	src := o.oauth.TokenSource(context.WithValue(ctx, oauth2.HTTPClient, o.client), &oauth2.Token{RefreshToken: refreshToken, Expiry: time.Unix(1, 0)})
	tok, err := src.Token()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.name, tokenError(o.oauth.Endpoint.TokenURL, err))
	}
	return providerToken(tok), nil
}

// Revoke implements TokenKeeper with the revocation endpoint of the
// discovery document (RFC 7009): the refresh token when there is one,
// which revokes its access tokens too at providers that tie them (Google
// revokes the whole authorization), else the access token.
func (o *OIDC) Revoke(ctx context.Context, tok *Token) error {
	if o.revocationURL == "" {
		return ErrNoRevocation
	}
	ctx, cancel := withExchangeTimeout(ctx)
	defer cancel()
	form := url.Values{"token": {tok.AccessToken}, "token_type_hint": {"access_token"}}
	if tok.RefreshToken != "" {
		form = url.Values{"token": {tok.RefreshToken}, "token_type_hint": {"refresh_token"}}
	}
	if o.oauth.Endpoint.AuthStyle == oauth2.AuthStyleInParams {
		form.Set("client_id", o.oauth.ClientID)
		if o.oauth.ClientSecret != "" {
			form.Set("client_secret", o.oauth.ClientSecret)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.revocationURL, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%s: revocation request %s: %v", o.name, o.revocationURL, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if o.oauth.Endpoint.AuthStyle == oauth2.AuthStyleInHeader {
		// RFC 6749 section 2.3.1: the credentials are form-encoded first.
		req.SetBasicAuth(url.QueryEscape(o.oauth.ClientID), url.QueryEscape(o.oauth.ClientSecret))
	}
	if err := expectNoContent(o.client, req); err != nil {
		return fmt.Errorf("%s: %w", o.name, err)
	}
	return nil
}

// verifyIDToken checks raw's signature and claims and returns the claims.
func (o *OIDC) verifyIDToken(ctx context.Context, raw, nonce string) (*idClaims, error) {
	payload, err := o.keys.verify(ctx, raw)
	if err != nil {
		return nil, err
	}
	var cl idClaims
	if err := json.Unmarshal(payload, &cl); err != nil {
		return nil, fmt.Errorf("ID token claims are invalid: %v", err)
	}
	check := idTokenCheck{issuers: o.issuers, clientID: o.clientID, nonce: nonce, now: o.now()}
	if err := check.validate(&cl); err != nil {
		return nil, err
	}
	return &cl, nil
}

// userinfo fetches the userinfo endpoint with the access token.
func (o *OIDC) userinfo(ctx context.Context, accessToken string) (*profileClaims, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, o.userinfoURL, nil)
	if err != nil {
		return nil, fmt.Errorf("userinfo %s: %v", o.userinfoURL, err)
	}
	req.Header.Set("Authorization", "Bearer "+accessToken)
	req.Header.Set("Accept", "application/json")
	var info profileClaims
	if _, err := getJSON(o.client, req, &info); err != nil {
		return nil, fmt.Errorf("fetching userinfo: %w", err)
	}
	return &info, nil
}

// identity converts OIDC claims to an Identity, dropping an unverified
// email: an address the provider has not verified proves nothing about who
// logged in, and policies match on it.
func (p *profileClaims) identity() *Identity {
	id := &Identity{
		Subject:  p.Subject,
		Username: p.PreferredUsername,
		Name:     p.Name,
		Picture:  p.Picture,
	}
	if p.EmailVerified {
		id.Email = p.Email
	}
	return id
}

// fill sets the fields of id that are empty from other.
func (id *Identity) fill(other *Identity) {
	if id.Email == "" {
		id.Email = other.Email
	}
	if id.Username == "" {
		id.Username = other.Username
	}
	if id.Name == "" {
		id.Name = other.Name
	}
	if id.Picture == "" {
		id.Picture = other.Picture
	}
}

// tokenError turns an error from x/oauth2's Exchange into one that names
// the cause without echoing the response body, wrapping ErrInvalidGrant
// when the provider rejected the code.
func tokenError(tokenURL string, err error) error {
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		// Transport errors, timeouts, malformed responses. Keep the chain
		// for context.DeadlineExceeded and friends.
		return fmt.Errorf("token request to %s: %w", tokenURL, err)
	}
	switch {
	case re.ErrorCode == "invalid_grant":
		return fmt.Errorf("token endpoint %s: %w: %s", tokenURL, ErrInvalidGrant, sanitize(re.ErrorDescription))
	case re.ErrorCode != "":
		msg := fmt.Sprintf("token endpoint %s returned error %q", tokenURL, sanitize(re.ErrorCode))
		if re.ErrorDescription != "" {
			msg += ": " + sanitize(re.ErrorDescription)
		}
		return errors.New(msg)
	case re.Response != nil:
		return fmt.Errorf("token endpoint %s: HTTP %s", tokenURL, re.Response.Status)
	default:
		return fmt.Errorf("token endpoint %s: request failed", tokenURL)
	}
}
