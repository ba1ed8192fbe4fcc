package fakeidp

import (
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

// Client credentials the OIDC and Google fakes accept.
const (
	oidcClientID     = "fake-oidc-client"
	oidcClientSecret = "fake-oidc-secret"
)

// Lifetimes of what the OIDC fake issues.
const (
	codeTTL    = time.Minute
	idTokenTTL = time.Hour
)

// User is the account an OIDC or Google fake logs in. Empty fields are
// left out of the ID token and userinfo response.
type User struct {
	Subject           string
	Email             string
	EmailVerified     bool
	Name              string
	PreferredUsername string
	Picture           string
	// HostedDomain is Google's "hd" claim (Workspace domain); Google fake
	// only.
	HostedDomain string
}

// OIDCPaths are the URL paths of an OIDC fake's endpoints, for Handle and
// Requests. Discovery is always /.well-known/openid-configuration.
type OIDCPaths struct {
	Authorize, Token, Userinfo, JWKS string
}

// DiscoveryPath is the path of the discovery document under the issuer.
const DiscoveryPath = "/.well-known/openid-configuration"

// OIDC is a fake OpenID Connect provider. Its /authorize endpoint approves
// every valid request at once for the configured user (or denies it, see
// Deny), and its token endpoint issues RS256 ID tokens signed with a key
// published at its JWKS endpoint. Methods are safe for concurrent use;
// the exported fields must not be changed.
type OIDC struct {
	// URL is the issuer and base URL, http://127.0.0.1:PORT.
	URL string
	// ClientID and ClientSecret are the only client credentials accepted,
	// with client_secret_basic or client_secret_post.
	ClientID, ClientSecret string
	// Paths are the endpoints' paths under URL.
	Paths OIDCPaths

	srv    *server
	google bool

	// guarded by srv.mu:
	user          User
	key           *rsa.PrivateKey
	kid           string
	codes         map[string]*oidcGrant
	tokens        map[string]User       // access token → user
	refreshes     map[string]*oidcGrant // refresh token → grant
	issuedFrom    map[string]string     // access token → refresh token
	revoked       []string
	editClaims    func(map[string]any)
	editDiscovery func(map[string]any)
	signer        func(map[string]any) (string, error)
}

// oidcGrant is an issued authorization code.
type oidcGrant struct {
	redirectURI string
	challenge   string
	nonce       string
	scope       string
	user        User
	expires     time.Time
	// offline asks for a refresh token: the offline_access scope, or
	// Google's access_type=offline.
	offline bool
}

// NewOIDC starts a fake OpenID Connect provider that logs in user. It is
// closed when the test ends.
func NewOIDC(t testing.TB, user User) *OIDC {
	return newOIDC(t, user, false, OIDCPaths{
		Authorize: "/authorize", Token: "/token", Userinfo: "/userinfo", JWKS: "/jwks",
	})
}

// NewGoogle starts a fake of Google's OpenID Connect provider that logs in
// user: Google's endpoint paths, discovery fields, ID-token claims (azp,
// at_hash, given/family name, hd) and "ya29." access tokens. Point
// upstream.GoogleConfig.Issuer at its URL.
func NewGoogle(t testing.TB, user User) *OIDC {
	return newOIDC(t, user, true, OIDCPaths{
		Authorize: "/o/oauth2/v2/auth", Token: "/token", Userinfo: "/v1/userinfo", JWKS: "/oauth2/v3/certs",
	})
}

func newOIDC(t testing.TB, user User, google bool, paths OIDCPaths) *OIDC {
	t.Helper()
	o := &OIDC{
		ClientID:     oidcClientID,
		ClientSecret: oidcClientSecret,
		Paths:        paths,
		srv:          newServer(t),
		google:       google,
		user:         user,
		codes:        map[string]*oidcGrant{},
		tokens:       map[string]User{},
		refreshes:    map[string]*oidcGrant{},
		issuedFrom:   map[string]string{},
	}
	o.RotateKey()
	ts := httptest.NewServer(http.HandlerFunc(o.serveHTTP))
	t.Cleanup(ts.Close)
	o.URL = ts.URL
	return o
}

// SetUser changes the user that subsequent logins log in.
func (o *OIDC) SetUser(u User) {
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	o.user = u
}

// Deny makes /authorize redirect back with error=access_denied, as when
// the user clicks "Cancel", until called with false.
func (o *OIDC) Deny(deny bool) { o.srv.setDeny(deny) }

// SetRedirectURIs registers the redirect URIs /authorize accepts. With
// none registered (the default), any absolute URI is accepted.
func (o *OIDC) SetRedirectURIs(uris ...string) { o.srv.setRedirectURIs(uris) }

// RotateKey replaces the signing key with a fresh one under a new kid, as
// providers do periodically; the JWKS then publishes only the new key.
func (o *OIDC) RotateKey() {
	key := NewRSAKey(o.srv.t)
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	o.key = key
	o.kid = "fake-key-" + randomString(6)
}

// SigningKey returns the key ID tokens are currently signed with.
func (o *OIDC) SigningKey() *rsa.PrivateKey {
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	return o.key
}

// KeyID returns the kid of the current signing key.
func (o *OIDC) KeyID() string {
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	return o.kid
}

// SetIDTokenSigner makes the token endpoint produce ID tokens with sign
// (given the final claims) instead of its own key: for tokens signed with
// an unpublished key (see SignRS256), with HS256 or alg none. nil restores
// normal signing.
func (o *OIDC) SetIDTokenSigner(sign func(claims map[string]any) (string, error)) {
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	o.signer = sign
}

// EditIDToken makes the token endpoint pass each ID token's claims through
// edit before signing: to change aud, iss, nonce, exp, or to drop profile
// claims so that the client must ask the userinfo endpoint. nil restores
// the normal claims.
func (o *OIDC) EditIDToken(edit func(claims map[string]any)) {
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	o.editClaims = edit
}

// EditDiscovery makes the discovery endpoint pass its document through
// edit: to change the issuer, drop endpoints, and so on. nil restores the
// normal document.
func (o *OIDC) EditDiscovery(edit func(doc map[string]any)) {
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	o.editDiscovery = edit
}

// Handle replaces the handler for path (e.g. "/token", DiscoveryPath), to
// serve garbage, huge or slow responses. A nil h restores the fake's own
// handler. Requests are counted either way.
func (o *OIDC) Handle(path string, h http.Handler) { o.srv.handle(path, h) }

// Requests returns how many requests path has received.
func (o *OIDC) Requests(path string) int { return o.srv.requests(path) }

// TokenRequests returns how many requests the token endpoint has received.
func (o *OIDC) TokenRequests() int { return o.Requests(o.Paths.Token) }

// UserinfoRequests returns how many requests the userinfo endpoint has
// received.
func (o *OIDC) UserinfoRequests() int { return o.Requests(o.Paths.Userinfo) }

// JWKSRequests returns how many requests the JWKS endpoint has received.
func (o *OIDC) JWKSRequests() int { return o.Requests(o.Paths.JWKS) }

func (o *OIDC) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if h := o.srv.dispatch(r); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case DiscoveryPath:
		o.serveDiscovery(w, r)
	case o.Paths.Authorize:
		o.serveAuthorize(w, r)
	case o.Paths.Token:
		o.serveToken(w, r)
	case o.Paths.Userinfo:
		o.serveUserinfo(w, r)
	case o.Paths.JWKS:
		o.serveJWKS(w, r)
	case RevocationPath:
		o.serveRevoke(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (o *OIDC) serveDiscovery(w http.ResponseWriter, _ *http.Request) {
	doc := map[string]any{
		"issuer":                                o.URL,
		"authorization_endpoint":                o.URL + o.Paths.Authorize,
		"token_endpoint":                        o.URL + o.Paths.Token,
		"userinfo_endpoint":                     o.URL + o.Paths.Userinfo,
		"jwks_uri":                              o.URL + o.Paths.JWKS,
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"public"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{"openid", "email", "profile"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic", "client_secret_post"},
		"claims_supported":                      []string{"aud", "email", "email_verified", "exp", "iat", "iss", "name", "nonce", "picture", "preferred_username", "sub"},
		"code_challenge_methods_supported":      []string{"S256"},
		"grant_types_supported":                 []string{"authorization_code", "refresh_token"},
		"revocation_endpoint":                   o.URL + RevocationPath,
	}
	if o.google {
		// Google's document, as served at
		// https://accounts.google.com/.well-known/openid-configuration,
		// with the fake's URLs.
		doc = map[string]any{
			"issuer":                                o.URL,
			"authorization_endpoint":                o.URL + o.Paths.Authorize,
			"device_authorization_endpoint":         o.URL + "/device/code",
			"token_endpoint":                        o.URL + o.Paths.Token,
			"userinfo_endpoint":                     o.URL + o.Paths.Userinfo,
			"revocation_endpoint":                   o.URL + RevocationPath,
			"jwks_uri":                              o.URL + o.Paths.JWKS,
			"response_types_supported":              []string{"code", "token", "id_token", "code token", "code id_token", "token id_token", "code token id_token", "none"},
			"response_modes_supported":              []string{"query", "fragment", "form_post"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"scopes_supported":                      []string{"openid", "email", "profile"},
			"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
			"claims_supported":                      []string{"aud", "email", "email_verified", "exp", "family_name", "given_name", "iat", "iss", "name", "picture", "sub"},
			"code_challenge_methods_supported":      []string{"plain", "S256"},
			"grant_types_supported":                 []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer"},
		}
	}
	o.srv.mu.Lock()
	edit := o.editDiscovery
	o.srv.mu.Unlock()
	if edit != nil {
		edit(doc)
	}
	writeJSON(w, http.StatusOK, doc)
}

func (o *OIDC) serveAuthorize(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	q := r.Form
	o.srv.mu.Lock()
	deny, allowed, user := o.srv.deny, o.srv.redirects, o.user
	o.srv.mu.Unlock()

	// Errors about the client or redirect URI are shown to the user, never
	// redirected (RFC 6749, section 4.1.2.1): the redirect target is not
	// trustworthy.
	if q.Get("client_id") != o.ClientID {
		o.srv.logf("authorize: unknown client_id %q", q.Get("client_id"))
		http.Error(w, "invalid_client: unknown client_id", http.StatusBadRequest)
		return
	}
	redirectURI := q.Get("redirect_uri")
	if err := checkRedirectURI(redirectURI, allowed); err != nil {
		o.srv.logf("authorize: %v", err)
		http.Error(w, "invalid_request: "+err.Error(), http.StatusBadRequest)
		return
	}
	state := q.Get("state")
	fail := func(code, desc string) {
		o.srv.logf("authorize: %s: %s", code, desc)
		redirectWith(w, r, redirectURI, url.Values{"error": {code}, "error_description": {desc}, "state": {state}})
	}
	switch {
	case q.Get("response_type") != "code":
		fail("unsupported_response_type", "only response_type=code is supported")
		return
	case !slices.Contains(strings.Fields(q.Get("scope")), "openid"):
		fail("invalid_scope", "the openid scope is required")
		return
	case q.Get("code_challenge_method") != "S256":
		fail("invalid_request", "code_challenge_method=S256 is required")
		return
	case len(q.Get("code_challenge")) != 43:
		fail("invalid_request", "code_challenge is missing or malformed")
		return
	case deny:
		fail("access_denied", "The user denied the request.")
		return
	}

	code := randomString(24)
	o.srv.mu.Lock()
	o.codes[code] = &oidcGrant{
		redirectURI: redirectURI,
		challenge:   q.Get("code_challenge"),
		nonce:       q.Get("nonce"),
		scope:       q.Get("scope"),
		user:        user,
		expires:     time.Now().Add(codeTTL),
		offline: slices.Contains(strings.Fields(q.Get("scope")), "offline_access") ||
			(o.google && q.Get("access_type") == "offline"),
	}
	o.srv.mu.Unlock()
	redirectWith(w, r, redirectURI, url.Values{"code": {code}, "state": {state}})
}

// tokenError writes an RFC 6749 section 5.2 error response.
func (o *OIDC) tokenError(w http.ResponseWriter, status int, code, desc string) {
	o.srv.logf("token: %s: %s", code, desc)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="fakeidp"`)
	}
	writeJSON(w, status, map[string]string{"error": code, "error_description": desc})
}

func (o *OIDC) serveToken(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		o.tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "POST required")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil {
		o.tokenError(w, http.StatusBadRequest, "invalid_request", "malformed form body")
		return
	}
	f := r.PostForm

	// Client authentication: exactly one of client_secret_basic and
	// client_secret_post (RFC 6749, section 2.3).
	basicID, basicSecret, basic := r.BasicAuth()
	post := f.Has("client_secret")
	var id, secret string
	switch {
	case basic && post:
		o.tokenError(w, http.StatusBadRequest, "invalid_request", "more than one client authentication method")
		return
	case basic:
		// client_secret_basic form-encodes both parts before base64
		// (RFC 6749, section 2.3.1).
		var err1, err2 error
		id, err1 = url.QueryUnescape(basicID)
		secret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			o.tokenError(w, http.StatusUnauthorized, "invalid_client", "malformed basic credentials")
			return
		}
		if f.Has("client_id") && f.Get("client_id") != id {
			o.tokenError(w, http.StatusBadRequest, "invalid_request", "client_id does not match the authenticated client")
			return
		}
	case post:
		id, secret = f.Get("client_id"), f.Get("client_secret")
	default:
		o.tokenError(w, http.StatusUnauthorized, "invalid_client", "client authentication required")
		return
	}
	if !equal(id, o.ClientID) || !equal(secret, o.ClientSecret) {
		o.tokenError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	if f.Get("grant_type") == "refresh_token" {
		o.srv.mu.Lock()
		g, rt := o.refreshes[f.Get("refresh_token")], f.Get("refresh_token")
		o.srv.mu.Unlock()
		if g == nil {
			o.tokenError(w, http.StatusBadRequest, "invalid_grant", "Token has been expired or revoked.")
			return
		}
		accessToken := o.newAccessToken(g.user, rt)
		// Google keeps the refresh token and answers without one.
		writeJSON(w, http.StatusOK, map[string]any{
			"access_token": accessToken, "token_type": "Bearer", "expires_in": 3599, "scope": g.scope,
		})
		return
	}
	if f.Get("grant_type") != "authorization_code" {
		o.tokenError(w, http.StatusBadRequest, "unsupported_grant_type", "only authorization_code and refresh_token are supported")
		return
	}

	// A code is good for one attempt, successful or not.
	code := f.Get("code")
	o.srv.mu.Lock()
	g := o.codes[code]
	delete(o.codes, code)
	o.srv.mu.Unlock()
	switch {
	case g == nil:
		o.tokenError(w, http.StatusBadRequest, "invalid_grant", "unknown or already used code")
		return
	case time.Now().After(g.expires):
		o.tokenError(w, http.StatusBadRequest, "invalid_grant", "code expired")
		return
	case f.Get("redirect_uri") != g.redirectURI:
		o.tokenError(w, http.StatusBadRequest, "invalid_grant", "redirect_uri does not match the authorization request")
		return
	case !pkceMatches(f.Get("code_verifier"), g.challenge):
		o.tokenError(w, http.StatusBadRequest, "invalid_grant", "code_verifier does not match code_challenge")
		return
	}

	var refreshToken string
	if g.offline {
		refreshToken = "1//" + randomString(48)
		o.srv.mu.Lock()
		o.refreshes[refreshToken] = g
		o.srv.mu.Unlock()
	}
	accessToken := o.newAccessToken(g.user, refreshToken)
	idToken, err := o.idToken(g, accessToken)
	if err != nil {
		o.tokenError(w, http.StatusInternalServerError, "server_error", "signing ID token: "+err.Error())
		return
	}

	scope := g.scope
	if o.google {
		scope = "openid https://www.googleapis.com/auth/userinfo.email https://www.googleapis.com/auth/userinfo.profile"
	}
	resp := map[string]any{
		"access_token": accessToken,
		"token_type":   "Bearer",
		"expires_in":   3599,
		"scope":        scope,
		"id_token":     idToken,
	}
	if refreshToken != "" {
		resp["refresh_token"] = refreshToken
	}
	writeJSON(w, http.StatusOK, resp)
}

// RevocationPath is the path of the fakes' revocation endpoint (RFC 7009;
// Google's https://oauth2.googleapis.com/revoke).
const RevocationPath = "/revoke"

// newAccessToken issues an access token for user, from refreshToken if
// not "".
func (o *OIDC) newAccessToken(user User, refreshToken string) string {
	accessToken := randomString(32)
	if o.google {
		accessToken = "ya29." + accessToken
	}
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	o.tokens[accessToken] = user
	if refreshToken != "" {
		o.issuedFrom[accessToken] = refreshToken
	}
	return accessToken
}

// Valid reports whether the provider accepts accessToken now.
func (o *OIDC) Valid(accessToken string) bool {
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	_, ok := o.tokens[accessToken]
	return ok
}

// Revoked returns the tokens revoked at the revocation endpoint, in order.
func (o *OIDC) Revoked() []string {
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	return slices.Clone(o.revoked)
}

// serveRevoke revokes a token (RFC 7009): a refresh token with every
// access token issued from it, as Google does. Unknown tokens are not an
// error. The client need not authenticate (Google does not ask), but
// credentials it sends must be right.
func (o *OIDC) serveRevoke(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		o.tokenError(w, http.StatusMethodNotAllowed, "invalid_request", "POST required")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if err := r.ParseForm(); err != nil || r.PostForm.Get("token") == "" {
		o.tokenError(w, http.StatusBadRequest, "invalid_request", "token is required")
		return
	}
	id, secret, basic := r.BasicAuth()
	if !basic && r.PostForm.Has("client_secret") {
		id, secret, basic = r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), true
	}
	if basic && (!equal(id, o.ClientID) || !equal(secret, o.ClientSecret)) {
		o.tokenError(w, http.StatusUnauthorized, "invalid_client", "unknown client or wrong secret")
		return
	}
	tok := r.PostForm.Get("token")
	o.srv.mu.Lock()
	defer o.srv.mu.Unlock()
	o.revoked = append(o.revoked, tok)
	delete(o.tokens, tok)
	if _, ok := o.refreshes[tok]; ok {
		delete(o.refreshes, tok)
		for at, rt := range o.issuedFrom {
			if rt == tok {
				delete(o.tokens, at)
				delete(o.issuedFrom, at)
			}
		}
	}
	w.WriteHeader(http.StatusOK)
}

// idToken builds and signs the ID token for a redeemed grant.
func (o *OIDC) idToken(g *oidcGrant, accessToken string) (string, error) {
	now := time.Now()
	claims := map[string]any{
		"iss": o.URL,
		"sub": g.user.Subject,
		"aud": o.ClientID,
		"iat": now.Unix(),
		"exp": now.Add(idTokenTTL).Unix(),
	}
	if g.nonce != "" {
		claims["nonce"] = g.nonce
	}
	// at_hash: left half of SHA-256 of the access token (Core 3.1.3.6).
	sum := sha256.Sum256([]byte(accessToken))
	claims["at_hash"] = base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2])
	o.profileClaims(g.user, claims)
	if o.google {
		claims["azp"] = o.ClientID
	} else {
		claims["auth_time"] = now.Unix()
	}

	o.srv.mu.Lock()
	edit, sign, key, kid := o.editClaims, o.signer, o.key, o.kid
	o.srv.mu.Unlock()
	if edit != nil {
		edit(claims)
	}
	if sign != nil {
		return sign(claims)
	}
	return SignRS256(key, kid, claims)
}

// profileClaims adds u's profile to claims, in the shape this flavor of
// provider uses.
func (o *OIDC) profileClaims(u User, claims map[string]any) {
	set := func(k, v string) {
		if v != "" {
			claims[k] = v
		}
	}
	if u.Email != "" {
		claims["email"] = u.Email
		claims["email_verified"] = u.EmailVerified
	}
	set("name", u.Name)
	set("picture", u.Picture)
	if o.google {
		if given, family, ok := strings.Cut(u.Name, " "); ok {
			set("given_name", given)
			set("family_name", family)
		}
		set("hd", u.HostedDomain)
	} else {
		set("preferred_username", u.PreferredUsername)
	}
}

func (o *OIDC) serveUserinfo(w http.ResponseWriter, r *http.Request) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	o.srv.mu.Lock()
	user, known := o.tokens[tok]
	o.srv.mu.Unlock()
	if !ok || !known {
		o.srv.logf("userinfo: missing or unknown access token")
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "invalid_token", http.StatusUnauthorized)
		return
	}
	claims := map[string]any{"sub": user.Subject}
	o.profileClaims(user, claims)
	writeJSON(w, http.StatusOK, claims)
}

func (o *OIDC) serveJWKS(w http.ResponseWriter, _ *http.Request) {
	o.srv.mu.Lock()
	key, kid := o.key, o.kid
	o.srv.mu.Unlock()
	serveKeySet(w, key, kid)
}
