package fakeidp

import (
	"crypto/rsa"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// IDJAGType is the JOSE typ of an identity assertion grant.
const IDJAGType = "oauth-id-jag+jwt"

// Enterprise is a fake enterprise identity provider (Okta, Entra) as an
// MCP server's authorization server sees it: OpenID Connect discovery
// naming its issuer and jwks_uri, its RS256 signing key published at
// /keys, and identity assertion grants (ID-JAG) it mints for tests, as
// its token exchange endpoint would. Methods are safe for concurrent use;
// URL must not be changed.
type Enterprise struct {
	// URL is the issuer and base URL, http://127.0.0.1:PORT.
	URL string

	srv *server
	// guarded by srv.mu:
	key *rsa.PrivateKey
	kid string
}

// EnterpriseKeysPath is the path of an Enterprise fake's key set.
const EnterpriseKeysPath = "/keys"

// NewEnterprise starts a fake enterprise identity provider. It is closed
// when the test ends.
func NewEnterprise(t testing.TB) *Enterprise {
	t.Helper()
	e := &Enterprise{srv: newServer(t)}
	e.RotateKey()
	ts := httptest.NewServer(http.HandlerFunc(e.serveHTTP))
	t.Cleanup(ts.Close)
	e.URL = ts.URL
	return e
}

// RotateKey replaces the signing key with a fresh one under a new kid; the
// key set then publishes only the new key.
func (e *Enterprise) RotateKey() {
	key := NewRSAKey(e.srv.t)
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	e.key, e.kid = key, "enterprise-key-"+randomString(6)
}

// KeyRequests counts the requests for the key set.
func (e *Enterprise) KeyRequests() int { return e.srv.requests(EnterpriseKeysPath) }

// Claims returns the claims of a valid ID-JAG for the user sub, issued to
// clientID for the authorization server audience and its protected
// resource, with a fresh jti and five minutes of validity.
func (e *Enterprise) Claims(sub, audience, clientID, resource string) map[string]any {
	now := time.Now()
	return map[string]any{
		"iss": e.URL, "sub": sub, "aud": audience, "client_id": clientID, "resource": resource,
		"jti": randomString(12), "iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
	}
}

// Sign signs claims as an ID-JAG: RS256 with the current key, header typ
// oauth-id-jag+jwt.
func (e *Enterprise) Sign(claims map[string]any) string {
	return e.SignTyped(IDJAGType, claims)
}

// SignTyped signs claims with the current key and the header typ given
// ("" leaves it out), for assertions of the wrong type.
func (e *Enterprise) SignTyped(typ string, claims map[string]any) string {
	e.srv.mu.Lock()
	key, kid := e.key, e.kid
	e.srv.mu.Unlock()
	tok, err := SignRS256Typed(key, kid, typ, claims)
	if err != nil {
		e.srv.t.Fatalf("fakeidp: signing an ID-JAG: %v", err)
	}
	return tok
}

func (e *Enterprise) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if h := e.srv.dispatch(r); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	switch r.URL.Path {
	case DiscoveryPath:
		writeJSON(w, http.StatusOK, map[string]any{
			"issuer":                                e.URL,
			"authorization_endpoint":                e.URL + "/authorize",
			"token_endpoint":                        e.URL + "/token",
			"jwks_uri":                              e.URL + EnterpriseKeysPath,
			"response_types_supported":              []string{"code"},
			"subject_types_supported":               []string{"public"},
			"id_token_signing_alg_values_supported": []string{"RS256"},
			"grant_types_supported":                 []string{"authorization_code", "urn:ietf:params:oauth:grant-type:token-exchange"},
		})
	case EnterpriseKeysPath:
		e.srv.mu.Lock()
		key, kid := e.key, e.kid
		e.srv.mu.Unlock()
		serveKeySet(w, key, kid)
	default:
		http.NotFound(w, r)
	}
}
