package authserver

import (
	"crypto/subtle"
	"errors"
	"net/http"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
	"go.uber.org/zap"
)

// serveLogin shows and checks the built-in login form.
func (s *Site) serveLogin(w http.ResponseWriter, r *http.Request) {
	if s.AS.Passwords == nil || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
		s.errorPage(w, http.StatusMethodNotAllowed, "Unexpected request.")
		return
	}
	form, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	loginState := form["state"]
	var login *state.UpstreamLogin
	if loginState != "" && len(loginState) <= 200 {
		login, _ = s.AS.State.Logins.Login(r.Context(), loginState)
	}
	if login == nil {
		s.errorPage(w, http.StatusBadRequest, "This login has expired. Start again from the app.")
		return
	}
	if !s.sameBrowser(r, login.Request.Browser) {
		s.errorPage(w, http.StatusBadRequest, "This login was started in another browser.")
		return
	}
	page := map[string]any{
		"Title": "Log in", "ResourceHost": hostOf(login.Request.Resource),
		"Action": s.Issuer + pathLogin, "State": loginState, "CSRF": login.Request.CSRF,
	}
	if r.Method == http.MethodGet {
		renderPage(w, http.StatusOK, "login", page)
		return
	}
	if subtle.ConstantTimeCompare([]byte(form["csrf"]), []byte(login.Request.CSRF)) != 1 {
		s.errorPage(w, http.StatusForbidden, "This form was not sent from the page this server showed you.")
		return
	}
	username := form["username"]
	ctx, now := r.Context(), time.Now()
	subjects := state.NewLoginSubjects(username, s.source(r))
	if wait, err := s.AS.State.Logins.LoginWait(ctx, subjects, now); err != nil {
		s.serverError(w, r, "reading login limits", err)
		return
	} else if wait > 0 {
		s.waitPage(w, http.StatusTooManyRequests, wait, loginWaitMessage)
		return
	}
	attempts, err := s.AS.State.Logins.CountLoginAttempt(ctx, loginState)
	if err != nil {
		s.serverError(w, r, "counting login attempts", err)
		return
	}
	if attempts > maxLoginAttempts {
		s.tooManyLoginAttempts(w, r, loginState, login.Request)
		return
	}
	id, err := s.AS.Passwords.CheckPassword(username, form["password"])
	if errors.Is(err, upstream.ErrBusy) {
		// Counted as one of the login's attempts: the count had to be
		// taken before the check to hold under parallel posts.
		s.waitPage(w, http.StatusServiceUnavailable, time.Second, "The server is busy checking other logins.")
		return
	}
	if err != nil {
		s.observeLogin(ctx, s.AS.Passwords.Name(), "failed", zap.String("client_id", login.Request.ClientID), zap.String("username", safeName(username)))
		if err := s.AS.State.Logins.RecordLoginFailure(ctx, subjects, now); err != nil {
			s.serverError(w, r, "counting failed logins", err)
			return
		}
		if attempts >= maxLoginAttempts {
			s.tooManyLoginAttempts(w, r, loginState, login.Request)
			return
		}
		page["Failed"], page["Username"] = true, username
		renderPage(w, http.StatusUnauthorized, "login", page)
		return
	}
	if err := s.AS.State.Logins.EndLogin(ctx, loginState); err != nil {
		s.errorPage(w, http.StatusBadRequest, "This login was already used. Start again from the app.")
		return
	}
	s.finishLogin(w, r, login.Request, s.AS.Passwords.Name(), id)
}

// tooManyLoginAttempts ends a login that used up its password attempts.
func (s *Site) tooManyLoginAttempts(w http.ResponseWriter, r *http.Request, loginState string, req state.Request) {
	_ = s.AS.State.Logins.EndLogin(r.Context(), loginState)
	s.redirectError(w, r, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "too many failed logins"))
}

// maxLoginAttempts bounds password guesses per login.
const maxLoginAttempts = 5

// loginWaitMessage is what the wait page says; the same whatever the
// reason, so it reveals nothing about the account.
const loginWaitMessage = "There were too many failed logins for this account or from your network."
