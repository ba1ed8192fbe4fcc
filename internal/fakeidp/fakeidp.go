// Package fakeidp provides in-process stand-ins for the identity providers
// caddy-mcp-auth federates to: a generic OpenID Connect provider, Google
// and GitHub. Each runs on an httptest server (plain http on 127.0.0.1),
// auto-approves logins for one configurable user, and checks what a real
// provider checks (client credentials, redirect URI, PKCE, single-use
// codes), so tests exercise the real protocol rather than mocks.
//
// It is a normal package, not a _test file, so that tests of other
// packages can import it. Nothing in it is meant for production.
package fakeidp

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// maxBody caps request bodies the fakes read.
const maxBody = 1 << 20

// Authorize plays the browser's part of a login at any of the fakes: it
// GETs authURL (as returned by a Redirector's AuthCodeURL) without
// following redirects and returns the Location the provider redirected to,
// that is the redirect URI with code and state, or with error. It fails
// the test if the provider answers with anything but a redirect.
func Authorize(t testing.TB, authURL string) *url.URL {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}
	resp, err := client.Get(authURL)
	if err != nil {
		t.Fatalf("fakeidp: GET %s: %v", authURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		t.Fatalf("fakeidp: GET %s: got %s, want a redirect; body: %s", authURL, resp.Status, body)
	}
	loc, err := resp.Location()
	if err != nil {
		t.Fatalf("fakeidp: GET %s: bad Location: %v", authURL, err)
	}
	return loc
}

// SignRS256 signs claims as a compact JWS (RS256, header kid and typ JWT)
// with key. Tests use it to forge ID tokens, e.g. with a key the provider
// does not publish (see OIDC.SetIDTokenSigner).
func SignRS256(key *rsa.PrivateKey, kid string, claims map[string]any) (string, error) {
	return SignRS256Typed(key, kid, "JWT", claims)
}

// SignRS256Typed is SignRS256 with the header typ given, such as at+jwt
// for access tokens; an empty typ leaves the header out.
func SignRS256Typed(key *rsa.PrivateKey, kid, typ string, claims map[string]any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	hdr := jws.NewHeaders()
	if err := hdr.Set(jws.KeyIDKey, kid); err != nil {
		return "", err
	}
	if typ != "" {
		if err := hdr.Set(jws.TypeKey, typ); err != nil {
			return "", err
		}
	}
	tok, err := jws.Sign(payload, jws.WithKey(jwa.RS256(), key, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		return "", err
	}
	return string(tok), nil
}

// NewRSAKey returns a fresh 2048-bit RSA key, failing t on error.
func NewRSAKey(t testing.TB) *rsa.PrivateKey {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatalf("fakeidp: generating RSA key: %v", err)
	}
	return key
}

// publicJWKS returns the JWKS document publishing key under kid.
func publicJWKS(key *rsa.PrivateKey, kid string) ([]byte, error) {
	pub, err := jwk.Import(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	for k, v := range map[string]any{jwk.KeyIDKey: kid, jwk.AlgorithmKey: jwa.RS256(), jwk.KeyUsageKey: "sig"} {
		if err := pub.Set(k, v); err != nil {
			return nil, err
		}
	}
	set := jwk.NewSet()
	if err := set.AddKey(pub); err != nil {
		return nil, err
	}
	return json.Marshal(set)
}

// serveKeySet answers with the JWKS document publishing key under kid.
func serveKeySet(w http.ResponseWriter, key *rsa.PrivateKey, kid string) {
	body, err := publicJWKS(key, kid)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// randomString returns n random base64url characters' worth of bytes.
func randomString(nbytes int) string {
	b := make([]byte, nbytes)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// s256 is the PKCE S256 transform of verifier.
func s256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// validVerifier reports whether v has the RFC 7636 shape: 43 to 128
// unreserved characters.
func validVerifier(v string) bool {
	if len(v) < 43 || len(v) > 128 {
		return false
	}
	for _, c := range v {
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9',
			c == '-', c == '.', c == '_', c == '~':
		default:
			return false
		}
	}
	return true
}

// pkceMatches reports whether verifier fits challenge (S256).
func pkceMatches(verifier, challenge string) bool {
	return validVerifier(verifier) && subtle.ConstantTimeCompare([]byte(s256(verifier)), []byte(challenge)) == 1
}

// equal compares secrets in constant time.
func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// writeJSON writes v as a JSON response with status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// redirectWith redirects to target with params added to its query.
func redirectWith(w http.ResponseWriter, r *http.Request, target string, params url.Values) {
	u, err := url.Parse(target)
	if err != nil {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	q := u.Query()
	for k, vs := range params {
		for _, v := range vs {
			if v != "" {
				q.Add(k, v)
			}
		}
	}
	u.RawQuery = q.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

// checkRedirectURI validates a redirect_uri sent to an authorize endpoint:
// absolute, no fragment, and one of allowed when that list is non-empty.
func checkRedirectURI(uri string, allowed []string) error {
	if uri == "" {
		return fmt.Errorf("redirect_uri is missing")
	}
	u, err := url.Parse(uri)
	if err != nil || !u.IsAbs() || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("redirect_uri %q is not an absolute URL without fragment", uri)
	}
	if len(allowed) == 0 {
		return nil
	}
	for _, a := range allowed {
		if a == uri {
			return nil
		}
	}
	return fmt.Errorf("redirect_uri %q is not registered", uri)
}

// server is what the OIDC and GitHub fakes share: request counting,
// per-path overrides, and a lock for their state.
type server struct {
	t  testing.TB
	mu sync.Mutex
	// guarded by mu:
	hits      map[string]int
	overrides map[string]http.Handler
	deny      bool
	redirects []string
}

func newServer(t testing.TB) *server {
	return &server{t: t, hits: map[string]int{}, overrides: map[string]http.Handler{}}
}

// dispatch counts the request and returns the override for its path, if
// any.
func (s *server) dispatch(r *http.Request) http.Handler {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits[r.URL.Path]++
	return s.overrides[r.URL.Path]
}

func (s *server) requests(path string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hits[path]
}

func (s *server) handle(path string, h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if h == nil {
		delete(s.overrides, path)
		return
	}
	s.overrides[path] = h
}

func (s *server) setDeny(deny bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deny = deny
}

func (s *server) setRedirectURIs(uris []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.redirects = append([]string(nil), uris...)
}

// logf logs through the test, for rejections that would otherwise only
// show up as an opaque error in the code under test.
func (s *server) logf(format string, args ...any) {
	s.t.Logf("fakeidp: "+format, args...)
}
