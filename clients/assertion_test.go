package clients

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

const (
	testClientID = "https://chatgpt.com/oauth/abc/client.json"
	testAudience = "https://mcp.example.com/token"
)

var jtiCounter atomic.Int64

// claimsAt returns valid assertion claims for testClientID at now, with
// overrides applied (nil deletes a claim).
func claimsAt(now time.Time, overrides map[string]any) map[string]any {
	c := map[string]any{
		"iss": testClientID,
		"sub": testClientID,
		"aud": testAudience,
		"iat": now.Unix(),
		"exp": now.Add(5 * time.Minute).Unix(),
		"jti": fmt.Sprintf("jti-%d", jtiCounter.Add(1)),
	}
	for k, v := range overrides {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func pkjClient() *Client {
	return &Client{ClientID: testClientID, TokenEndpointAuthMethod: AuthMethodPrivateKeyJWT, Metadata: true}
}

// testSet is the client's published set: an RSA key k1, a P-256 key k2,
// a P-384 key k3 and an Ed25519 key k4.
func testSet(t *testing.T) func(context.Context) (jwk.Set, error) {
	k := testKeys()
	return staticKeys(t, jwksJSON(t,
		publicJWK(t, &k.rsa.PublicKey, "k1"),
		publicJWK(t, &k.ec.PublicKey, "k2"),
		publicJWK(t, &k.ec384.PublicKey, "k3"),
		publicJWK(t, k.ed.Public(), "k4"),
	))
}

func TestVerifyAssertionValid(t *testing.T) {
	k := testKeys()
	store := newUsedAssertions()
	keys := testSet(t)
	tests := []struct {
		name string
		priv any
		alg  jwa.SignatureAlgorithm
		kid  string
		over map[string]any
	}{
		{"RS256", k.rsa, jwa.RS256(), "k1", nil},
		{"RS512", k.rsa, jwa.RS512(), "k1", nil},
		{"PS256", k.rsa, jwa.PS256(), "k1", nil},
		{"ES256", k.ec, jwa.ES256(), "k2", nil},
		{"ES384", k.ec384, jwa.ES384(), "k3", nil},
		{"EdDSA", k.ed, jwa.EdDSA(), "k4", nil},
		{"aud array", k.rsa, jwa.RS256(), "k1", map[string]any{"aud": []string{"https://other.test", testAudience}}},
		{"no iat", k.rsa, jwa.RS256(), "k1", map[string]any{"iat": nil}},
		{"nbf now", k.rsa, jwa.RS256(), "k1", map[string]any{"nbf": testNow.Unix()}},
		{"expired within skew", k.rsa, jwa.RS256(), "k1", map[string]any{"exp": testNow.Add(-20 * time.Second).Unix()}},
		{"exp at 10 minutes", k.rsa, jwa.RS256(), "k1", map[string]any{"exp": testNow.Add(10 * time.Minute).Unix()}},
		{"fractional dates", k.rsa, jwa.RS256(), "k1", map[string]any{"exp": float64(testNow.Add(time.Minute).Unix()) + 0.5, "iat": float64(testNow.Unix()) + 0.25}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := sign(t, tc.priv, tc.alg, tc.kid, claimsAt(testNow, tc.over))
			if err := VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, keys, store, testNow); err != nil {
				t.Fatalf("VerifyAssertion: %v", err)
			}
		})
	}
}

func TestVerifyAssertionSingleKeyWithoutKid(t *testing.T) {
	k := testKeys()
	keys := staticKeys(t, jwksJSON(t, publicJWK(t, &k.ec.PublicKey, "")))
	a := sign(t, k.ec, jwa.ES256(), "", claimsAt(testNow, nil))
	if err := VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, keys, newUsedAssertions(), testNow); err != nil {
		t.Fatal(err)
	}
	// A kid the set does not have is still unknown, even with one key.
	a = sign(t, k.ec, jwa.ES256(), "nope", claimsAt(testNow, nil))
	wantRejected(t, VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, keys, newUsedAssertions(), testNow), "unknown key")
}

func TestVerifyAssertionRejects(t *testing.T) {
	k := testKeys()
	keys := testSet(t)
	pubJSON, _ := json.Marshal(publicJWK(t, &k.rsa.PublicKey, "k1"))
	alg := jwa.RS256()
	tests := []struct {
		name      string
		assertion func() string
		client    *Client
		want      string
	}{
		{name: "aud double slash", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"aud": "https://mcp.example.com//token"}))
		}, want: "audience"},
		{name: "aud trailing slash", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"aud": testAudience + "/"}))
		}, want: "audience"},
		{name: "aud issuer", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"aud": "https://mcp.example.com"}))
		}, want: "audience"},
		{name: "aud host case", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"aud": "https://MCP.example.com/token"}))
		}, want: "audience"},
		{name: "aud array without us", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"aud": []string{"https://a.test/token", "https://mcp.example.com//token"}}))
		}, want: "audience"},
		{name: "aud missing", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"aud": nil}))
		}, want: "audience"},
		{name: "aud number", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"aud": 5}))
		}, want: "malformed"},
		{name: "expired", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"exp": testNow.Add(-31 * time.Second).Unix()}))
		}, want: "expired"},
		{name: "exp too far", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"exp": testNow.Add(11 * time.Minute).Unix()}))
		}, want: "too far in the future"},
		{name: "exp a year away", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"exp": testNow.Add(365 * 24 * time.Hour).Unix()}))
		}, want: "too far in the future"},
		{name: "no exp", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"exp": nil}))
		}, want: "no exp"},
		{name: "exp string", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"exp": "tomorrow"}))
		}, want: "malformed"},
		{name: "nbf future", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"nbf": testNow.Add(2 * time.Minute).Unix()}))
		}, want: "not valid yet"},
		{name: "iat future", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"iat": testNow.Add(2 * time.Minute).Unix()}))
		}, want: "issued in the future"},
		{name: "iss != sub", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"sub": "someone-else"}))
		}, want: "iss and sub"},
		{name: "iss other client", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"iss": "https://evil.test/client.json"}))
		}, want: "iss and sub"},
		{name: "iss normalised", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"iss": testClientID + "/", "sub": testClientID + "/"}))
		}, want: "iss and sub"},
		{name: "no jti", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, map[string]any{"jti": nil}))
		}, want: "no jti"},
		{name: "alg none", assertion: func() string {
			return unsigned(map[string]any{"alg": "none", "typ": "JWT"}, claimsAt(testNow, nil))
		}, want: "algorithm is not allowed"},
		{name: "alg none with kid", assertion: func() string {
			return unsigned(map[string]any{"alg": "none", "kid": "k1"}, claimsAt(testNow, nil)) + "c2ln"
		}, want: "algorithm is not allowed"},
		{name: "HS256 with public key bytes", assertion: func() string {
			return sign(t, pubJSON, jwa.HS256(), "k1", claimsAt(testNow, nil))
		}, want: "algorithm is not allowed"},
		{name: "HS256 no kid", assertion: func() string {
			return sign(t, pubJSON, jwa.HS256(), "", claimsAt(testNow, nil))
		}, want: "algorithm is not allowed"},
		{name: "unknown kid", assertion: func() string {
			return sign(t, k.rsa, alg, "k9", claimsAt(testNow, nil))
		}, want: "unknown key"},
		{name: "signed by another key", assertion: func() string {
			return sign(t, k.rsaOther, alg, "k1", claimsAt(testNow, nil))
		}, want: "signature is invalid"},
		{name: "ES256 header on RSA key", assertion: func() string {
			return sign(t, k.ec, jwa.ES256(), "k1", claimsAt(testNow, nil))
		}, want: "does not match its key"},
		{name: "RS256 header on EC key", assertion: func() string {
			return sign(t, k.rsa, alg, "k2", claimsAt(testNow, nil))
		}, want: "does not match its key"},
		{name: "ES256 header on P-384 key", assertion: func() string {
			return sign(t, k.ec, jwa.ES256(), "k3", claimsAt(testNow, nil))
		}, want: "does not match its key"},
		{name: "ES512 not allowed", assertion: func() string {
			return sign(t, k.ec, jwa.ES512(), "k2", claimsAt(testNow, nil))
		}, want: "algorithm is not allowed"},
		{name: "no kid, several keys", assertion: func() string {
			return sign(t, k.rsa, alg, "", claimsAt(testNow, nil))
		}, want: "no kid"},
		{name: "payload swapped", assertion: func() string {
			good := strings.Split(sign(t, k.rsa, alg, "k1", claimsAt(testNow, nil)), ".")
			evil, _ := json.Marshal(claimsAt(testNow, map[string]any{"iss": "x"}))
			return good[0] + "." + base64.RawURLEncoding.EncodeToString(evil) + "." + good[2]
		}, want: "signature is invalid"},
		{name: "not a JWT", assertion: func() string { return "hello" }, want: "not a signed JWT"},
		{name: "two parts", assertion: func() string { return "a.b" }, want: "not a signed JWT"},
		{name: "padding", assertion: func() string { return sign(t, k.rsa, alg, "k1", claimsAt(testNow, nil)) + "==" }, want: "not a signed JWT"},
		{name: "JWE-shaped", assertion: func() string { return "a.b.c.d.e" }, want: "not a signed JWT"},
		{name: "garbage", assertion: func() string { return "aaaa.bbbb.cccc" }, want: "signature is invalid"},
		// The unused bits of "aaa"'s last character are not zero: another
		// spelling of the bytes "aaa" with zero bits would decode to.
		{name: "non-canonical base64", assertion: func() string { return "aaa.bbb.ccc" }, want: "not a signed JWT"},
		{name: "too large", assertion: func() string { return strings.Repeat("a", maxAssertionLength) + ".b.c" }, want: "too large"},
		{name: "client not private_key_jwt", assertion: func() string {
			return sign(t, k.rsa, alg, "k1", claimsAt(testNow, nil))
		}, client: &Client{ClientID: testClientID, TokenEndpointAuthMethod: AuthMethodNone}, want: "not registered for private_key_jwt"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := tc.client
			if c == nil {
				c = pkjClient()
			}
			err := VerifyAssertion(context.Background(), tc.assertion(), c, []string{testAudience}, keys, newUsedAssertions(), testNow)
			wantRejected(t, err, tc.want)
		})
	}
}

func TestVerifyAssertionKeyConstraints(t *testing.T) {
	k := testKeys()
	withMember := func(key jwk.Key, name string, v any) jwk.Key {
		if err := key.Set(name, v); err != nil {
			t.Fatal(err)
		}
		return key
	}
	for _, tc := range []struct {
		name string
		key  jwk.Key
		want string
	}{
		{"alg pinned to RS512", withMember(publicJWK(t, &k.rsa.PublicKey, "k1"), jwk.AlgorithmKey, jwa.RS512()), "does not match its key"},
		{"encryption key", withMember(publicJWK(t, &k.rsa.PublicKey, "k1"), jwk.KeyUsageKey, "enc"), "not a signing key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			keys := staticKeys(t, jwksJSON(t, tc.key))
			a := sign(t, k.rsa, jwa.RS256(), "k1", claimsAt(testNow, nil))
			wantRejected(t, VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, keys, newUsedAssertions(), testNow), tc.want)
		})
	}
	t.Run("alg pinned and matching", func(t *testing.T) {
		keys := staticKeys(t, jwksJSON(t, withMember(publicJWK(t, &k.rsa.PublicKey, "k1"), jwk.AlgorithmKey, jwa.RS256())))
		a := sign(t, k.rsa, jwa.RS256(), "k1", claimsAt(testNow, nil))
		if err := VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, keys, newUsedAssertions(), testNow); err != nil {
			t.Fatal(err)
		}
	})
}

func TestVerifyAssertionReplay(t *testing.T) {
	k := testKeys()
	store := newUsedAssertions()
	keys := testSet(t)
	a := sign(t, k.rsa, jwa.RS256(), "k1", claimsAt(testNow, map[string]any{"jti": "once"}))
	if err := VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, keys, store, testNow); err != nil {
		t.Fatal(err)
	}
	wantRejected(t, VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, keys, store, testNow.Add(time.Second)), "already been used")

	// A fresh assertion reusing the jti is a replay too.
	b := sign(t, k.ec, jwa.ES256(), "k2", claimsAt(testNow, map[string]any{"jti": "once", "exp": testNow.Add(time.Minute).Unix()}))
	wantRejected(t, VerifyAssertion(context.Background(), b, pkjClient(), []string{testAudience}, keys, store, testNow), "already been used")

	// The jti is kept under the client's namespace (stored hashed: see
	// state.Clients.UseAssertion).
	if !store.usedBy(testClientID, "once") {
		t.Error("jti not recorded for the client")
	}

	// A rejected assertion does not burn its jti.
	bad := sign(t, k.rsa, jwa.RS256(), "k1", claimsAt(testNow, map[string]any{"jti": "later", "aud": "https://wrong.test/token"}))
	wantRejected(t, VerifyAssertion(context.Background(), bad, pkjClient(), []string{testAudience}, keys, store, testNow), "audience")
	good := sign(t, k.rsa, jwa.RS256(), "k1", claimsAt(testNow, map[string]any{"jti": "later"}))
	if err := VerifyAssertion(context.Background(), good, pkjClient(), []string{testAudience}, keys, store, testNow); err != nil {
		t.Fatalf("jti burnt by a rejected assertion: %v", err)
	}
}

func TestVerifyAssertionConcurrentReplay(t *testing.T) {
	k := testKeys()
	store := newUsedAssertions()
	keys := testSet(t)
	a := sign(t, k.rsa, jwa.RS256(), "k1", claimsAt(testNow, nil))
	var ok, replayed atomic.Int32
	var wg sync.WaitGroup
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, keys, store, testNow)
			var ae *AssertionError
			switch {
			case err == nil:
				ok.Add(1)
			case errors.As(err, &ae) && strings.Contains(ae.Reason, "already been used"):
				replayed.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || replayed.Load() != 9 {
		t.Errorf("%d accepted, %d replays; want 1 and 9", ok.Load(), replayed.Load())
	}
}

func TestVerifyAssertionKeySourceFailure(t *testing.T) {
	k := testKeys()
	a := sign(t, k.rsa, jwa.RS256(), "k1", claimsAt(testNow, nil))
	failing := func(context.Context) (jwk.Set, error) {
		return nil, &MetadataError{Description: "client key set could not be fetched: timed out", cause: errors.New("dial tcp 10.1.2.3:443: i/o timeout")}
	}
	err := VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, failing, newUsedAssertions(), testNow)
	wantRejected(t, err, "could not be loaded")
	if strings.Contains(err.Error(), "10.1.2.3") {
		t.Errorf("error %q leaks the cause", err)
	}
}

func TestVerifyAssertionStoreFailure(t *testing.T) {
	k := testKeys()
	failing := newUsedAssertions()
	failing.err = errors.New("storage: closed")
	a := sign(t, k.rsa, jwa.RS256(), "k1", claimsAt(testNow, nil))
	err := VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, testSet(t), failing, testNow)
	var ae *AssertionError
	if err == nil || errors.As(err, &ae) {
		t.Fatalf("err = %v; a store failure is a server error, not an *AssertionError", err)
	}
}

// A client that rotates its keys signs with a kid the cached set lacks: the
// set is fetched again, but an unknown kid may force that at most once a
// minute.
func TestVerifyAssertionKeyRotation(t *testing.T) {
	k := testKeys()
	ds := newDocServer(t)
	var mu sync.Mutex
	current := jwksJSON(t, publicJWK(t, &k.rsa.PublicKey, "old"))
	jwksURL := ds.handle("/jwks.json", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		body := current
		mu.Unlock()
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "max-age=86400")
		_, _ = w.Write(body)
	})
	url := ds.serveJSON("/client.json", func(u string) []byte {
		return doc(u, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": jwksURL})
	}, "")
	f := ds.fetcher(FetcherOptions{})
	clock := oauthtest.NewClock(testNow)
	f.now = clock.Now
	c, err := f.Client(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	store := newUsedAssertions()
	verify := func(priv any, kid string) error {
		claims := claimsAt(clock.Now(), map[string]any{"iss": url, "sub": url})
		return VerifyAssertion(context.Background(), sign(t, priv, jwa.RS256(), kid, claims), c, []string{testAudience}, f.Keys(c), store, clock.Now())
	}

	if err := verify(k.rsa, "old"); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	current = jwksJSON(t, publicJWK(t, &k.rsaOther.PublicKey, "new"))
	mu.Unlock()

	// Within a minute of the last fetch, unknown kids do not refetch.
	clock.Advance(30 * time.Second)
	wantRejected(t, verify(k.rsaOther, "new"), "unknown key")
	wantRejected(t, verify(k.rsaOther, "bogus"), "unknown key")
	if n := ds.count("/jwks.json"); n != 1 {
		t.Fatalf("%d JWKS fetches, want 1", n)
	}
	clock.Advance(31 * time.Second)
	if err := verify(k.rsaOther, "new"); err != nil {
		t.Fatalf("after rotation: %v", err)
	}
	if n := ds.count("/jwks.json"); n != 2 {
		t.Fatalf("%d JWKS fetches, want 2", n)
	}
	// Known kids never force a fetch.
	for range 3 {
		if err := verify(k.rsaOther, "new"); err != nil {
			t.Fatal(err)
		}
	}
	if n := ds.count("/jwks.json"); n != 2 {
		t.Errorf("%d JWKS fetches, want 2", n)
	}
}

// wantRejected fails unless err is an *AssertionError whose reason
// contains want.
func wantRejected(t *testing.T, err error, want string) {
	t.Helper()
	var ae *AssertionError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an *AssertionError", err)
	}
	if !strings.Contains(ae.Reason, want) {
		t.Errorf("reason %q, want it to mention %q", ae.Reason, want)
	}
}

// unsigned builds a compact JWS with the given header and an empty
// signature.
func unsigned(header, claims map[string]any) string {
	h, _ := json.Marshal(header)
	c, _ := json.Marshal(claims)
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

func TestAssertionSubject(t *testing.T) {
	k := testKeys()
	a := sign(t, k.rsa, jwa.RS256(), "k1", claimsAt(testNow, nil))
	if got := AssertionSubject(a); got != testClientID {
		t.Errorf("AssertionSubject = %q, want %q", got, testClientID)
	}
	for _, bad := range []string{"", "x", "a.b.c", "a.!!.c", strings.Repeat("a", maxAssertionLength) + ".e30.c",
		"e30." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":5}`)) + ".c"} {
		if got := AssertionSubject(bad); got != "" {
			t.Errorf("AssertionSubject(%.20q) = %q, want \"\"", bad, got)
		}
	}
}

func TestAssertionAlgorithms(t *testing.T) {
	want := []string{"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"}
	if strings.Join(AssertionAlgorithms, " ") != strings.Join(want, " ") {
		t.Errorf("AssertionAlgorithms = %q, want %q", AssertionAlgorithms, want)
	}
}

func TestVerifyAssertionRefusedBeforeKeysAreLoaded(t *testing.T) {
	loaded := 0
	keys := func(context.Context) (jwk.Set, error) {
		loaded++
		return nil, errors.New("must not be asked")
	}
	for name, a := range map[string]string{
		"alg none":   unsigned(map[string]any{"alg": "none", "kid": "k1"}, claimsAt(testNow, nil)),
		"HS256":      unsigned(map[string]any{"alg": "HS256", "kid": "k1"}, claimsAt(testNow, nil)) + "c2ln",
		"not a JWT":  "a.b",
		"padded JWS": unsigned(map[string]any{"alg": "RS256", "kid": "k1"}, claimsAt(testNow, nil)) + "c2ln=",
	} {
		if err := VerifyAssertion(context.Background(), a, pkjClient(), []string{testAudience}, keys, newUsedAssertions(), testNow); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if loaded != 0 {
		t.Errorf("keys were loaded %d times for assertions refused on sight", loaded)
	}
}
