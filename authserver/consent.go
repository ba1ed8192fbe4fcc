package authserver

import (
	"crypto/subtle"
	"net/http"
	"slices"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"go.uber.org/zap"
)

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
