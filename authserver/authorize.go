package authserver

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// authorizeEndpoint validates authorization requests and asks the user's
// consent.
type authorizeEndpoint struct {
	issuer string
	// limit limits new authorization requests per source.
	limit     *RateLimiter
	sources   sources
	directory *clientDirectory
	resources *resourceSet
	logins    *state.Logins
	browser   browserCookie
	consent   *consentMemory
	signin    *signInFlow
	// descriptions are what the consent page says of scopes.
	descriptions map[string]string
	// upstreamAccess, if set, is what it says of the user's account at
	// the identity provider that backends use.
	upstreamAccess *UpstreamAccess
	log            *events
}

// ServeHTTP handles GET /authorize (OAuth 2.1 section 4.1.1). The
// client and its redirect URI are checked first; until both are trusted,
// errors are shown on a page and never redirected.
func (e *authorizeEndpoint) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", "GET")
		errorPage(w, http.StatusMethodNotAllowed, "The authorization endpoint only accepts GET.")
		return
	}
	// Every request below may fetch a metadata document and stores a
	// pending request: limited per source before any of that work.
	if l := e.limit; l != nil {
		if wait := l.Reserve(e.sources.of(r)); wait > 0 {
			waitPage(w, http.StatusTooManyRequests, wait, "Too many sign-in attempts came from your network.")
			return
		}
	}
	q, problem := parseAuthorizationQuery(r.URL.RawQuery)
	if q == nil {
		errorPage(w, http.StatusBadRequest, problem)
		return
	}
	client, err := e.directory.lookup(r.Context(), q.clientID)
	var document *clients.MetadataError
	switch {
	case errors.Is(err, errBlockedClient):
		errorPage(w, http.StatusForbidden, "The app that sent you here has been blocked by this server's operator.")
		return
	case errors.Is(err, errClientUnreadable):
		serverError(w, e.log.logger, "authorization request: looking up the client", err)
		return
	case errors.As(err, &document) && document.RetryAfter > 0:
		// The client is not verified, so nothing may be redirected to it,
		// temporarily_unavailable included (RFC 6749 section 4.1.2.1): the
		// user is told, with a 503 and Retry-After, that this will pass.
		waitPage(w, http.StatusServiceUnavailable, document.RetryAfter,
			"The app that sent you here describes itself in a document on its own site, which could not be fetched just now ("+document.Description+").")
		return
	case document != nil:
		errorPage(w, http.StatusBadRequest,
			"The app that sent you here describes itself in a document on its own site, which cannot be used ("+document.Description+").")
		return
	case err != nil:
		e.log.debug("authorization request for an unknown client", zap.Error(err))
		errorPage(w, http.StatusBadRequest, "The app that sent you here is not registered with this server.")
		return
	}
	redirectURI, ok := clients.MatchRedirectURI(client.RedirectURIs, q.redirectURI)
	if !ok {
		errorPage(w, http.StatusBadRequest, "The app asked to return you to an address it did not register.")
		return
	}

	// From here on, errors go back to the client.
	clientState, params := q.state, q.params
	fail := func(oerr *oauth.Error) { redirectError(w, r, e.issuer, redirectURI, clientState, oerr) }
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
	res, oerr := e.resources.resolve(q.resources, nil)
	if oerr != nil {
		fail(oerr)
		return
	}
	if jkt, ok := params["dpop_jkt"]; ok && !validJKT(jkt) {
		fail(oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "dpop_jkt is not a JWK SHA-256 thumbprint"))
		return
	}

	req := state.Request{
		ClientID:      client.ClientID,
		RedirectURI:   redirectURI,
		State:         clientState,
		CodeChallenge: challenge,
		Nonce:         params["nonce"],
		Resource:      res.URL,
		Scopes:        e.resources.requestedScopes(res, params["scope"]),
		DPoPJKT:       params["dpop_jkt"],
		Browser:       state.Hash(e.browser.id(w, r)),
		CSRF:          randomToken(),
	}
	if e.consent.remembered(r, &req) {
		e.signin.start(w, r, req)
		return
	}
	id := randomToken()
	if err := e.logins.SaveRequest(r.Context(), id, &req); err != nil {
		serverError(w, e.log.logger, "saving authorization request", err)
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
	page := map[string]any{
		"Title":        "Authorize " + name,
		"ClientName":   name,
		"ClientID":     client.ClientID,
		"Verified":     verified,
		"ClientHost":   clientHost,
		"RedirectHost": redirectHost(redirectURI),
		"Loopback":     loopback,
		"Resource":     res.URL,
		"ResourceHost": hostOf(res.URL),
		"Scopes":       describeScopes(req.Scopes, e.descriptions),
		"Action":       e.issuer + pathConsent,
		"Request":      id,
		"CSRF":         req.CSRF,
	}
	if a := e.upstreamAccess; a != nil {
		page["UpstreamAccount"] = a.Account
		page["UpstreamScopes"] = describeScopes(a.Scopes, a.Descriptions)
	}
	renderPage(w, http.StatusOK, "consent", page)
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

// scopeLine is a scope as the consent page shows it: the operator's
// description, if any, with the scope's name alongside.
type scopeLine struct{ Name, Description string }

func describeScopes(scopes []string, descriptions map[string]string) []scopeLine {
	lines := make([]scopeLine, len(scopes))
	for i, sc := range scopes {
		lines[i] = scopeLine{Name: sc, Description: descriptions[sc]}
	}
	return lines
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
