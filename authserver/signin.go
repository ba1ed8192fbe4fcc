package authserver

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
	"go.uber.org/zap"
)

// signInFlow logs the user in after consent, at the upstream provider or
// on the built-in login page, and ends the authorization request with a
// code for the client.
type signInFlow struct {
	issuer string
	// upstream logs users in by redirection; passwords by the login
	// page. Exactly one is set.
	upstream  upstream.Redirector
	passwords upstream.PasswordChecker
	policy    *policy
	logins    *state.Logins
	users     *state.Users
	codes     *state.Codes
	// upstreamTokens keeps the user's token at the provider, when the
	// site hands it to backends.
	upstreamTokens *state.UpstreamTokens
	// profileLifetime is how long a user's profile is kept: as long as
	// the grants that may need it.
	profileLifetime time.Duration
	log             *events
}

// start sends the browser to the upstream login with a fresh state,
// PKCE verifier and nonce, stored only now, after consent.
func (f *signInFlow) start(w http.ResponseWriter, r *http.Request, req state.Request) {
	if p, ok := f.upstream.(interface{ Prepare(context.Context) error }); ok {
		if err := p.Prepare(r.Context()); err != nil {
			f.log.logger.Error("identity provider unavailable", zap.String("upstream", f.upstream.Name()), zap.Error(err))
			errorPage(w, http.StatusBadGateway, "The identity provider cannot be reached. Try again in a minute.")
			return
		}
	}
	loginState := randomToken()
	login := state.UpstreamLogin{Request: req, Verifier: randomToken(), Nonce: randomToken()}
	if err := f.logins.StartLogin(r.Context(), loginState, &login); err != nil {
		serverError(w, f.log.logger, "saving login state", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if f.passwords != nil {
		http.Redirect(w, r, f.issuer+pathLogin+"?state="+url.QueryEscape(loginState), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, f.upstream.AuthCodeURL(loginState, login.Verifier, login.Nonce, f.issuer+pathCallback), http.StatusSeeOther)
}

// keepToken stores the user's token at the provider, for as long as
// the code lives (its redemption extends that), and returns its id.
func (f *signInFlow) keepToken(ctx context.Context, tok *upstream.Token) (string, error) {
	if tok == nil {
		return "", errors.New("the identity provider returned no token")
	}
	kept := &state.UpstreamToken{
		ID: tokens.NewID(), AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Scopes: tok.Scopes,
		Obtained: time.Now().Unix(), Until: time.Now().Add(upstreamTokenUnredeemed).Unix(),
	}
	if !tok.Expiry.IsZero() {
		kept.Expiry = tok.Expiry.Unix()
	}
	return kept.ID, f.upstreamTokens.Save(ctx, kept)
}

// upstreamTokenUnredeemed is how long a user's token at the provider is
// kept for a code not yet redeemed: longer than a code lives.
const upstreamTokenUnredeemed = 5 * time.Minute

// finish applies the allow and grant_scope rules and sends the client
// its code.
func (f *signInFlow) finish(w http.ResponseWriter, r *http.Request, req state.Request, provider string, id *upstream.Identity) {
	user := state.User{
		Subject:      provider + ":" + id.Subject,
		Username:     id.Username,
		Email:        id.Email,
		Name:         id.Name,
		Picture:      id.Picture,
		AuthTime:     time.Now().Unix(),
		HostedDomain: id.HostedDomain,
		Orgs:         id.Orgs,
		Upstream:     f.policy.upstream,
	}
	if provider == "github" && f.policy.namesLogin(id.Username) {
		pinned, err := f.users.PinLogin(r.Context(), id.Username, user.Subject)
		if err != nil {
			serverError(w, f.log.logger, "checking the GitHub login pin", err)
			return
		}
		if user.LoginPinned = pinned; !pinned {
			f.log.record(r.Context(), "GitHub login belongs to another account; rules naming it do not apply",
				zap.String("login", safeName(id.Username)), zap.String("sub", user.Subject))
		}
	}
	scopes, allowed := f.policy.admit(&user, req.Scopes)
	if !allowed {
		f.log.login(r.Context(), provider, "denied", zap.String("client_id", req.ClientID), zap.String("sub", user.Subject))
		// Back to the client like every other error: a link on a page of
		// ours could not carry a private-use scheme (cursor://…), which
		// html/template rightly refuses, and the app would be left waiting.
		redirectError(w, r, f.issuer, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "this account is not allowed to use this server"))
		return
	}
	if err := f.users.SaveProfile(r.Context(), &user, f.profileLifetime); err != nil {
		serverError(w, f.log.logger, "saving user profile", err)
		return
	}
	req.Scopes = scopes
	issued := &state.Code{Request: req, User: user, IssuedAt: time.Now().UnixNano()}
	if f.upstreamTokens.Kept() {
		var err error
		if issued.UpstreamToken, err = f.keepToken(r.Context(), id.Token); err != nil {
			serverError(w, f.log.logger, "saving the user's token at the identity provider", err)
			return
		}
	}
	code := randomToken()
	if err := f.codes.Issue(r.Context(), code, issued); err != nil {
		serverError(w, f.log.logger, "saving authorization code", err)
		return
	}
	f.log.login(r.Context(), provider, "success", zap.String("client_id", req.ClientID), zap.String("sub", user.Subject))
	params := url.Values{"code": {code}}
	if req.State != "" {
		params.Set("state", req.State)
	}
	redirectWithParams(w, r, f.issuer, req.RedirectURI, params)
}
