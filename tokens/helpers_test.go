package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

const (
	testIssuer   = "https://auth.example.com"
	testAudience = "https://mcp.example.com/mcp"
)

// newFakeClock starts at a whole second, so second-granular claims (exp, nbf,
// iat) compare exactly against it.
func newFakeClock() *oauthtest.Clock {
	return oauthtest.NewClock(time.Now().Truncate(time.Second))
}

// openStore opens a real Badger store in a fresh temporary directory.
func openStore(t testing.TB) *storage.Badger {
	t.Helper()
	db, err := storage.OpenBadger(t.TempDir(), nil)
	if err != nil {
		t.Fatalf("OpenBadger: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("closing badger: %v", err)
		}
	})
	return db
}

func testConfig(alg string) KeyRingConfig {
	return KeyRingConfig{Algorithm: alg, RotationPeriod: 24 * time.Hour, RetainPeriod: 2 * time.Hour}
}

// newRing is NewKeyRing with real time.
func newRing(t testing.TB, store storage.Store, cfg KeyRingConfig) *KeyRing {
	t.Helper()
	kr, err := NewKeyRing(context.Background(), store, cfg)
	if err != nil {
		t.Fatalf("NewKeyRing(%+v): %v", cfg, err)
	}
	return kr
}

// newClockRing does what NewKeyRing does, but on clk's time from the very
// first Maintain, so that everything the ring plans is on the fake timeline.
func newClockRing(t testing.TB, store storage.Store, cfg KeyRingConfig, clk *oauthtest.Clock) *KeyRing {
	t.Helper()
	if cfg.Algorithm == "" {
		cfg.Algorithm = "ES256"
	}
	alg, err := signatureAlgorithm(cfg.Algorithm)
	if err != nil {
		t.Fatal(err)
	}
	kr := &KeyRing{store: store, cfg: cfg, alg: alg, now: clk.Now}
	if err := kr.Maintain(context.Background()); err != nil {
		t.Fatalf("Maintain: %v", err)
	}
	return kr
}

func validClaims() AccessClaims {
	return AccessClaims{
		Issuer:   testIssuer,
		Subject:  "user-123",
		Audience: Audience{testAudience},
		ClientID: "client-abc",
		Scope:    "mcp:tools mcp:resources",
	}
}

func mint(t testing.TB, kr *KeyRing, lifetime time.Duration) string {
	t.Helper()
	tok, err := kr.MintAccessToken(validClaims(), lifetime)
	if err != nil {
		t.Fatalf("MintAccessToken: %v", err)
	}
	return tok
}

// claimsMap returns complete, valid access token claims at now as a map, so
// a test can remove or change any of them.
func claimsMap(now time.Time) map[string]any {
	return map[string]any{
		"iss":       testIssuer,
		"sub":       "user-123",
		"aud":       testAudience,
		"exp":       now.Add(time.Hour).Unix(),
		"iat":       now.Unix(),
		"jti":       NewID(),
		"client_id": "client-abc",
		"scope":     "mcp:tools",
	}
}

// tokenHeader decodes the JOSE header of a compact JWS.
func tokenHeader(t testing.TB, tok string) map[string]any {
	t.Helper()
	seg, _, _ := strings.Cut(tok, ".")
	raw, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		t.Fatalf("decoding header of %q: %v", tok, err)
	}
	var h map[string]any
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatalf("parsing header %s: %v", raw, err)
	}
	return h
}

func tokenKid(t testing.TB, tok string) string {
	t.Helper()
	kid, _ := tokenHeader(t, tok)["kid"].(string)
	if kid == "" {
		t.Fatalf("token has no kid: %v", tokenHeader(t, tok))
	}
	return kid
}

// jwksKeys parses a JWKS document into its keys' members.
func jwksKeys(t testing.TB, doc []byte) []map[string]any {
	t.Helper()
	var set struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal(doc, &set); err != nil {
		t.Fatalf("JWKS is not JSON: %v\n%s", err, doc)
	}
	return set.Keys
}

func jwksKids(t testing.TB, doc []byte) map[string]bool {
	t.Helper()
	kids := make(map[string]bool)
	for _, k := range jwksKeys(t, doc) {
		kid, _ := k["kid"].(string)
		kids[kid] = true
	}
	return kids
}

// b64 is base64url without padding, as JOSE uses it.
func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// forgeES256 builds a compact JWS with exactly the given header, genuinely
// signed by kr's current ES256 key, so only the header or claims are wrong.
func forgeES256(t testing.TB, kr *KeyRing, header map[string]any, claims any) string {
	t.Helper()
	key, err := kr.signingKey()
	if err != nil {
		t.Fatal(err)
	}
	var raw any
	if err := jwk.Export(key.private, &raw); err != nil {
		t.Fatalf("exporting ES256 key: %v", err)
	}
	priv, ok := raw.(*ecdsa.PrivateKey)
	if !ok {
		t.Fatalf("signing key is a %T, want *ecdsa.PrivateKey", raw)
	}
	input := b64(mustJSON(t, header)) + "." + b64(mustJSON(t, claims))
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + b64(sig)
}

// wantInvalid asserts that err is an *InvalidTokenError whose reason
// contains one of the given fragments, and that it does not echo the token.
func wantInvalid(t testing.TB, err error, tok string, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("token accepted, want rejection (%v)", fragments)
	}
	var ite *InvalidTokenError
	if !errors.As(err, &ite) {
		t.Fatalf("error %v (%T) is not an *InvalidTokenError", err, err)
	}
	if ite.Reason == "" {
		t.Fatalf("InvalidTokenError has an empty reason")
	}
	if len(tok) > 20 && strings.Contains(err.Error(), tok) {
		t.Errorf("error text %q contains the token", err)
	}
	for _, f := range fragments {
		if strings.Contains(ite.Reason, f) {
			return
		}
	}
	t.Fatalf("reason %q, want one containing one of %q", ite.Reason, fragments)
}
