package clients

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// fuzzNow is the fixed time at which fuzzed assertions are checked, so
// that the committed corpus stays valid.
var fuzzNow = time.Unix(1893456000, 0)

// fuzzKey returns the deterministic Ed25519 key named name; the client's
// set holds the keys "k1" and "k2".
func fuzzKey(name string) ed25519.PrivateKey {
	seed := sha256.Sum256([]byte("mcp_auth assertion fuzz key " + name))
	return ed25519.NewKeyFromSeed(seed[:])
}

// fuzzAssertion signs claims with the key named keyName under kid.
func fuzzAssertion(t testing.TB, keyName, kid string, claims map[string]any) string {
	payload, _ := json.Marshal(claims)
	hdrs := jws.NewHeaders()
	if kid != "" {
		_ = hdrs.Set(jws.KeyIDKey, kid)
	}
	out, err := jws.Sign(payload, jws.WithKey(jwa.EdDSA(), fuzzKey(keyName), jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// FuzzVerifyAssertion mutates client assertions. Whatever VerifyAssertion
// accepts must pass a reference check done by hand: the JWS is EdDSA and
// its signature verifies with one of the client's two keys, iss and sub
// are exactly the client_id, aud is or contains the token endpoint or the
// issuer (fuzzAudiences) and nothing that merely resembles them, exp is
// present and neither past nor more than ten minutes ahead, nbf and iat
// are not in the future, jti is present; and the same assertion is never
// accepted twice.
var fuzzAudiences = []string{testAudience, "https://mcp.example.com"}

func FuzzVerifyAssertion(f *testing.F) {
	valid := claimsAt(fuzzNow, map[string]any{"jti": "seed"})
	for _, seed := range []string{
		fuzzAssertion(f, "k1", "k1", valid),
		fuzzAssertion(f, "k2", "k2", claimsAt(fuzzNow, map[string]any{"jti": "seed-2", "aud": []string{"https://other.example", testAudience}})),
		fuzzAssertion(f, "k1", "", valid),
		fuzzAssertion(f, "k1", "k1", claimsAt(fuzzNow, map[string]any{"jti": "seed-4", "aud": "https://mcp.example.com"})),
		fuzzAssertion(f, "k1", "k1", claimsAt(fuzzNow, map[string]any{"jti": "seed-5", "aud": "https://mcp.example.com/"})),
		fuzzAssertion(f, "k3", "k1", valid),
		fuzzAssertion(f, "k1", "k1", claimsAt(fuzzNow, map[string]any{"jti": "seed-3", "ISS": "https://evil.example/c.json", "Sub": "x"})),
		fuzzAssertion(f, "k1", "k1", claimsAt(fuzzNow, map[string]any{"exp": fuzzNow.Add(time.Hour).Unix()})),
		"eyJhbGciOiJub25lIn0." + base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"`+testClientID+`"}`)) + ".",
	} {
		f.Add(seed)
	}
	set := jwk.NewSet()
	for _, name := range []string{"k1", "k2"} {
		key, err := jwk.PublicKeyOf(fuzzKey(name).Public())
		if err != nil {
			f.Fatal(err)
		}
		_ = key.Set(jwk.KeyIDKey, name)
		_ = set.AddKey(key)
	}
	keys := func(context.Context) (jwk.Set, error) { return set, nil }
	f.Fuzz(func(t *testing.T, assertion string) {
		store := newUsedAssertions()
		err := VerifyAssertion(context.Background(), assertion, pkjClient(), fuzzAudiences, keys, store, fuzzNow)
		var aerr *AssertionError
		if err != nil {
			if !errors.As(err, &aerr) {
				t.Fatalf("refused with a server error: %v", err)
			}
			return
		}
		if reason := referenceAssertionCheck(assertion); reason != "" {
			t.Fatalf("accepted an assertion the reference refuses: %s", reason)
		}
		err = VerifyAssertion(context.Background(), assertion, pkjClient(), fuzzAudiences, keys, store, fuzzNow)
		if !errors.As(err, &aerr) {
			t.Fatalf("accepted the same assertion twice: %v", err)
		}
	})
}

// referenceAssertionCheck checks an assertion for the fuzz target by hand,
// without the JOSE library, and says why it is not acceptable ("" if it is).
func referenceAssertionCheck(assertion string) string {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return "not three parts"
	}
	rawHeader, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	rawPayload, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err1 != nil || err2 != nil || err3 != nil {
		return "not base64url"
	}
	var header map[string]any
	if json.Unmarshal(rawHeader, &header) != nil || header["alg"] != "EdDSA" {
		return "header is not EdDSA"
	}
	signed := []byte(parts[0] + "." + parts[1])
	if !ed25519.Verify(fuzzKey("k1").Public().(ed25519.PublicKey), signed, sig) &&
		!ed25519.Verify(fuzzKey("k2").Public().(ed25519.PublicKey), signed, sig) {
		return "no key of the client signed it"
	}
	var claims map[string]any
	if json.Unmarshal(rawPayload, &claims) != nil {
		return "claims are not a JSON object"
	}
	if claims["iss"] != testClientID || claims["sub"] != testClientID {
		return "iss or sub is not the client_id"
	}
	switch aud := claims["aud"].(type) {
	case string:
		if aud != testAudience && aud != "https://mcp.example.com" {
			return "aud is another audience"
		}
	case []any:
		if !slices.Contains(aud, any(testAudience)) && !slices.Contains(aud, any("https://mcp.example.com")) {
			return "aud contains neither the token endpoint nor the issuer"
		}
	default:
		return "aud is missing"
	}
	at := func(name string) (time.Time, bool) {
		n, ok := claims[name].(float64)
		return time.Unix(int64(n), 0), ok
	}
	exp, ok := at("exp")
	if !ok || exp.Before(fuzzNow.Add(-time.Minute)) || exp.After(fuzzNow.Add(11*time.Minute)) {
		return "exp is missing, past or too far ahead"
	}
	for _, name := range []string{"nbf", "iat"} {
		if t, ok := at(name); ok && t.After(fuzzNow.Add(time.Minute)) {
			return name + " is in the future"
		}
	}
	if jti, _ := claims["jti"].(string); jti == "" {
		return "jti is missing"
	}
	return ""
}
