package fakeidp

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Client credentials the GitHub fake accepts, shaped like an OAuth app's.
const (
	githubClientID     = "Ov23liFakeClientId01"
	githubClientSecret = "0123456789abcdef0123456789abcdef01234567"
)

// GitHubAPIPrefix is the path of the GitHub fake's REST API under its
// base URL, as on GitHub Enterprise Server.
const GitHubAPIPrefix = "/api/v3"

const (
	githubCodeTTL = 10 * time.Minute
	githubDocs    = "https://docs.github.com/apps/managing-oauth-apps/troubleshooting-oauth-app-access-token-request-errors/"
)

// GitHubEmail is one of a GitHub user's email addresses.
type GitHubEmail struct {
	Email    string
	Primary  bool
	Verified bool
	// Visibility is "public", "private", or "" (null), as GitHub reports
	// it. The first public address is also /user's "email".
	Visibility string
}

// GitHubUser is the account the GitHub fake logs in.
type GitHubUser struct {
	ID        int64
	Login     string
	Name      string // "" is served as null, as for users who set none
	AvatarURL string
	Emails    []GitHubEmail
	// Orgs are the logins of the user's organizations. /user/orgs lists
	// them only to tokens with the read:org scope (the fake treats every
	// membership as private).
	Orgs []string
}

// GitHub is a fake of github.com and its REST API, serving the real
// response shapes: /login/oauth/authorize (approves at once, or denies,
// see Deny), /login/oauth/access_token (errors as 200 with an "error"
// member), and under APIURL /user, /user/emails and /user/orgs
// (paginated with Link headers). Methods are safe for concurrent use; the
// exported fields must not be changed.
type GitHub struct {
	// BaseURL stands for https://github.com: http://127.0.0.1:PORT.
	BaseURL string
	// APIURL stands for https://api.github.com: BaseURL + GitHubAPIPrefix.
	APIURL string
	// ClientID and ClientSecret are the only client credentials accepted.
	ClientID, ClientSecret string

	srv *server

	// guarded by srv.mu:
	user      GitHubUser
	codes     map[string]*githubGrant
	tokens    map[string]*githubGrant // access token → grant
	refreshes map[string]*githubGrant // refresh token → grant
	expiring  time.Duration           // user tokens' lifetime; 0: they never expire
	issued    []GitHubToken
	apiTokens map[string][]string // API path → tokens it was called with
}

// GitHubToken is a user access token the fake issued.
type GitHubToken struct {
	Login        string
	AccessToken  string
	RefreshToken string
}

type githubGrant struct {
	redirectURI string
	challenge   string
	scopes      []string
	user        GitHubUser
	expires     time.Time
	// tokenExpires is when an access token expires (zero: never).
	tokenExpires time.Time
}

// NewGitHub starts a fake GitHub that logs in user. It is closed when the
// test ends.
func NewGitHub(t testing.TB, user GitHubUser) *GitHub {
	t.Helper()
	g := &GitHub{
		ClientID:     githubClientID,
		ClientSecret: githubClientSecret,
		srv:          newServer(t),
		user:         user,
		codes:        map[string]*githubGrant{},
		tokens:       map[string]*githubGrant{},
		refreshes:    map[string]*githubGrant{},
		apiTokens:    map[string][]string{},
	}
	ts := httptest.NewServer(http.HandlerFunc(g.serveHTTP))
	t.Cleanup(ts.Close)
	g.BaseURL = ts.URL
	g.APIURL = ts.URL + GitHubAPIPrefix
	return g
}

// SetUser changes the user that subsequent logins log in.
func (g *GitHub) SetUser(u GitHubUser) {
	g.srv.mu.Lock()
	defer g.srv.mu.Unlock()
	g.user = u
}

// ExpireTokens makes the fake behave like a GitHub app with expiring user
// tokens: access tokens issued from now on expire after lifetime and come
// with a refresh token (single use, as GitHub's). Zero goes back to
// tokens that never expire, as an OAuth app's.
func (g *GitHub) ExpireTokens(lifetime time.Duration) {
	g.srv.mu.Lock()
	defer g.srv.mu.Unlock()
	g.expiring = lifetime
}

// Issued returns the user access tokens the fake issued, in order.
func (g *GitHub) Issued() []GitHubToken {
	g.srv.mu.Lock()
	defer g.srv.mu.Unlock()
	return slices.Clone(g.issued)
}

// APITokens returns the access tokens the API path (such as
// GitHubAPIPrefix+"/user") was called with, in order, valid or not.
func (g *GitHub) APITokens(path string) []string {
	g.srv.mu.Lock()
	defer g.srv.mu.Unlock()
	return slices.Clone(g.apiTokens[path])
}

// Valid reports whether the API accepts accessToken now.
func (g *GitHub) Valid(accessToken string) bool {
	g.srv.mu.Lock()
	defer g.srv.mu.Unlock()
	grant := g.tokens[accessToken]
	return grant != nil && (grant.tokenExpires.IsZero() || time.Now().Before(grant.tokenExpires))
}

// RevocationPath is the path of the endpoint that deletes an app token.
func (g *GitHub) RevocationPath() string {
	return GitHubAPIPrefix + "/applications/" + g.ClientID + "/token"
}

// Deny makes /login/oauth/authorize redirect back with
// error=access_denied, as when the user clicks "Cancel", until called with
// false.
func (g *GitHub) Deny(deny bool) { g.srv.setDeny(deny) }

// SetRedirectURIs registers the callback URLs authorize accepts. With none
// registered (the default), any absolute URI is accepted.
func (g *GitHub) SetRedirectURIs(uris ...string) { g.srv.setRedirectURIs(uris) }

// Handle replaces the handler for path (e.g. "/login/oauth/access_token",
// GitHubAPIPrefix+"/user/orgs"). A nil h restores the fake's own handler.
// Requests are counted either way.
func (g *GitHub) Handle(path string, h http.Handler) { g.srv.handle(path, h) }

// Requests returns how many requests path has received.
func (g *GitHub) Requests(path string) int { return g.srv.requests(path) }

// TokenRequests returns how many requests /login/oauth/access_token has
// received.
func (g *GitHub) TokenRequests() int { return g.Requests("/login/oauth/access_token") }

func (g *GitHub) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if h := g.srv.dispatch(r); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case "/login/oauth/authorize":
		g.serveAuthorize(w, r)
	case "/login/oauth/access_token":
		g.serveAccessToken(w, r)
	case GitHubAPIPrefix + "/user":
		g.serveAPI(w, r, g.serveUser)
	case GitHubAPIPrefix + "/user/emails":
		g.serveAPI(w, r, g.serveEmails)
	case GitHubAPIPrefix + "/user/orgs":
		g.serveAPI(w, r, g.serveOrgs)
	case g.RevocationPath():
		g.serveDeleteToken(w, r)
	default:
		g.apiError(w, http.StatusNotFound, "Not Found")
	}
}

func (g *GitHub) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	g.srv.mu.Lock()
	deny, allowed, user := g.srv.deny, g.srv.redirects, g.user
	g.srv.mu.Unlock()

	if q.Get("client_id") != g.ClientID {
		// GitHub shows a 404 page for unknown applications.
		g.srv.logf("github authorize: unknown client_id %q", q.Get("client_id"))
		http.NotFound(w, r)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if err := checkRedirectURI(redirectURI, allowed); err != nil {
		g.srv.logf("github authorize: %v", err)
		http.Error(w, "The redirect_uri is not associated with this application.", http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	fail := func(code, desc, anchor string) {
		g.srv.logf("github authorize: %s: %s", code, desc)
		redirectWith(w, r, redirectURI, url.Values{
			"error": {code}, "error_description": {desc},
			"error_uri": {"https://docs.github.com/apps/managing-oauth-apps/troubleshooting-authorization-request-errors/#" + anchor},
			"state":     {state},
		})
	}
	// GitHub accepts only S256. The fake also insists on PKCE being used
	// at all, since the code under test must always send it.
	switch {
	case q.Get("code_challenge_method") != "S256" || len(q.Get("code_challenge")) != 43:
		fail("invalid_request", "PKCE with code_challenge_method=S256 is required.", "invalid-request")
		return
	case deny:
		fail("access_denied", "The user has denied your application access.", "access-denied")
		return
	}

	code := randomHex(10)
	g.srv.mu.Lock()
	g.codes[code] = &githubGrant{
		redirectURI: redirectURI,
		challenge:   q.Get("code_challenge"),
		scopes:      strings.FieldsFunc(q.Get("scope"), func(r rune) bool { return r == ' ' || r == ',' }),
		user:        user,
		expires:     time.Now().Add(githubCodeTTL),
	}
	g.srv.mu.Unlock()
	redirectWith(w, r, redirectURI, url.Values{"code": {code}, "state": {state}})
}

// serveAccessToken mirrors GitHub's token endpoint: parameters in a form
// or JSON body (or the query), errors as 200 with an "error" member, and
// the response in JSON only when asked for with Accept.
func (g *GitHub) serveAccessToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.NotFound(w, r)
		return
	}
	params, err := tokenParams(w, r)
	if err != nil {
		http.Error(w, "Problems parsing request body", http.StatusBadRequest)
		return
	}
	wantJSON := strings.Contains(r.Header.Get("Accept"), "application/json")
	reply := func(v map[string]any) {
		if wantJSON {
			writeJSON(w, http.StatusOK, v)
			return
		}
		form := url.Values{}
		for k, s := range v {
			form.Set(k, fmt.Sprint(s))
		}
		w.Header().Set("Content-Type", "application/x-www-form-urlencoded; charset=utf-8")
		_, _ = w.Write([]byte(form.Encode()))
	}
	fail := func(code, desc, anchor string) {
		g.srv.logf("github access_token: %s: %s", code, desc)
		reply(map[string]any{"error": code, "error_description": desc, "error_uri": githubDocs + "#" + anchor})
	}

	id, secret := params.Get("client_id"), params.Get("client_secret")
	if bid, bsecret, ok := r.BasicAuth(); ok {
		id, secret = bid, bsecret
	}
	if !equal(id, g.ClientID) || !equal(secret, g.ClientSecret) {
		fail("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.", "incorrect-client-credentials")
		return
	}
	if params.Get("grant_type") == "refresh_token" {
		g.srv.mu.Lock()
		grant := g.refreshes[params.Get("refresh_token")]
		delete(g.refreshes, params.Get("refresh_token"))
		g.srv.mu.Unlock()
		if grant == nil {
			fail("bad_refresh_token", "The refresh token passed is incorrect or expired.", "bad-refresh-token")
			return
		}
		reply(g.issue(grant))
		return
	}
	code := params.Get("code")
	g.srv.mu.Lock()
	grant := g.codes[code]
	delete(g.codes, code)
	g.srv.mu.Unlock()
	switch {
	case grant == nil || time.Now().After(grant.expires):
		fail("bad_verification_code", "The code passed is incorrect or expired.", "bad-verification-code")
		return
	case params.Has("redirect_uri") && params.Get("redirect_uri") != grant.redirectURI:
		fail("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.", "redirect-uri-mismatch2")
		return
	case !pkceMatches(params.Get("code_verifier"), grant.challenge):
		// GitHub's exact answer to a wrong verifier is not documented;
		// the code is unusable either way, so say so the same way.
		fail("bad_verification_code", "The code passed is incorrect or expired.", "bad-verification-code")
		return
	}

	reply(g.issue(grant))
}

// issue issues a user token for a copy of grant, in the shape of the
// token endpoint's answer: with an expiry and a refresh token when tokens
// expire (GitHub app user tokens: ghu_, ghr_), without (OAuth app: gho_).
func (g *GitHub) issue(grant *githubGrant) map[string]any {
	g.srv.mu.Lock()
	defer g.srv.mu.Unlock()
	issued := *grant
	out := map[string]any{"token_type": "bearer", "scope": strings.Join(grant.scopes, ",")}
	tok := GitHubToken{Login: grant.user.Login}
	if g.expiring == 0 {
		tok.AccessToken = "gho_" + randomAlnum(36)
		issued.tokenExpires = time.Time{}
	} else {
		tok.AccessToken, tok.RefreshToken = "ghu_"+randomAlnum(36), "ghr_"+randomAlnum(76)
		out["refresh_token"] = tok.RefreshToken
		out["expires_in"] = int(g.expiring / time.Second)
		out["refresh_token_expires_in"] = 15724800
		issued.tokenExpires = time.Now().Add(g.expiring)
		g.refreshes[tok.RefreshToken] = &issued
	}
	out["access_token"] = tok.AccessToken
	g.tokens[tok.AccessToken] = &issued
	g.issued = append(g.issued, tok)
	return out
}

// serveDeleteToken deletes an app token: the app authenticates with Basic
// auth and names the access token, which stops working with the refresh
// token issued with it. 204, or 404 for an unknown token.
func (g *GitHub) serveDeleteToken(w http.ResponseWriter, r *http.Request) {
	id, secret, ok := r.BasicAuth()
	if r.Method != http.MethodDelete || !ok || !equal(id, g.ClientID) || !equal(secret, g.ClientSecret) {
		g.apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody)).Decode(&body); err != nil {
		g.apiError(w, http.StatusUnprocessableEntity, "Invalid request.")
		return
	}
	g.srv.mu.Lock()
	defer g.srv.mu.Unlock()
	grant := g.tokens[body.AccessToken]
	if grant == nil {
		g.apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	for _, m := range []map[string]*githubGrant{g.tokens, g.refreshes} {
		for tok, other := range m {
			if other == grant {
				delete(m, tok)
			}
		}
	}
	w.WriteHeader(http.StatusNoContent)
}

// tokenParams reads the token request's parameters from a JSON or form
// body, falling back to the query string as GitHub does.
func tokenParams(w http.ResponseWriter, r *http.Request) (url.Values, error) {
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/json" {
		var body map[string]any
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			return nil, err
		}
		params := r.URL.Query()
		for k, v := range body {
			if s, ok := v.(string); ok {
				params.Set(k, s)
			}
		}
		return params, nil
	}
	if err := r.ParseForm(); err != nil {
		return nil, err
	}
	return r.Form, nil
}

// serveAPI authenticates a REST API request and passes the grant of its
// token to serve.
func (g *GitHub) serveAPI(w http.ResponseWriter, r *http.Request, serve func(http.ResponseWriter, *http.Request, *githubGrant)) {
	if r.Method != http.MethodGet {
		g.apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	if v := r.Header.Get("X-GitHub-Api-Version"); v != "" && v != "2022-11-28" {
		g.apiError(w, http.StatusBadRequest, fmt.Sprintf("API version %s is not supported.", v))
		return
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Bearer ")
	if !ok {
		tok, ok = strings.CutPrefix(auth, "token ")
	}
	g.srv.mu.Lock()
	grant := g.tokens[tok]
	g.apiTokens[r.URL.Path] = append(g.apiTokens[r.URL.Path], tok)
	g.srv.mu.Unlock()
	if ok && grant != nil && !grant.tokenExpires.IsZero() && time.Now().After(grant.tokenExpires) {
		grant = nil
	}
	if !ok || grant == nil {
		g.srv.logf("github api %s: bad credentials", r.URL.Path)
		g.apiError(w, http.StatusUnauthorized, "Bad credentials")
		return
	}
	w.Header().Set("X-OAuth-Scopes", strings.Join(grant.scopes, ", "))
	serve(w, r, grant)
}

func (g *GitHub) apiError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, map[string]string{
		"message":           msg,
		"documentation_url": "https://docs.github.com/rest",
		"status":            strconv.Itoa(status),
	})
}

func (g *GitHub) serveUser(w http.ResponseWriter, _ *http.Request, grant *githubGrant) {
	u := grant.user
	var name, email any // null unless set
	if u.Name != "" {
		name = u.Name
	}
	for _, e := range u.Emails {
		if e.Visibility == "public" {
			email = e.Email
			break
		}
	}
	api := "https://api.github.com/users/" + u.Login
	writeJSON(w, http.StatusOK, map[string]any{
		"login":               u.Login,
		"id":                  u.ID,
		"node_id":             base64.StdEncoding.EncodeToString([]byte("04:User" + strconv.FormatInt(u.ID, 10))),
		"avatar_url":          u.AvatarURL,
		"gravatar_id":         "",
		"url":                 api,
		"html_url":            "https://github.com/" + u.Login,
		"followers_url":       api + "/followers",
		"following_url":       api + "/following{/other_user}",
		"gists_url":           api + "/gists{/gist_id}",
		"starred_url":         api + "/starred{/owner}{/repo}",
		"subscriptions_url":   api + "/subscriptions",
		"organizations_url":   api + "/orgs",
		"repos_url":           api + "/repos",
		"events_url":          api + "/events{/privacy}",
		"received_events_url": api + "/received_events",
		"type":                "User",
		"user_view_type":      "private",
		"site_admin":          false,
		"name":                name,
		"company":             nil,
		"blog":                "",
		"location":            nil,
		"email":               email,
		"hireable":            nil,
		"bio":                 nil,
		"twitter_username":    nil,
		"notification_email":  email,
		"public_repos":        2,
		"public_gists":        0,
		"followers":           1,
		"following":           0,
		"created_at":          "2011-01-25T18:44:36Z",
		"updated_at":          "2024-05-01T12:00:00Z",
	})
}

func (g *GitHub) serveEmails(w http.ResponseWriter, _ *http.Request, grant *githubGrant) {
	if !slices.Contains(grant.scopes, "user:email") && !slices.Contains(grant.scopes, "user") {
		g.apiError(w, http.StatusNotFound, "Not Found")
		return
	}
	out := []map[string]any{}
	for _, e := range grant.user.Emails {
		var vis any
		if e.Visibility != "" {
			vis = e.Visibility
		}
		out = append(out, map[string]any{"email": e.Email, "primary": e.Primary, "verified": e.Verified, "visibility": vis})
	}
	writeJSON(w, http.StatusOK, out)
}

// serveOrgs lists the user's organizations a page at a time (per_page
// default 30, at most 100), with a Link header like GitHub's.
func (g *GitHub) serveOrgs(w http.ResponseWriter, r *http.Request, grant *githubGrant) {
	var orgs []string
	if slices.Contains(grant.scopes, "read:org") || slices.Contains(grant.scopes, "admin:org") {
		orgs = grant.user.Orgs
	}
	q := r.URL.Query()
	perPage, err := strconv.Atoi(q.Get("per_page"))
	if err != nil || perPage < 1 {
		perPage = 30
	}
	perPage = min(perPage, 100)
	page, err := strconv.Atoi(q.Get("page"))
	if err != nil || page < 1 {
		page = 1
	}
	last := max(1, (len(orgs)+perPage-1)/perPage)

	var links []string
	link := func(p int, rel string) {
		links = append(links, fmt.Sprintf(`<%s/user/orgs?per_page=%d&page=%d>; rel=%q`, g.APIURL, perPage, p, rel))
	}
	if page > 1 {
		link(page-1, "prev")
	}
	if page < last {
		link(page+1, "next")
		link(last, "last")
	}
	if page > 1 {
		link(1, "first")
	}
	if len(links) > 0 {
		w.Header().Set("Link", strings.Join(links, ", "))
	}

	out := []map[string]any{}
	for i := (page - 1) * perPage; i < min(page*perPage, len(orgs)); i++ {
		login := orgs[i]
		api := "https://api.github.com/orgs/" + login
		out = append(out, map[string]any{
			"login":              login,
			"id":                 1000 + i,
			"node_id":            base64.StdEncoding.EncodeToString([]byte("012:Organization" + strconv.Itoa(1000+i))),
			"url":                api,
			"repos_url":          api + "/repos",
			"events_url":         api + "/events",
			"hooks_url":          api + "/hooks",
			"issues_url":         api + "/issues",
			"members_url":        api + "/members{/member}",
			"public_members_url": api + "/public_members{/member}",
			"avatar_url":         "https://avatars.githubusercontent.com/u/" + strconv.Itoa(1000+i) + "?v=4",
			"description":        nil,
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// randomHex returns 2n random hex digits.
func randomHex(n int) string {
	const digits = "0123456789abcdef"
	return randomFrom(digits, 2*n)
}

// randomAlnum returns n random letters and digits.
func randomAlnum(n int) string {
	return randomFrom("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", n)
}

// randomFrom returns n characters picked at random from alphabet (with a
// slight modulo bias, which does not matter for test tokens).
func randomFrom(alphabet string, n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b)
}
