package authserver

import (
	"net/http"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"go.uber.org/zap"
)

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
