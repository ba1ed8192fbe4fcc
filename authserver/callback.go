package authserver

import (
	"net/http"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/upstream"
	"go.uber.org/zap"
)

// callbackEndpoint takes the user back from the upstream provider.
type callbackEndpoint struct {
	issuer   string
	upstream upstream.Redirector
	logins   *state.Logins
	browser  browserCookie
	signin   *signInFlow
	log      *events
}

// ServeHTTP handles the provider's redirect back to GET
// /authorize/callback: the login state is taken once, the provider's code
// exchanged for the user's identity, and the login finished.
func (e *callbackEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet || e.upstream == nil {
		errorPage(w, http.StatusMethodNotAllowed, "Unexpected request.")
		return
	}
	q, ok := pageForm(w, r)
	if !ok {
		return
	}
	loginState := q["state"]
	if loginState == "" || len(loginState) > 200 {
		errorPage(w, http.StatusBadRequest, "The login response is missing its state.")
		return
	}
	// Single use: taken before anything else, so a replayed callback fails.
	login, err := e.logins.TakeLogin(r.Context(), loginState)
	if err != nil {
		errorPage(w, http.StatusBadRequest, "This login has expired or was already used. Start again from the app.")
		return
	}
	if !e.browser.same(r, login.Request.Browser) {
		errorPage(w, http.StatusBadRequest, "This login was started in another browser.")
		return
	}
	req := login.Request
	if q["error"] != "" || q["code"] == "" {
		e.log.login(r.Context(), e.upstream.Name(), "failed", zap.String("client_id", req.ClientID), zap.String("upstream_error", safeName(q["error"])))
		redirectError(w, r, e.issuer, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "the login at the identity provider did not complete"))
		return
	}
	id, err := e.upstream.Exchange(r.Context(), q["code"], login.Verifier, login.Nonce, e.issuer+pathCallback)
	if err != nil {
		e.log.login(r.Context(), e.upstream.Name(), "failed", zap.String("client_id", req.ClientID), zap.Error(err))
		redirectError(w, r, e.issuer, req.RedirectURI, req.State, oauth.NewError(http.StatusForbidden, oauth.AccessDenied, "the login at the identity provider failed"))
		return
	}
	e.signin.finish(w, r, req, e.upstream.Name(), id)
}
