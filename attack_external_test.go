package mcpauth

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Attacks on external mode: tokens of the external authorization server
// that are not access tokens for this resource, and key fetches an
// attacker can trigger.

// externalStatusCase is a token and the status the gate must answer it with.
type externalStatusCase struct {
	token  string
	status int
}

func assertExternalStatuses(t *testing.T, client *http.Client, cases map[string]externalStatusCase) {
	t.Helper()
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			status, hdr, body := initialize(t, client, "/mcp", tc.token)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %s %s", status, tc.status, hdr.Get("WWW-Authenticate"), body)
			}
		})
	}
}

// serveIntrospection answers the idp's introspection endpoint with the
// answer listed for each token (inactive for others).
func serveIntrospection(idp *fakeidp.OIDC, answers map[string]map[string]any) {
	idp.EditDiscovery(func(doc map[string]any) { doc["introspection_endpoint"] = idp.URL + "/introspect" })
	idp.Handle("/introspect", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		answer, ok := answers[r.PostForm.Get("token")]
		if !ok {
			answer = map[string]any{"active": false}
		}
		_ = json.NewEncoder(w).Encode(answer)
	}))
}

func TestAttackJWTOfAnotherKindUsedAsAccessToken(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-1"})
	client := startExternal(t, idp, "")
	kind := func(claim string) func(map[string]any) {
		return func(c map[string]any) { c["typ"] = claim }
	}
	// By default only RFC 9068 access tokens pass: an ID token or any
	// other JWT of the same server, even one naming the resource in aud,
	// is typed otherwise.
	assertExternalStatuses(t, client, map[string]externalStatusCase{
		"at+jwt":                              {externalToken(t, idp, "at+jwt", nil), 200},
		"application/at+jwt":                  {externalToken(t, idp, "application/at+jwt", nil), 200},
		"AT+JWT (typ is case-insensitive)":    {externalToken(t, idp, "AT+JWT", nil), 200},
		"typ JWT":                             {externalToken(t, idp, "JWT", nil), 401},
		"typ jwt":                             {externalToken(t, idp, "jwt", nil), 401},
		"no typ":                              {externalToken(t, idp, "", nil), 401},
		"typ id_token+jwt":                    {externalToken(t, idp, "id_token+jwt", nil), 401},
		"typ at+jwt with a space":             {externalToken(t, idp, "at+jwt ", nil), 401},
		"typ logout+jwt":                      {externalToken(t, idp, "logout+jwt", nil), 401},
		"at+jwt saying it is a refresh token": {externalToken(t, idp, "at+jwt", kind("Refresh")), 401},
	})

	// A server that types its access tokens JWT (Keycloak) is accepted
	// when configured, and its other tokens, typed JWT as well, are told
	// apart by the kind it writes in the typ claim.
	client = startExternal(t, idp, "\n\t\t\taccept_jwt_typ JWT")
	assertExternalStatuses(t, client, map[string]externalStatusCase{
		"Keycloak access token":     {externalToken(t, idp, "JWT", kind("Bearer")), 200},
		"typ JWT without a kind":    {externalToken(t, idp, "JWT", nil), 200},
		"at+jwt still":              {externalToken(t, idp, "at+jwt", nil), 200},
		"application/jwt":           {externalToken(t, idp, "application/jwt", nil), 200},
		"Keycloak ID token":         {externalToken(t, idp, "JWT", kind("ID")), 401},
		"Keycloak refresh token":    {externalToken(t, idp, "JWT", kind("Refresh")), 401},
		"Keycloak logout token":     {externalToken(t, idp, "JWT", kind("Logout")), 401},
		"no typ":                    {externalToken(t, idp, "", nil), 401},
		"typ JOSE (not configured)": {externalToken(t, idp, "JOSE", nil), 401},
		"ID token, audience the client": {externalToken(t, idp, "JWT", func(c map[string]any) {
			c["aud"], c["nonce"] = "mcp-client", "n-1"
		}), 401},
	})

	// A server that leaves typ out (Okta), when configured.
	client = startExternal(t, idp, "\n\t\t\taccept_jwt_typ \"\"")
	assertExternalStatuses(t, client, map[string]externalStatusCase{
		"no typ":         {externalToken(t, idp, "", nil), 200},
		"at+jwt still":   {externalToken(t, idp, "at+jwt", nil), 200},
		"typ JWT":        {externalToken(t, idp, "JWT", nil), 401},
		"typ empty-ish ": {externalToken(t, idp, " ", nil), 401},
	})
}

func TestAttackExternalTokenClaimsBent(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-1"})
	client := startExternal(t, idp, "")
	at := func(edit func(map[string]any)) string { return externalToken(t, idp, "at+jwt", edit) }
	set := func(claim string, v any) func(map[string]any) { return func(c map[string]any) { c[claim] = v } }
	drop := func(claims ...string) func(map[string]any) {
		return func(c map[string]any) {
			for _, claim := range claims {
				delete(c, claim)
			}
		}
	}
	now := time.Now()
	resource := siteAddr() + "/mcp"
	assertExternalStatuses(t, client, map[string]externalStatusCase{
		"valid":                           {at(nil), 200},
		"client_id instead of azp":        {at(func(c map[string]any) { delete(c, "azp"); c["client_id"] = "c" }), 200},
		"cid (Okta)":                      {at(func(c map[string]any) { delete(c, "azp"); c["cid"] = "c" }), 200},
		"appid (Entra v1)":                {at(func(c map[string]any) { delete(c, "azp"); c["appid"] = "c" }), 200},
		"no client id":                    {at(drop("azp")), 401},
		"no iat":                          {at(drop("iat")), 401},
		"no sub":                          {at(drop("sub")), 401},
		"no exp":                          {at(drop("exp")), 401},
		"issued in the future":            {at(set("iat", now.Add(10*time.Minute).Unix())), 401},
		"not valid yet":                   {at(set("nbf", now.Add(10*time.Minute).Unix())), 401},
		"expired":                         {at(set("exp", now.Add(-10*time.Minute).Unix())), 401},
		"issuer with a trailing slash":    {at(set("iss", idp.URL+"/")), 401},
		"issuer in upper case":            {at(set("iss", "HTTP://127.0.0.1"+idp.URL[len("http://127.0.0.1"):])), 401},
		"audience with a trailing slash":  {at(set("aud", resource+"/")), 401},
		"audience in upper case":          {at(set("aud", "https://LOCALHOST"+resource[len("https://localhost"):])), 401},
		"audience of another path":        {at(set("aud", siteAddr()+"/MCP")), 401},
		"audience as an object":           {at(set("aud", map[string]any{"x": resource})), 401},
		"DPoP-bound (cnf.jkt)":            {at(set("cnf", map[string]any{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"})), 401},
		"mTLS-bound (cnf.x5t#S256)":       {at(set("cnf", map[string]any{"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"})), 401},
		"alg none":                        {unsignedToken(t, idp), 401},
		"HS256 keyed with the public key": {hmacWithPublicKey(t, idp), 401},
	})
}

// unsignedToken is a valid access token's header and claims with alg none
// and no signature.
func unsignedToken(t *testing.T, idp *fakeidp.OIDC) string {
	t.Helper()
	claims := map[string]any{"iss": idp.URL, "sub": "kc-1", "aud": siteAddr() + "/mcp", "azp": "c", "scope": "mcp:tools",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	_ = hdr.Set(jws.KeyIDKey, idp.KeyID())
	tok, err := jws.Sign(payload, jws.WithInsecureNoSignature(jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// hmacWithPublicKey signs a valid access token with HS256 keyed by the
// server's public key, the classic algorithm confusion.
func hmacWithPublicKey(t *testing.T, idp *fakeidp.OIDC) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(&idp.SigningKey().PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	claims := map[string]any{"iss": idp.URL, "sub": "kc-1", "aud": siteAddr() + "/mcp", "azp": "c", "scope": "mcp:tools",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	payload, _ := json.Marshal(claims)
	hdr := jws.NewHeaders()
	_ = hdr.Set(jws.TypeKey, "at+jwt")
	_ = hdr.Set(jws.KeyIDKey, idp.KeyID())
	tok, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), secret, jws.WithProtectedHeaders(hdr)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

func TestAttackIntrospectedTokenOfAnotherKind(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-1"})
	resource := siteAddr() + "/mcp"
	answer := func(extra map[string]any) map[string]any {
		a := map[string]any{"active": true, "sub": "kc-2", "aud": resource, "scope": "mcp:tools", "client_id": "c",
			"exp": time.Now().Add(time.Hour).Unix(), "iss": idp.URL}
		for k, v := range extra {
			a[k] = v
		}
		return a
	}
	answers := map[string]map[string]any{
		"no-token-type":       answer(nil),
		"bearer":              answer(map[string]any{"token_type": "Bearer"}),
		"bearer-lower":        answer(map[string]any{"token_type": "bearer"}),
		"access-token-uri":    answer(map[string]any{"token_type": "urn:ietf:params:oauth:token-type:access_token"}),
		"refresh-token":       answer(map[string]any{"token_type": "refresh_token"}),
		"refresh-token-uri":   answer(map[string]any{"token_type": "urn:ietf:params:oauth:token-type:refresh_token"}),
		"id-token-uri":        answer(map[string]any{"token_type": "urn:ietf:params:oauth:token-type:id_token"}),
		"dpop":                answer(map[string]any{"token_type": "DPoP"}),
		"not-applicable":      answer(map[string]any{"token_type": "N_A"}),
		"keycloak-refresh":    answer(map[string]any{"typ": "Refresh"}),
		"keycloak-bearer":     answer(map[string]any{"typ": "Bearer"}),
		"cnf-bound":           answer(map[string]any{"token_type": "Bearer", "cnf": map[string]any{"jkt": "x"}}),
		"issued-in-future":    answer(map[string]any{"iat": time.Now().Add(10 * time.Minute).Unix()}),
		"other-audience":      answer(map[string]any{"aud": siteAddr() + "/MCP"}),
		"active-as-string":    answer(map[string]any{"active": "true"}),
		"inactive-but-bearer": answer(map[string]any{"active": false, "token_type": "Bearer"}),
	}
	serveIntrospection(idp, answers)
	client := startExternal(t, idp, "\n\t\t\tintrospection rs-client rs-secret-0123456789")
	want := map[string]int{"no-token-type": 200, "bearer": 200, "bearer-lower": 200, "access-token-uri": 200, "keycloak-bearer": 200,
		"active-as-string": 503}
	cases := map[string]externalStatusCase{}
	for tok := range answers {
		status, ok := want[tok]
		if !ok {
			status = 401
		}
		cases[tok] = externalStatusCase{tok, status}
	}
	assertExternalStatuses(t, client, cases)
}

// slowJWKS lets the idp's JWKS endpoint hang while hold is set, and counts
// its requests.
type slowJWKS struct {
	requests atomic.Int32
	mu       sync.Mutex
	hold     chan struct{}
}

func (s *slowJWKS) install(t *testing.T, idp *fakeidp.OIDC) {
	t.Helper()
	resp, err := http.Get(idp.URL + idp.Paths.JWKS)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	idp.Handle(idp.Paths.JWKS, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		hold := s.hold
		s.mu.Unlock()
		if hold != nil {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(keys)
	}))
}

func (s *slowJWKS) setHold(hold chan struct{}) {
	s.mu.Lock()
	s.hold = hold
	s.mu.Unlock()
}

func TestAttackUnknownKidFloodForcesJWKSFetches(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-1"})
	var jwks slowJWKS
	jwks.install(t, idp)
	client := startExternal(t, idp, "")
	if status, _, body := initialize(t, client, "/mcp", externalToken(t, idp, "at+jwt", nil)); status != 200 {
		t.Fatalf("valid token: %d %s", status, body)
	}
	// Tokens naming made-up kids, 8 at a time, for a bit more than one
	// fetch interval (10 s): each kid is new, so only the interval bounds
	// the fetches.
	start := time.Now()
	var sent atomic.Int32
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Since(start) < 11*time.Second; i++ {
				tok, err := fakeidp.SignRS256Typed(idp.SigningKey(), fmt.Sprintf("made-up-%d-%d", w, i), "at+jwt",
					map[string]any{"iss": idp.URL, "sub": "x", "aud": siteAddr() + "/mcp", "azp": "c", "iat": time.Now().Unix(),
						"exp": time.Now().Add(time.Hour).Unix()})
				if err != nil {
					t.Error(err)
					return
				}
				if status, _, _ := oauthtest.Get(t, client, siteAddr()+"/mcp", oauthtest.Bearer(tok)); status != http.StatusUnauthorized {
					t.Errorf("made-up kid: status %d", status)
					return
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	// One fetch at the start, then at most one per 10 s.
	if n := jwks.requests.Load(); n > 3 {
		t.Errorf("%d tokens with made-up kids caused %d key set fetches, want at most 3", sent.Load(), n)
	}
	t.Logf("%d tokens with made-up kids, %d key set fetches", sent.Load(), jwks.requests.Load())
}

func TestAttackSlowJWKSStallsVerification(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "kc-1"})
	var jwks slowJWKS
	jwks.install(t, idp)
	client := startExternal(t, idp, "")
	good := externalToken(t, idp, "at+jwt", nil)
	if status, _, body := initialize(t, client, "/mcp", good); status != 200 {
		t.Fatalf("valid token: %d %s", status, body)
	}
	fetched := time.Now()

	// The key set endpoint now hangs; a token with an unknown kid, sent
	// once the fetch interval allows it, starts a fetch that does not end.
	hold := make(chan struct{})
	jwks.setHold(hold)
	defer close(hold)
	time.Sleep(time.Until(fetched.Add(10*time.Second + 200*time.Millisecond)))
	unknownDone := make(chan int, 1)
	go func() {
		tok, err := fakeidp.SignRS256Typed(fakeidp.NewRSAKey(t), "rotated-away", "at+jwt", map[string]any{"iss": idp.URL})
		if err != nil {
			t.Error(err)
		}
		status, _, _ := oauthtest.Get(t, client, siteAddr()+"/mcp", oauthtest.Bearer(tok))
		unknownDone <- status
	}()
	for deadline := time.Now().Add(5 * time.Second); jwks.requests.Load() < 2; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the unknown kid started no fetch")
		}
	}
	// While it hangs, tokens with the known kid pass at once.
	for i := range 20 {
		start := time.Now()
		if status, _, body := initialize(t, client, "/mcp", good); status != 200 {
			t.Fatalf("request %d with a known kid during the fetch: %d %s", i, status, body)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("request %d with a known kid took %v while the key set fetch hung", i, d)
		}
	}
	// The token that waits for the fetch gives up after a bounded time.
	select {
	case status := <-unknownDone:
		if status != http.StatusUnauthorized {
			t.Errorf("unknown kid while the fetch hangs: %d", status)
		}
	case <-time.After(10 * time.Second):
		t.Error("the token with an unknown kid waited more than 10 s")
	}
}
