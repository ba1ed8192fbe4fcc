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

// passwordLoginEndpoint is the login page of the built-in user list
// (upstream users).
type passwordLoginEndpoint struct {
	issuer    string
	passwords upstream.PasswordChecker
	logins    *state.Logins
	browser   browserCookie
	sources   sources
	signin    *signInFlow
	log       *events
}

// ServeHTTP shows and checks the built-in login form.
func (e *passwordLoginEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if e.passwords == nil || (r.Method != http.MethodGet && r.Method != http.MethodPost) {
		errorPage(w, http.StatusMethodNotAllowed, "Unexpected request.")
		return
	}
	form, ok := pageForm(w, r)
	if !ok {
		return
	}
	loginState := form["state"]
	var login *state.UpstreamLogin
	if loginState != "" && len(loginState) <= 200 {
		login, _ = e.logins.Login(r.Context(), loginState)
	}
	if login == nil {
		errorPage(w, http.StatusBadRequest, "This login has expired. Start again from the app.")
		return
	}
	if !e.browser.same(r, login.Request.Browser) {
		errorPage(w, http.StatusBadRequest, "This login was started in another browser.")
		return
	}
	page := map[string]any{
		"Title": "Log in", "ResourceHost": hostOf(login.Request.Resource),
		"Action": e.issuer + pathLogin, "State": loginState, "CSRF": login.Request.CSRF,
	}
	if r.Method == http.MethodGet {
		renderPage(w, http.StatusOK, "login", page)
		return
	}
	if subtle.ConstantTimeCompare([]byte(form["csrf"]), []byte(login.Request.CSRF)) != 1 {
		errorPage(w, http.StatusForbidden, "This form was not sent from the page this server showed you.")
		return
	}
	username := form["username"]
	ctx, now := r.Context(), time.Now()
	subjects := state.NewLoginSubjects(username, e.sources.of(r))
	if wait, err := e.logins.LoginWait(ctx, subjects, now); err != nil {
		serverError(w, e.log.logger, "reading login limits", err)
		return
	} else if wait > 0 {
		waitPage(w, http.StatusTooManyRequests, wait, loginWaitMessage)
		return
	}
	attempts, err := e.logins.CountLoginAttempt(ctx, loginState)
	if err != nil {
		serverError(w, e.log.logger, "counting login attempts", err)
		return
	}
	if attempts > maxLoginAttempts {
		e.tooManyLoginAttempts(w, r, loginState, login.Request)
		return
	}
	id, err := e.passwords.CheckPassword(username, form["password"])
	if errors.Is(err, upstream.ErrBusy) {
		// Counted as one of the login's attempts: the count had to be
		// taken before the check to hold under parallel posts.
		waitPage(w, http.StatusServiceUnavailable, time.Second, "The server is busy checking other logins.")
		return
	}
	if err != nil {
		e.log.login(ctx, e.passwords.Name(), "failed", zap.String("client_id", login.Request.ClientID), zap.String("username", safeName(username)))
		if err := e.logins.RecordLoginFailure(ctx, subjects, now); err != nil {
			serverError(w, e.log.logger, "counting failed logins", err)
			return
		}
		if attempts >= maxLoginAttempts {
			e.tooManyLoginAttempts(w, r, loginState, login.Request)
			return
		}
		page["Failed"], page["Username"] = true, username
		renderPage(w, http.StatusUnauthorized, "login", page)
		return
	}
	if err := e.logins.EndLogin(ctx, loginState); err != nil {
		errorPage(w, http.StatusBadRequest, "This login was already used. Start again from the app.")
		return
	}
	e.signin.finish(w, r, login.Request, e.passwords.Name(), id)
}

// tooManyLoginAttempts ends a login that used up its password attempts.
func (e *passwordLoginEndpoint) tooManyLoginAttempts(w http.ResponseWriter, r *http.Request, loginState string, req state.Request) {
	_ = e.logins.EndLogin(r.Context(), loginState)
	redirectError(w, r, e.issuer, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "too many failed logins"))
}

// maxLoginAttempts bounds password guesses per login.
const maxLoginAttempts = 5

// loginWaitMessage is what the wait page says; the same whatever the
// reason, so it reveals nothing about the account.
const loginWaitMessage = "There were too many failed logins for this account or from your network."
