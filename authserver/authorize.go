package authserver

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
)

// serveAuthorize handles GET /authorize (OAuth 2.1 section 4.1.1). The
// client and its redirect URI are checked first; until both are trusted,
// errors are shown on a page and never redirected.
func (s *Site) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		s.errorPage(w, http.StatusMethodNotAllowed, "The authorization endpoint only accepts GET.")
		return
	}
	// Every request below may fetch a metadata document and stores a
	// pending request: limited per source before any of that work.
	if l := s.AS.AuthorizeLimit; l != nil {
		if wait := l.Reserve(s.source(r)); wait > 0 {
			s.waitPage(w, http.StatusTooManyRequests, wait, "Too many sign-in attempts came from your network.")
			return
		}
	}
	q, problem := parseAuthorizationQuery(r.URL.RawQuery)
	if q == nil {
		s.errorPage(w, http.StatusBadRequest, problem)
		return
	}
	client, err := s.AS.client(r.Context(), q.clientID)
	switch {
	case errors.Is(err, errBlockedClient):
		s.errorPage(w, http.StatusForbidden, "The app that sent you here has been blocked by this server's operator.")
		return
	case err != nil:
		s.logDebug("authorization request for an unknown client", zap.Error(err))
		s.errorPage(w, http.StatusBadRequest, "The app that sent you here is not registered with this server.")
		return
	}
	redirectURI, ok := clients.MatchRedirectURI(client.RedirectURIs, q.redirectURI)
	if !ok {
		s.errorPage(w, http.StatusBadRequest, "The app asked to return you to an address it did not register.")
		return
	}

	// From here on, errors go back to the client.
	clientState, params := q.state, q.params
	fail := func(e *oauth.Error) { s.redirectError(w, r, redirectURI, clientState, e) }
	if q.invalid != nil {
		fail(q.invalid)
		return
	}
	switch params["response_type"] {
	case "code":
	case "":
		fail(oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "response_type is required"))
		return
	default:
		fail(oauth.NewError(http.StatusBadRequest, oauth.UnsupportedResponseType, "only response_type=code is supported"))
		return
	}
	if !slices.Contains(client.ResponseTypes, "code") {
		fail(oauth.NewError(http.StatusBadRequest, oauth.UnauthorizedClient, "the client did not register response_type code"))
		return
	}
	challenge := params["code_challenge"]
	switch {
	case challenge == "":
		fail(oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "code_challenge is required (PKCE)"))
		return
	case params["code_challenge_method"] != "S256":
		fail(oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "code_challenge_method must be S256"))
		return
	case !tokens.ValidS256Challenge(challenge):
		fail(oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "code_challenge is not a valid S256 challenge"))
		return
	}
	res, oerr := s.resolveResource(q.resources, nil)
	if oerr != nil {
		fail(oerr)
		return
	}

	req := state.Request{
		ClientID:      client.ClientID,
		RedirectURI:   redirectURI,
		State:         clientState,
		CodeChallenge: challenge,
		Nonce:         params["nonce"],
		Resource:      res.URL,
		Scopes:        grantableScopes(res, params["scope"]),
		Browser:       state.Hash(s.browserID(w, r)),
		CSRF:          randomToken(),
	}
	if s.consentRemembered(r, &req) {
		s.startLogin(w, r, req)
		return
	}
	id := randomToken()
	if err := s.AS.State.Logins.SaveRequest(r.Context(), id, &req); err != nil {
		s.serverError(w, r, "saving authorization request", err)
		return
	}
	name, verified, clientHost := client.ClientName, client.Metadata, ""
	if verified {
		if u, err := url.Parse(client.ClientID); err == nil {
			clientHost = u.Host
		}
	}
	if name == "" {
		name = "An app"
	}
	// A loopback redirect goes to whatever program listens on this device,
	// which a verified client name does not vouch for (MCP, CIMD section 6.4).
	loopback := false
	if u, err := url.Parse(redirectURI); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		loopback = IsLoopbackHost(strings.ToLower(u.Hostname()))
	}
	renderPage(w, http.StatusOK, "consent", map[string]any{
		"Title":        "Authorize " + name,
		"ClientName":   name,
		"ClientID":     client.ClientID,
		"Verified":     verified,
		"ClientHost":   clientHost,
		"RedirectHost": redirectHost(redirectURI),
		"Loopback":     loopback,
		"Resource":     res.URL,
		"ResourceHost": hostOf(res.URL),
		"Scopes":       req.Scopes,
		"Action":       s.Issuer + pathConsent,
		"Request":      id,
		"CSRF":         req.CSRF,
	})
}

// Caps on the request values an authorization request stores for its
// 10 minutes; with the checked redirect URI and challenge they keep a
// pending request within a few kilobytes.
const (
	maxStateLength = 2048
	maxNonceLength = 512
)

// authorizationQuery is the query of an authorization request, parsed.
type authorizationQuery struct {
	clientID, redirectURI string
	// state is the client's state, "" when it is over maxStateLength (it
	// is not sent back then).
	state string
	// params are the single-valued parameters, resources the repeatable
	// resource indicators.
	params    map[string]string
	resources []string
	// invalid, if set, is the error to send the client once its redirect
	// URI is trusted.
	invalid *oauth.Error
}

// parseAuthorizationQuery parses the raw query of an authorization
// request. A query that does not parse, or that names more than one client
// or redirect URI, cannot be answered to the client: the result is nil,
// with what to tell the user on a page. Other repeated parameters (OAuth
// 2.1 section 3.1) and over-long state or nonce values are an
// invalid_request for the client.
func parseAuthorizationQuery(rawQuery string) (q *authorizationQuery, problem string) {
	query, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, "The request from the app could not be read."
	}
	if len(query["client_id"]) > 1 || len(query["redirect_uri"]) > 1 {
		return nil, "The request names more than one client or redirect URI."
	}
	q = &authorizationQuery{clientID: query.Get("client_id"), redirectURI: query.Get("redirect_uri")}
	q.params, q.resources, q.invalid = singleValues(query, "resource")
	q.state = q.params["state"]
	if q.invalid != nil {
		// The first of repeated values goes back with the error.
		q.state = query.Get("state")
	}
	switch {
	case len(q.state) > maxStateLength:
		q.state = ""
		q.invalid = oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, fmt.Sprintf("state is longer than %d bytes", maxStateLength))
	case q.invalid == nil && len(q.params["nonce"]) > maxNonceLength:
		q.invalid = oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, fmt.Sprintf("nonce is longer than %d bytes", maxNonceLength))
	}
	return q, ""
}

// resolveResource maps RFC 8707 resource indicators to the protected
// resource they name. The canonical URL and harmless variants (trailing
// slash, letter case of scheme and host, default port, a URL on the same
// origin below the resource's path) all name it; anything else is
// invalid_target. Without an indicator, the grant's resource applies, or
// the site's default resource.
func (s *Site) resolveResource(values []string, fallback *gate.Resource) (*gate.Resource, *oauth.Error) {
	if len(values) == 0 {
		if fallback != nil {
			return fallback, nil
		}
		return s.Resources[0], nil
	}
	var found *gate.Resource
	for _, v := range values {
		res := s.resourceNamed(v)
		if res == nil || (found != nil && res != found) {
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidTarget, "the resource is not served by this authorization server")
		}
		found = res
	}
	return found, nil
}

func (s *Site) resourceNamed(indicator string) *gate.Resource {
	if len(indicator) > 2048 {
		return nil
	}
	u, err := url.Parse(indicator)
	if err != nil || u.Fragment != "" || u.User != nil || !u.IsAbs() {
		return nil
	}
	origin, err := CanonicalIssuer(u.Scheme + "://" + u.Host)
	if err != nil || origin != s.origin {
		return nil
	}
	p := path.Clean("/" + u.Path)
	var best *gate.Resource
	for _, r := range s.Resources {
		if r.Covers(p) && (best == nil || len(r.Path) > len(best.Path)) {
			best = r
		}
	}
	return best
}

// grantableScopes returns the scopes to grant for a request: the requested
// ones the resource or OpenID Connect offers, in the configured order.
// Unknown scopes are dropped, not an error, as clients often ask for
// everything they saw advertised, or for scopes of other servers
// (offline_access); a request that names none of the resource's scopes
// gets its default ones, so the token is good for the resource.
func grantableScopes(res *gate.Resource, requested string) []string {
	asked := strings.Fields(requested)
	if !slices.ContainsFunc(asked, func(sc string) bool { return slices.Contains(res.Scopes, sc) }) {
		asked = append(asked, res.Scopes...)
	}
	var out []string
	for _, sc := range slices.Concat(res.Scopes, oidcScopes) {
		if slices.Contains(asked, sc) && !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

// serveConsent handles the consent form: Deny ends the flow with
// access_denied, Approve sends the browser to the upstream login.
func (s *Site) serveConsent(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		s.errorPage(w, http.StatusMethodNotAllowed, "Consent is given with the form.")
		return
	}
	form, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	id := form["request"]
	var found *state.Request
	if id != "" && len(id) <= 100 {
		found, _ = s.AS.State.Logins.Request(r.Context(), id)
	}
	if found == nil {
		s.errorPage(w, http.StatusBadRequest, "This authorization request has expired. Start again from the app.")
		return
	}
	req := *found
	if !s.sameBrowser(r, req.Browser) || subtle.ConstantTimeCompare([]byte(form["csrf"]), []byte(req.CSRF)) != 1 {
		s.errorPage(w, http.StatusForbidden, "This form was not sent from the page this server showed you.")
		return
	}
	// The request is used up whatever the decision.
	if err := s.AS.State.Logins.TakeRequest(r.Context(), id); err != nil {
		s.errorPage(w, http.StatusBadRequest, "This authorization request was already answered.")
		return
	}
	switch form["decision"] {
	case "approve":
		s.audit(r.Context(), "consent given", zap.String("client_id", req.ClientID), zap.String("redirect_uri", req.RedirectURI),
			zap.String("resource", req.Resource), zap.Strings("scopes", req.Scopes))
		s.rememberConsent(w, r, &req)
		s.startLogin(w, r, req)
	default:
		s.audit(r.Context(), "consent denied", zap.String("client_id", req.ClientID), zap.String("redirect_uri", req.RedirectURI))
		s.redirectError(w, r, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "the user denied the request"))
	}
}

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

// serveCallback handles the upstream provider's redirect back.
func (s *Site) serveCallback(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || s.AS.Upstream == nil {
		s.errorPage(w, http.StatusMethodNotAllowed, "Unexpected request.")
		return
	}
	q, ok := s.pageForm(w, r)
	if !ok {
		return
	}
	loginState := q["state"]
	if loginState == "" || len(loginState) > 200 {
		s.errorPage(w, http.StatusBadRequest, "The login response is missing its state.")
		return
	}
	// Single use: taken before anything else, so a replayed callback fails.
	login, err := s.AS.State.Logins.TakeLogin(r.Context(), loginState)
	if err != nil {
		s.errorPage(w, http.StatusBadRequest, "This login has expired or was already used. Start again from the app.")
		return
	}
	if !s.sameBrowser(r, login.Request.Browser) {
		s.errorPage(w, http.StatusBadRequest, "This login was started in another browser.")
		return
	}
	req := login.Request
	if q["error"] != "" || q["code"] == "" {
		s.observeLogin(r.Context(), s.AS.Upstream.Name(), "failed", zap.String("client_id", req.ClientID), zap.String("upstream_error", safeName(q["error"])))
		s.redirectError(w, r, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "the login at the identity provider did not complete"))
		return
	}
	id, err := s.AS.Upstream.Exchange(r.Context(), q["code"], login.Verifier, login.Nonce, s.Issuer+pathCallback)
	if err != nil {
		s.observeLogin(r.Context(), s.AS.Upstream.Name(), "failed", zap.String("client_id", req.ClientID), zap.Error(err))
		s.redirectError(w, r, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "the login at the identity provider failed"))
		return
	}
	s.finishLogin(w, r, req, s.AS.Upstream.Name(), id)
}

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

// redirectHost returns the host a redirect URI sends the browser to, or the
// scheme for a private-use URI scheme (an app on this device).
func redirectHost(uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		return "an unknown address"
	}
	// cursor://anysphere.cursor-mcp/… has a host, but no web site
	// answers there: naming it would pass off an app as a site.
	if u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return u.Scheme + ": (an app on this device)"
	}
	return u.Host
}

func hostOf(uri string) string {
	if u, err := url.Parse(uri); err == nil && u.Host != "" {
		return u.Host
	}
	return uri
}

// browser cookie: binds a flow to the browser that started it.

// cookieName is the browser cookie's name, one per issuer: browsers send a
// host's cookies to every port and path of it, so sites on one host (local
// sites on several ports, issuers with paths) would otherwise share one
// cookie and overwrite each other's. https issuers use the __Host- prefix,
// which keeps the cookie to this host, secure and unscoped by Domain.
func cookieName(issuer string) string {
	name := "mcp_auth_" + state.Hash(issuer)[:12]
	if strings.HasPrefix(issuer, "https://") {
		return "__Host-" + name
	}
	return name
}

func (s *Site) cookieName() string { return s.cookie }

// browserID returns the browser's id cookie, setting a new one if needed.
func (s *Site) browserID(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(s.cookieName()); err == nil && len(c.Value) == 43 {
		return c.Value
	}
	id := randomToken()
	http.SetCookie(w, &http.Cookie{
		Name: s.cookieName(), Value: id, Path: "/",
		Secure: strings.HasPrefix(s.Issuer, "https://"), HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	return id
}

// sameBrowser reports whether r comes from the browser whose id hashes to want.
func (s *Site) sameBrowser(r *http.Request, want string) bool {
	c, err := r.Cookie(s.cookieName())
	return err == nil && subtle.ConstantTimeCompare([]byte(state.Hash(c.Value)), []byte(want)) == 1
}

func (s *Site) rememberConsent(w http.ResponseWriter, r *http.Request, req *state.Request) {
	if s.AS.RememberConsent <= 0 {
		return
	}
	if err := s.AS.State.Logins.RememberConsent(r.Context(), req, s.AS.RememberConsent); err != nil {
		s.AS.Logger.Warn("remembering consent failed", zap.Error(err))
	}
}

// consentRemembered reports whether this browser already approved this
// client, redirect URI and resource for at least these scopes.
func (s *Site) consentRemembered(r *http.Request, req *state.Request) bool {
	if s.AS.RememberConsent <= 0 {
		return false
	}
	c, err := s.AS.State.Logins.Consent(r.Context(), req)
	if err != nil {
		return false
	}
	if c.Resource != req.Resource {
		return false
	}
	for _, sc := range req.Scopes {
		if !slices.Contains(c.Scopes, sc) {
			return false
		}
	}
	return true
}

func (s *Site) serverError(w http.ResponseWriter, r *http.Request, what string, err error) {
	if s.AS.Logger != nil {
		s.AS.Logger.Error(what, zap.Error(err))
	}
	if errors.Is(err, storage.ErrNotFound) {
		s.errorPage(w, http.StatusBadRequest, "This request has expired. Start again from the app.")
		return
	}
	s.errorPage(w, http.StatusServiceUnavailable, "The server could not complete this step. Try again.")
}

func (s *Site) logDebug(msg string, fields ...zap.Field) {
	if s.AS.Logger != nil {
		s.AS.Logger.Debug(msg, fields...)
	}
}

// pageForm reads the parameters of a request to a page: the query of a
// GET, the posted form (and only it) of a POST. Like the endpoints' forms,
// no parameter may repeat, so no reader takes another value than this one;
// anything else is answered with an error page.
func (s *Site) pageForm(w http.ResponseWriter, r *http.Request) (map[string]string, bool) {
	values := r.URL.Query()
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
		if err := r.ParseForm(); err != nil {
			s.errorPage(w, http.StatusBadRequest, "The form could not be read.")
			return nil, false
		}
		values = r.PostForm
	}
	form, _, oerr := singleValues(values)
	if oerr != nil {
		s.errorPage(w, http.StatusBadRequest, "The form could not be read: "+oerr.Description+".")
		return nil, false
	}
	return form, true
}
