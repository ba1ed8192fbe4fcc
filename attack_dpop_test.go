package mcpauth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// dpopLogin logs alice in with the public client c, proving key at
// /token, and returns the DPoP-bound tokens.
func (e *asEnv) dpopLogin(t *testing.T, c oauthtest.Client, key *oauthtest.DPoPKey, extra url.Values) oauthtest.TokenSet {
	t.Helper()
	p := oauthtest.NewPKCE()
	q := authParams(c, p)
	for k, v := range extra {
		q[k] = v
	}
	code := loginCode(t, q)
	ts := e.Exchange(t, codeForm(c, code, p), http.Header{"Dpop": {key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: siteAddr() + "/token"})}})
	if ts.TokenType != "DPoP" {
		t.Fatalf("token_type %q, want DPoP", ts.TokenType)
	}
	return ts
}

// dpopCall posts an MCP initialize to the resource with header (its
// Authorization and DPoP) and returns the status and challenges.
func (e *asEnv) dpopCall(t *testing.T, header http.Header) (int, http.Header) {
	t.Helper()
	h := oauthtest.MCPHeader("x")
	for k, v := range header {
		h[k] = v
	}
	status, hdr, _ := oauthtest.Do(t, e.HTTP, http.MethodPost, canonicalResource(), h, []byte(oauthtest.MCPInitialize))
	return status, hdr
}

// callProof is a fresh proof by key for an MCP POST to the resource with token.
func callProof(t *testing.T, key *oauthtest.DPoPKey, token string) string {
	return key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: canonicalResource(), AccessToken: token})
}

// A DPoP-bound token works only with a fresh proof by its key for the very
// request, through real Caddy: every way of reusing a token or a proof
// elsewhere is refused with a DPoP challenge (RFC 9449 sections 4.3, 7).
func TestDPoPGateRefusesEveryMisuse(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	key, thief := oauthtest.NewDPoPKey(t), oauthtest.NewDPoPKey(t)
	ts := e.dpopLogin(t, c, key, nil)
	at := ts.Access
	_, claims := oauthtest.DecodeJWT(t, at)
	if cnf, _ := claims["cnf"].(map[string]any); cnf["jkt"] != key.JKT {
		t.Fatalf("cnf = %v, want jkt %s", claims["cnf"], key.JKT)
	}

	good := callProof(t, key, at)
	if status, _ := e.dpopCall(t, oauthtest.DPoP(at, good)); status != http.StatusOK {
		t.Fatalf("bound call with a fresh proof: %d", status)
	}
	// The scheme is case-insensitive (RFC 9110 section 11.1).
	if status, _ := e.dpopCall(t, http.Header{"Authorization": {"dpop " + at}, "Dpop": {callProof(t, key, at)}}); status != http.StatusOK {
		t.Fatalf("lower-case scheme: %d", status)
	}
	// A query string is not part of htu.
	withQuery := key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: canonicalResource() + "?x=1", AccessToken: at})
	if status, _ := e.dpopCall(t, oauthtest.DPoP(at, withQuery)); status != http.StatusOK {
		t.Fatalf("htu with a query: %d", status)
	}

	privateJWK, err := jwk.Import(key.Private)
	if err != nil {
		t.Fatal(err)
	}
	tokenProof := key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: siteAddr() + "/token"})
	callClaims := oauthtest.ProofClaims{Method: "POST", URL: canonicalResource(), AccessToken: at}
	unsigned, err := key.Unsigned(callClaims)
	if err != nil {
		t.Fatal(err)
	}
	hmac, err := key.SignHS256(callClaims, []byte(strings.Repeat("k", 32)))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for _, tc := range []struct {
		name   string
		header http.Header
		error  string // of the challenge
	}{
		{"replayed proof", oauthtest.DPoP(at, good), "invalid_dpop_proof"},
		{"proof for another host", oauthtest.DPoP(at, key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: strings.Replace(canonicalResource(), "localhost", "127.0.0.1", 1), AccessToken: at})), "invalid_dpop_proof"},
		{"proof for another path", oauthtest.DPoP(at, key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: siteAddr() + "/other", AccessToken: at})), "invalid_dpop_proof"},
		{"proof for another method", oauthtest.DPoP(at, key.Proof(t, oauthtest.ProofClaims{Method: "GET", URL: canonicalResource(), AccessToken: at})), "invalid_dpop_proof"},
		{"proof without ath", oauthtest.DPoP(at, key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: canonicalResource()})), "invalid_dpop_proof"},
		{"proof for another token", oauthtest.DPoP(at, callProof(t, key, at+"x")), "invalid_dpop_proof"},
		{"stale proof", oauthtest.DPoP(at, key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: canonicalResource(), AccessToken: at, IssuedAt: now.Add(-5 * time.Minute)})), "invalid_dpop_proof"},
		{"proof from the future", oauthtest.DPoP(at, key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: canonicalResource(), AccessToken: at, IssuedAt: now.Add(5 * time.Minute)})), "invalid_dpop_proof"},
		{"token copied to a client without the key", oauthtest.DPoP(at, callProof(t, thief, at)), "invalid_dpop_proof"},
		{"private key in the proof", oauthtest.DPoP(at, key.ProofWithHeader(t, oauthtest.ProofClaims{Method: "POST", URL: canonicalResource(), AccessToken: at}, map[string]any{"jwk": privateJWK})), "invalid_dpop_proof"},
		{"proof made for /token", oauthtest.DPoP(at, tokenProof), "invalid_dpop_proof"},
		{"alg none", oauthtest.DPoP(at, unsigned), "invalid_dpop_proof"},
		{"alg HS256", oauthtest.DPoP(at, hmac), "invalid_dpop_proof"},
		{"no proof", http.Header{"Authorization": {"DPoP " + at}}, "invalid_dpop_proof"},
		{"two proofs", http.Header{"Authorization": {"DPoP " + at}, "Dpop": {callProof(t, key, at), callProof(t, key, at)}}, "invalid_dpop_proof"},
		{"bound token sent as Bearer", oauthtest.Bearer(at), "invalid_token"},
		{"bound token sent as Bearer with a proof", http.Header{"Authorization": {"Bearer " + at}, "Dpop": {callProof(t, key, at)}}, "invalid_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr := e.dpopCall(t, tc.header)
			challenge := hdr.Get("WWW-Authenticate")
			if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="`+tc.error+`"`) {
				t.Fatalf("%d %q, want 401 with error %s", status, challenge, tc.error)
			}
			wantScheme := "DPoP "
			if strings.HasPrefix(tc.header.Get("Authorization"), "Bearer") {
				wantScheme = "Bearer "
			}
			if !strings.HasPrefix(challenge, wantScheme) || (wantScheme == "DPoP " && !strings.Contains(challenge, `algs="ES256`)) {
				t.Fatalf("challenge %q, want a %s challenge (with algs for DPoP)", challenge, wantScheme)
			}
		})
	}

	// A bearer token presented with the DPoP scheme is not DPoP-bound.
	bearer := e.login(t, c, nil)
	if status, hdr := e.dpopCall(t, oauthtest.DPoP(bearer.Access, callProof(t, key, bearer.Access))); status != http.StatusUnauthorized ||
		!strings.Contains(hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("bearer token with the DPoP scheme: %d %q", status, hdr.Get("WWW-Authenticate"))
	}
	// And the bearer path is unchanged.
	if status := e.mcpStatus(t, bearer.Access); status != http.StatusOK {
		t.Fatalf("bearer token: %d", status)
	}
}

// The refresh token of a public DPoP client is bound to its key: a thief
// with the refresh token alone gets nothing (RFC 9449 section 5), and
// introspection shows the key a token is bound to (section 6.2).
func TestDPoPRefreshAndIntrospection(t *testing.T) {
	e := usersAS(t, "introspection_client rs "+strings.Repeat("s", 20))
	c := e.publicClient(t)
	key, thief := oauthtest.NewDPoPKey(t), oauthtest.NewDPoPKey(t)
	ts := e.dpopLogin(t, c, key, url.Values{"dpop_jkt": {key.JKT}})
	for name, header := range map[string]http.Header{
		"without a proof":    nil,
		"with another's key": {"Dpop": {thief.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: siteAddr() + "/token"})}},
	} {
		status, _, body := e.Token(t, refreshForm(c, ts.Refresh), header)
		if status != http.StatusBadRequest || body["error"] != "invalid_grant" {
			t.Fatalf("refresh %s: %d %v", name, status, body)
		}
	}
	next := e.Exchange(t, refreshForm(c, ts.Refresh), http.Header{"Dpop": {key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: siteAddr() + "/token"})}})
	if status, _ := e.dpopCall(t, oauthtest.DPoP(next.Access, callProof(t, key, next.Access))); status != http.StatusOK {
		t.Fatalf("refreshed bound token: %d", status)
	}
	status, _, body := e.PostForm(t, "/introspect", url.Values{"token": {next.Access}},
		http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("rs", strings.Repeat("s", 20))}})
	if cnf, _ := body["cnf"].(map[string]any); status != http.StatusOK || body["token_type"] != "DPoP" || cnf["jkt"] != key.JKT {
		t.Fatalf("introspection: %d %v", status, body)
	}
	// dpop_jkt must be a thumbprint.
	p := oauthtest.NewPKCE()
	q := authParams(c, p)
	q.Set("dpop_jkt", "not-a-thumbprint")
	loc := redirectedTo(t, walk(t, aliceBrowser(t), authorizeURL(q)))
	assertAuthzResponse(t, loc, c.Redirects[0], q.Get("state"), "invalid_request")
}

// With nonces on, the gate answers a proof without one 401 use_dpop_nonce
// with a DPoP-Nonce header, and the retry passes; a resource that requires
// DPoP refuses bearer tokens with a DPoP challenge, and says so in its
// metadata (RFC 9728 dpop_bound_access_tokens_required).
func TestDPoPNonceAndRequireDPoP(t *testing.T) {
	e := startAS(t, usersUpstream()+"\n\t\tdpop {\n\t\t\tnonce\n\t\t}")
	c := e.publicClient(t)
	key := oauthtest.NewDPoPKey(t)

	// At /token: the first attempt is told to use a nonce.
	p := oauthtest.NewPKCE()
	form := codeForm(c, loginCode(t, authParams(c, p)), p)
	status, hdr, body := e.Token(t, form, http.Header{"Dpop": {key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: siteAddr() + "/token"})}})
	nonce := hdr.Get("DPoP-Nonce")
	if status != http.StatusBadRequest || body["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("token request without nonce: %d %v %q", status, body, nonce)
	}
	ts := e.Exchange(t, form, http.Header{"Dpop": {key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: siteAddr() + "/token", Nonce: nonce})}})

	// At the resource: the nonce of /token works, none is refused.
	status, hdr = e.dpopCall(t, oauthtest.DPoP(ts.Access, callProof(t, key, ts.Access)))
	if status != http.StatusUnauthorized || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), `DPoP `) ||
		!strings.Contains(hdr.Get("WWW-Authenticate"), `error="use_dpop_nonce"`) || hdr.Get("DPoP-Nonce") == "" {
		t.Fatalf("call without nonce: %d %v", status, hdr)
	}
	withNonce := key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: canonicalResource(), AccessToken: ts.Access, Nonce: hdr.Get("DPoP-Nonce")})
	if status, hdr := e.dpopCall(t, oauthtest.DPoP(ts.Access, withNonce)); status != http.StatusOK || hdr.Get("DPoP-Nonce") == "" {
		t.Fatalf("call with the nonce: %d, next nonce %q", status, hdr.Get("DPoP-Nonce"))
	}
}

// A resource with require_dpop takes only DPoP-bound tokens.
func TestDPoPRequiredResource(t *testing.T) {
	e := &asEnv{storagePath: t.TempDir(), logDir: t.TempDir()}
	site := strings.Replace(asSite(t, e.storagePath, e.logDir, usersUpstream()), "scopes mcp:tools mcp:admin", "scopes mcp:tools mcp:admin\n\t\t\trequire_dpop", 1)
	startCaddy(t, site)
	e.Server = siteServer(t)
	c := e.publicClient(t)
	bearer := e.login(t, c, nil)
	status, hdr := e.dpopCall(t, oauthtest.Bearer(bearer.Access))
	if ch := hdr.Get("WWW-Authenticate"); status != http.StatusUnauthorized || !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, `error="invalid_token"`) {
		t.Fatalf("bearer token at a DPoP-only resource: %d %q", status, ch)
	}
	status, hdr = e.dpopCall(t, nil)
	if ch := hdr.Get("WWW-Authenticate"); status != http.StatusUnauthorized || !strings.HasPrefix(ch, "DPoP ") || !strings.Contains(ch, "resource_metadata=") {
		t.Fatalf("anonymous request at a DPoP-only resource: %d %q", status, ch)
	}
	key := oauthtest.NewDPoPKey(t)
	ts := e.dpopLogin(t, c, key, nil)
	if status, _ := e.dpopCall(t, oauthtest.DPoP(ts.Access, callProof(t, key, ts.Access))); status != http.StatusOK {
		t.Fatalf("bound token at a DPoP-only resource: %d", status)
	}
	_, _, raw := oauthtest.Get(t, e.HTTP, siteAddr()+"/.well-known/oauth-protected-resource/mcp", nil)
	if !strings.Contains(string(raw), `"dpop_bound_access_tokens_required":true`) {
		t.Fatalf("metadata %s", raw)
	}
}

// require_dpop at the top level applies to the origin resource only: with
// resources declared, the config names where it applies or does not load.
func TestDPoPConfigErrors(t *testing.T) {
	// asSite declares resource /mcp.
	assertConfigLoads(t, asSite(t, t.TempDir(), t.TempDir(), usersUpstream()+"\n\t\trequire_dpop"), []string{"require_dpop", "per resource"})
	assertConfigLoads(t, asSite(t, t.TempDir(), t.TempDir(), usersUpstream()+"\n\t\tdpop {\n\t\t\tnonce\n\t\t}"), nil)
}

// The scheme a DPoP proof's htu must name is the connection's, or what a
// proxy in trusted_proxies says in one X-Forwarded-Proto header; an
// untrusted client cannot choose it.
func TestDPoPRequestScheme(t *testing.T) {
	for _, tc := range []struct {
		name    string
		trusted bool
		proto   []string
		want    string
	}{
		{"untrusted client claiming https", false, []string{"https"}, "http"},
		{"trusted proxy", true, []string{"https"}, "https"},
		{"trusted proxy, two headers", true, []string{"https", "http"}, "http"},
		{"trusted proxy, another scheme", true, []string{"ftp"}, "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodPost, "http://mcp.example.com/mcp", nil)
			r.Header["X-Forwarded-Proto"] = tc.proto
			vars := map[string]any{caddyhttp.TrustedProxyVarKey: tc.trusted}
			r = r.WithContext(context.WithValue(r.Context(), caddyhttp.VarsCtxKey, vars))
			if got := requestScheme(r); got != tc.want {
				t.Fatalf("scheme %q, want %q", got, tc.want)
			}
		})
	}
}
