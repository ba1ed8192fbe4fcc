package state

import (
	"context"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// requestLifetime is how long an authorization request waits for consent,
// and a login for its user.
const requestLifetime = 10 * time.Minute

// Logins stores what a login goes through before its code is issued:
// authorization requests waiting for consent, logins at the upstream
// provider, the consent browsers remember, the limits on password
// guessing (loginlimits.go).
type Logins struct {
	store storage.Store
}

// Request is a validated authorization request waiting for consent and
// login.
type Request struct {
	ClientID      string   `json:"client_id"`
	RedirectURI   string   `json:"redirect_uri"`
	State         string   `json:"state,omitempty"`
	CodeChallenge string   `json:"code_challenge"`
	Nonce         string   `json:"nonce,omitempty"`
	Resource      string   `json:"resource"`
	Scopes        []string `json:"scopes,omitempty"`
	// DPoPJKT, from dpop_jkt, binds the code to a DPoP key: redeeming it
	// needs a proof by that key (RFC 9449 section 10).
	DPoPJKT string `json:"dpop_jkt,omitempty"`
	// Browser is the Hash of the browser cookie the request is bound to.
	Browser string `json:"browser"`
	CSRF    string `json:"csrf"`
}

// UpstreamLogin is one login at the upstream provider (or the built-in
// login page), keyed by the Hash of its state.
type UpstreamLogin struct {
	Request  Request `json:"request"`
	Verifier string  `json:"verifier,omitempty"`
	Nonce    string  `json:"nonce,omitempty"`
}

// Consent is a browser's remembered approval of a client for one redirect
// URI.
type Consent struct {
	Resource string   `json:"resource"`
	Scopes   []string `json:"scopes,omitempty"`
}

// SaveRequest keeps an authorization request under id until consent.
func (l *Logins) SaveRequest(ctx context.Context, id string, req *Request) error {
	return putJSON(ctx, l.store, keyRequest+id, req, requestLifetime)
}

// Request returns the authorization request id.
func (l *Logins) Request(ctx context.Context, id string) (*Request, error) {
	var req Request
	if err := getJSON(ctx, l.store, keyRequest+id, &req); err != nil {
		return nil, err
	}
	return &req, nil
}

// TakeRequest uses up the authorization request id; among concurrent
// callers one succeeds.
func (l *Logins) TakeRequest(ctx context.Context, id string) error {
	_, err := l.store.Take(ctx, keyRequest+id)
	return err
}

// StartLogin keeps a login under its state until the user comes back.
func (l *Logins) StartLogin(ctx context.Context, state string, login *UpstreamLogin) error {
	return putJSON(ctx, l.store, KindLogin.Key(state), login, requestLifetime)
}

// Login returns the login with this state, leaving it in place.
func (l *Logins) Login(ctx context.Context, state string) (*UpstreamLogin, error) {
	var login UpstreamLogin
	if err := getJSON(ctx, l.store, KindLogin.Key(state), &login); err != nil {
		return nil, err
	}
	return &login, nil
}

// TakeLogin returns the login with this state and uses it up; among
// concurrent callers one gets it.
func (l *Logins) TakeLogin(ctx context.Context, state string) (*UpstreamLogin, error) {
	var login UpstreamLogin
	if err := takeJSON(ctx, l.store, KindLogin.Key(state), &login); err != nil {
		return nil, err
	}
	return &login, nil
}

// EndLogin uses up the login with this state; among concurrent callers
// one succeeds.
func (l *Logins) EndLogin(ctx context.Context, state string) error {
	_, err := l.store.Take(ctx, KindLogin.Key(state))
	return err
}

// consentKey names a remembered approval: per browser, client and redirect URI.
func consentKey(req *Request) string {
	return keyConsent + req.Browser + "/" + Hash(req.ClientID+"\n"+req.RedirectURI)
}

// RememberConsent keeps, for ttl, that the browser of req approved its
// client and redirect URI for its resource and scopes.
func (l *Logins) RememberConsent(ctx context.Context, req *Request, ttl time.Duration) error {
	return putJSON(ctx, l.store, consentKey(req), Consent{Resource: req.Resource, Scopes: req.Scopes}, ttl)
}

// Consent returns what the browser of req approved for its client and
// redirect URI.
func (l *Logins) Consent(ctx context.Context, req *Request) (*Consent, error) {
	var c Consent
	if err := getJSON(ctx, l.store, consentKey(req), &c); err != nil {
		return nil, err
	}
	return &c, nil
}
