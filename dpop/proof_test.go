package dpop

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

const target = "https://mcp.example.com/mcp"

func newVerifier() *Verifier {
	v := &Verifier{}
	v.Replay = NewMemoryReplay(v.Span(), 1000)
	return v
}

func reason(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Reason
	}
	if err == nil {
		return ""
	}
	return "not a proof error: " + err.Error()
}

func TestVerifyAcceptsAFreshProofOnceAndNamesItsKey(t *testing.T) {
	key := oauthtest.NewDPoPKey(t)
	v := newVerifier()
	proof := key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: target, AccessToken: "tok"})
	got, err := v.Verify(context.Background(), Request{Proof: proof, Method: "POST", URL: target, AccessToken: "tok", BoundTo: key.JKT})
	if err != nil {
		t.Fatalf("fresh proof refused: %v", err)
	}
	if got.JKT != key.JKT {
		t.Fatalf("jkt = %q, want the key's thumbprint %q", got.JKT, key.JKT)
	}
	_, err = v.Verify(context.Background(), Request{Proof: proof, Method: "POST", URL: target, AccessToken: "tok"})
	if !strings.Contains(reason(err), "already been used") {
		t.Fatalf("replayed proof: %v", err)
	}
}

func TestVerifyRefusesProofsThatDoNotMatchTheRequest(t *testing.T) {
	key := oauthtest.NewDPoPKey(t)
	other := oauthtest.NewDPoPKey(t)
	now := time.Now()
	cases := []struct {
		name   string
		claims oauthtest.ProofClaims
		req    Request
		want   string
	}{
		{"other method", oauthtest.ProofClaims{Method: "GET", URL: target}, Request{Method: "POST", URL: target}, "htm"},
		{"method case", oauthtest.ProofClaims{Method: "post", URL: target}, Request{Method: "POST", URL: target}, "htm"},
		{"other host", oauthtest.ProofClaims{Method: "POST", URL: "https://evil.example.com/mcp"}, Request{Method: "POST", URL: target}, "htu"},
		{"other path", oauthtest.ProofClaims{Method: "POST", URL: "https://mcp.example.com/other"}, Request{Method: "POST", URL: target}, "htu"},
		{"path case", oauthtest.ProofClaims{Method: "POST", URL: "https://mcp.example.com/MCP"}, Request{Method: "POST", URL: target}, "htu"},
		{"other scheme", oauthtest.ProofClaims{Method: "POST", URL: "http://mcp.example.com/mcp"}, Request{Method: "POST", URL: target}, "htu"},
		{"other port", oauthtest.ProofClaims{Method: "POST", URL: "https://mcp.example.com:8443/mcp"}, Request{Method: "POST", URL: target}, "htu"},
		{"relative htu", oauthtest.ProofClaims{Method: "POST", URL: "/mcp"}, Request{Method: "POST", URL: target}, "htu"},
		{"stale", oauthtest.ProofClaims{Method: "POST", URL: target, IssuedAt: now.Add(-DefaultMaxAge - DefaultSkew - 5*time.Second)}, Request{Method: "POST", URL: target}, "too old"},
		{"future", oauthtest.ProofClaims{Method: "POST", URL: target, IssuedAt: now.Add(DefaultSkew + 5*time.Second)}, Request{Method: "POST", URL: target}, "future"},
		{"no ath", oauthtest.ProofClaims{Method: "POST", URL: target}, Request{Method: "POST", URL: target, AccessToken: "tok"}, "ath"},
		{"ath of another token", oauthtest.ProofClaims{Method: "POST", URL: target, AccessToken: "other"}, Request{Method: "POST", URL: target, AccessToken: "tok"}, "ath"},
		{"bound to another key", oauthtest.ProofClaims{Method: "POST", URL: target}, Request{Method: "POST", URL: target, BoundTo: other.JKT}, "not the key"},
		{"no jti", oauthtest.ProofClaims{Method: "POST", URL: target, Extra: map[string]any{"jti": ""}}, Request{Method: "POST", URL: target}, "lacks"},
		{"no iat", oauthtest.ProofClaims{Method: "POST", URL: target, Extra: map[string]any{"iat": nil}}, Request{Method: "POST", URL: target}, "lacks"},
		{"iat a string", oauthtest.ProofClaims{Method: "POST", URL: target, Extra: map[string]any{"iat": "1"}}, Request{Method: "POST", URL: target}, "malformed"},
		// encoding/json would read HTM as htm; other parsers do not.
		{"claim name case", oauthtest.ProofClaims{Method: "GET", URL: target, Extra: map[string]any{"HTM": "POST"}}, Request{Method: "POST", URL: target}, "htm"},
		{"jti too long", oauthtest.ProofClaims{Method: "POST", URL: target, JTI: strings.Repeat("j", 300)}, Request{Method: "POST", URL: target}, "too long"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.req.Proof = key.Proof(t, c.claims)
			_, err := newVerifier().Verify(context.Background(), c.req)
			if !strings.Contains(reason(err), c.want) {
				t.Fatalf("got %v, want a refusal about %q", err, c.want)
			}
		})
	}
}

func TestVerifyComparesHTUAsTheSpecNormalisesIt(t *testing.T) {
	key := oauthtest.NewDPoPKey(t)
	for _, htu := range []string{
		"https://mcp.example.com/mcp?x=1",  // query ignored
		"https://mcp.example.com/mcp#frag", // fragment ignored
		"HTTPS://MCP.Example.COM/mcp",      // scheme and host case
		"https://mcp.example.com:443/mcp",  // default port
		"https://mcp.example.com/%6dcp",    // encoded unreserved character
		"https://mcp.example.com:/mcp?a#b", // empty port
	} {
		proof := key.Proof(t, oauthtest.ProofClaims{Method: "GET", URL: htu})
		if _, err := newVerifier().Verify(context.Background(), Request{Proof: proof, Method: "GET", URL: target}); err != nil {
			t.Errorf("htu %q refused for %s: %v", htu, target, err)
		}
	}
	for raw, want := range map[string]string{
		"https://a.example/":         "https://a.example/",
		"https://a.example":          "https://a.example/",
		"http://a.example:80/x%2fy":  "http://a.example/x%2Fy",
		"https://a.example/%7euser":  "https://a.example/~user",
		"https://user@a.example/":    "",
		"ftp://a.example/":           "",
		"https://a.example/%zz":      "",
		"mailto:someone@example.com": "",
	} {
		got, ok := NormalizeURL(raw)
		if !ok {
			got = ""
		}
		if got != want {
			t.Errorf("NormalizeURL(%q) = %q, want %q", raw, got, want)
		}
	}
}

func TestVerifyRefusesKeysAndAlgorithmsAProofMayNotUse(t *testing.T) {
	key := oauthtest.NewDPoPKey(t)
	claims := oauthtest.ProofClaims{Method: "POST", URL: target}
	privateJWK, err := jwk.Import(key.Private)
	if err != nil {
		t.Fatal(err)
	}
	weak, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	p384JWK, _ := jwk.Import(&p384.PublicKey)
	cases := map[string]string{
		"private jwk":          key.ProofWithHeader(t, claims, map[string]any{"jwk": privateJWK}),
		"no jwk":               key.ProofWithHeader(t, claims, map[string]any{"jwk": nil}),
		"typ JWT":              key.ProofWithHeader(t, claims, map[string]any{"typ": "JWT"}),
		"no typ":               key.ProofWithHeader(t, claims, map[string]any{"typ": nil}),
		"jwk of another key":   key.ProofWithHeader(t, claims, map[string]any{"jwk": p384JWK}),
		"HS256":                must(key.SignHS256(claims, []byte("0123456789abcdef0123456789abcdef"))),
		"RSA key of 1024 bits": weakRSAProof(t, weak),
		"alg none":             must(key.Unsigned(claims)),
	}
	for name, proof := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := newVerifier().Verify(context.Background(), Request{Proof: proof, Method: "POST", URL: target})
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("got %v, want a proof refusal", err)
			}
			t.Log(e.Reason)
		})
	}
}

func TestProofFromWantsOneHeader(t *testing.T) {
	h := http.Header{}
	if p, err := ProofFrom(h); p != "" || err != nil {
		t.Fatalf("no header: %q, %v", p, err)
	}
	h.Add("DPoP", "a")
	h.Add("dpop", "b")
	if _, err := ProofFrom(h); err == nil {
		t.Fatal("two DPoP headers accepted")
	}
	if _, err := ProofFrom(http.Header{"Dpop": {""}}); err == nil {
		t.Fatal("empty DPoP header accepted")
	}
}

func TestNoncesAreRequiredWhenOnAndExpire(t *testing.T) {
	key := oauthtest.NewDPoPKey(t)
	now := time.Now()
	v := newVerifier()
	v.Nonces = NewNonces([]byte("site key"), "https://mcp.example.com")
	v.Now = func() time.Time { return now }
	verify := func(nonce string) error {
		proof := key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: target, Nonce: nonce, IssuedAt: now})
		_, err := v.Verify(context.Background(), Request{Proof: proof, Method: "POST", URL: target})
		return err
	}
	needNonce := func(err error) bool {
		var e *Error
		return errors.As(err, &e) && e.NeedNonce
	}
	if err := verify(""); !needNonce(err) {
		t.Fatalf("proof without nonce: %v", err)
	}
	if err := verify(v.Nonces.Issue(now)); err != nil {
		t.Fatalf("proof with a fresh nonce: %v", err)
	}
	if err := verify(v.Nonces.Issue(now.Add(-DefaultNonceLifetime - time.Second))); !needNonce(err) {
		t.Fatalf("proof with an expired nonce: %v", err)
	}
	if err := verify(NewNonces([]byte("site key"), "https://other.example.com").Issue(now)); !needNonce(err) {
		t.Fatalf("proof with another site's nonce: %v", err)
	}
	forged := []byte(v.Nonces.Issue(now))
	forged[len(forged)-1] ^= 1
	if err := verify(string(forged)); !needNonce(err) {
		t.Fatalf("proof with a forged nonce: %v", err)
	}
}

func TestMemoryReplayRemembersForASpanAndIsBounded(t *testing.T) {
	now := time.Now()
	r := NewMemoryReplay(time.Minute, 2)
	r.now = func() time.Time { return now }
	use := func(jti string) (bool, error) { return r.Use(context.Background(), "k", jti, 0) }
	if ok, _ := use("a"); !ok {
		t.Fatal("first use refused")
	}
	now = now.Add(59 * time.Second)
	if ok, _ := use("a"); ok {
		t.Fatal("replay within the span accepted")
	}
	now = now.Add(2 * time.Second) // rotation: a is in the previous generation
	if ok, _ := use("a"); ok {
		t.Fatal("replay just after a rotation accepted")
	}
	if ok, _ := use("b"); !ok {
		t.Fatal("fresh proof refused")
	}
	if ok, _ := use("c"); !ok {
		t.Fatal("fresh proof refused")
	}
	if _, err := use("d"); !errors.Is(err, ErrReplayCacheFull) {
		t.Fatalf("over the bound: %v, want ErrReplayCacheFull", err)
	}
	now = now.Add(3 * time.Minute)
	if ok, err := use("d"); !ok || err != nil {
		t.Fatalf("after two spans: %v %v", ok, err)
	}
	if ok, _ := r.Use(context.Background(), "other key", "d", 0); !ok {
		t.Fatal("same jti of another key refused")
	}
}

// weakRSAProof is a proof signed with a short RSA key, made by hand since
// the JOSE library refuses such keys.
func weakRSAProof(t *testing.T, k *rsa.PrivateKey) string {
	hdr := `{"typ":"dpop+jwt","alg":"RS256","jwk":{"kty":"RSA","n":"` + base64.RawURLEncoding.EncodeToString(k.N.Bytes()) + `","e":"AQAB"}}`
	input := b64(hdr) + "." + b64(`{"jti":"w1","htm":"POST","htu":"`+target+`","iat":`+itoa(time.Now().Unix())+`}`)
	sum := sha256.Sum256([]byte(input))
	sig, err := rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func must(proof string, err error) string {
	if err != nil {
		panic(err)
	}
	return proof
}
