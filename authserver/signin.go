package authserver

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
	"go.uber.org/zap"
)

// startLogin sends the browser to the upstream login with a fresh state,
// PKCE verifier and nonce, stored only now, after consent.
func (s *Site) startLogin(w http.ResponseWriter, r *http.Request, req state.Request) {
	if p, ok := s.AS.Upstream.(interface{ Prepare(context.Context) error }); ok {
		if err := p.Prepare(r.Context()); err != nil {
			s.AS.Logger.Error("identity provider unavailable", zap.String("upstream", s.AS.Upstream.Name()), zap.Error(err))
			s.errorPage(w, http.StatusBadGateway, "The identity provider cannot be reached. Try again in a minute.")
			return
		}
	}
	loginState := randomToken()
	login := state.UpstreamLogin{Request: req, Verifier: randomToken(), Nonce: randomToken()}
	if err := s.AS.State.Logins.StartLogin(r.Context(), loginState, &login); err != nil {
		s.serverError(w, r, "saving login state", err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	if s.AS.Passwords != nil {
		http.Redirect(w, r, s.Issuer+pathLogin+"?state="+url.QueryEscape(loginState), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, s.AS.Upstream.AuthCodeURL(loginState, login.Verifier, login.Nonce, s.Issuer+pathCallback), http.StatusSeeOther)
}

// finishLogin applies the allow and grant_scope rules and sends the client
// its code.
func (s *Site) finishLogin(w http.ResponseWriter, r *http.Request, req state.Request, provider string, id *upstream.Identity) {
	user := state.User{
		Subject:      provider + ":" + id.Subject,
		Username:     id.Username,
		Email:        id.Email,
		Name:         id.Name,
		Picture:      id.Picture,
		AuthTime:     time.Now().Unix(),
		HostedDomain: id.HostedDomain,
		Orgs:         id.Orgs,
		Upstream:     s.AS.UpstreamIdentity,
	}
	if provider == "github" && s.AS.namesLogin(id.Username) {
		pinned, err := s.AS.State.Users.PinLogin(r.Context(), id.Username, user.Subject)
		if err != nil {
			s.serverError(w, r, "checking the GitHub login pin", err)
			return
		}
		if user.LoginPinned = pinned; !pinned {
			s.audit(r.Context(), "GitHub login belongs to another account; rules naming it do not apply",
				zap.String("login", safeName(id.Username)), zap.String("sub", user.Subject))
		}
	}
	scopes, allowed := s.AS.admit(&user, req.Scopes)
	if !allowed {
		s.observeLogin(r.Context(), provider, "denied", zap.String("client_id", req.ClientID), zap.String("sub", user.Subject))
		// Back to the client like every other error: a link on a page of
		// ours could not carry a private-use scheme (cursor://…), which
		// html/template rightly refuses, and the app would be left waiting.
		s.redirectError(w, r, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "this account is not allowed to use this server"))
		return
	}
	if err := s.AS.State.Users.SaveProfile(r.Context(), &user, s.AS.RefreshTokenLifetime); err != nil {
		s.serverError(w, r, "saving user profile", err)
		return
	}
	req.Scopes = scopes
	code := randomToken()
	if err := s.AS.State.Codes.Issue(r.Context(), code, &state.Code{Request: req, User: user, IssuedAt: time.Now().UnixNano()}); err != nil {
		s.serverError(w, r, "saving authorization code", err)
		return
	}
	s.observeLogin(r.Context(), provider, "success", zap.String("client_id", req.ClientID), zap.String("sub", user.Subject))
	params := url.Values{"code": {code}}
	if req.State != "" {
		params.Set("state", req.State)
	}
	s.redirectWithParams(w, r, req.RedirectURI, params)
}
