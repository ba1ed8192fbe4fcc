package authserver

import (
	"crypto/subtle"
	"net/http"
	"slices"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"go.uber.org/zap"
)

// consentEndpoint takes the user's answer on the consent page.
type consentEndpoint struct {
	issuer  string
	logins  *state.Logins
	browser browserCookie
	consent *consentMemory
	signin  *signInFlow
	log     *events
}

// ServeHTTP handles the consent form: Deny ends the flow with
// access_denied, Approve sends the browser to the upstream login.
func (e *consentEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", "POST")
		errorPage(w, http.StatusMethodNotAllowed, "Consent is given with the form.")
		return
	}
	form, ok := pageForm(w, r)
	if !ok {
		return
	}
	id := form["request"]
	var found *state.Request
	if id != "" && len(id) <= 100 {
		found, _ = e.logins.Request(r.Context(), id)
	}
	if found == nil {
		errorPage(w, http.StatusBadRequest, "This authorization request has expired. Start again from the app.")
		return
	}
	req := *found
	if !e.browser.same(r, req.Browser) || subtle.ConstantTimeCompare([]byte(form["csrf"]), []byte(req.CSRF)) != 1 {
		errorPage(w, http.StatusForbidden, "This form was not sent from the page this server showed you.")
		return
	}
	// The request is used up whatever the decision.
	if err := e.logins.TakeRequest(r.Context(), id); err != nil {
		errorPage(w, http.StatusBadRequest, "This authorization request was already answered.")
		return
	}
	switch form["decision"] {
	case "approve":
		e.log.record(r.Context(), "consent given", zap.String("client_id", req.ClientID), zap.String("redirect_uri", req.RedirectURI),
			zap.String("resource", req.Resource), zap.Strings("scopes", req.Scopes))
		e.consent.remember(r, &req)
		e.signin.start(w, r, req)
	default:
		e.log.record(r.Context(), "consent denied", zap.String("client_id", req.ClientID), zap.String("redirect_uri", req.RedirectURI))
		redirectError(w, r, e.issuer, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "the user denied the request"))
	}
}

// consentMemory remembers, for a while, which clients a browser approved.
type consentMemory struct {
	logins *state.Logins
	// lifetime is how long an approval is remembered; zero asks every time.
	lifetime time.Duration
	logger   *zap.Logger
}

// remember records the browser's approval of req.
func (c *consentMemory) remember(r *http.Request, req *state.Request) {
	if c.lifetime <= 0 {
		return
	}
	if err := c.logins.RememberConsent(r.Context(), req, c.lifetime); err != nil {
		c.logger.Warn("remembering consent failed", zap.Error(err))
	}
}

// remembered reports whether this browser already approved this
// client, redirect URI and resource for at least these scopes.
func (c *consentMemory) remembered(r *http.Request, req *state.Request) bool {
	if c.lifetime <= 0 {
		return false
	}
	approved, err := c.logins.Consent(r.Context(), req)
	if err != nil {
		return false
	}
	if approved.Resource != req.Resource {
		return false
	}
	for _, sc := range req.Scopes {
		if !slices.Contains(approved.Scopes, sc) {
			return false
		}
	}
	return true
}
