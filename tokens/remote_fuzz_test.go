package tokens

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
)

// fuzzKeys are the keys of FuzzRemoteVerifyJWT: an RSA and an EC key the
// server publishes (set), and an RSA key it does not.
type fuzzKeys struct {
	rsaKey       *rsa.PrivateKey
	ecKey        *ecdsa.PrivateKey
	unpublished  *rsa.PrivateKey
	rsaPub       *rsa.PublicKey
	ecPub        *ecdsa.PublicKey
	rsaID, ecKID string
	set          jwk.Set
}

func newFuzzKeys(t testing.TB) *fuzzKeys {
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	k := &fuzzKeys{rsaKey: rk, ecKey: ek, unpublished: other, rsaPub: &rk.PublicKey, ecPub: &ek.PublicKey, rsaID: "rsa-1", ecKID: "ec-1"}
	k.set = jwk.NewSet()
	for kid, pub := range map[string]any{k.rsaID: k.rsaPub, k.ecKID: k.ecPub} {
		jk, err := jwk.Import(pub)
		if err != nil {
			t.Fatal(err)
		}
		_ = jk.Set(jwk.KeyIDKey, kid)
		_ = k.set.AddKey(jk)
	}
	return k
}

// token assembles header and payload and signs them: RS256 with the
// published RSA key (signer 0), ES256 with the published EC key (1), or
// RS256 with the unpublished key (2).
func (k *fuzzKeys) token(header, payload []byte, signer uint8) string {
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(input))
	var sig []byte
	switch signer {
	case 0:
		sig, _ = rsa.SignPKCS1v15(rand.Reader, k.rsaKey, crypto.SHA256, sum[:])
	case 1:
		r, s, _ := ecdsa.Sign(rand.Reader, k.ecKey, sum[:])
		sig = append(r.FillBytes(make([]byte, 32)), s.FillBytes(make([]byte, 32))...)
	case 2:
		sig, _ = rsa.SignPKCS1v15(rand.Reader, k.unpublished, crypto.SHA256, sum[:])
	}
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// signedByPublishedKey is the reference check of a compact JWS, written
// with the standard library only: the header's kid names a published key
// and its alg is the one that key signs with (RS256, ES256), and the
// signature verifies.
func (k *fuzzKeys) signedByPublishedKey(token string, header map[string]any) bool {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return false
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	kid, _ := header["kid"].(string)
	alg, _ := header["alg"].(string)
	switch {
	case kid == k.rsaID && alg == "RS256":
		return rsa.VerifyPKCS1v15(k.rsaPub, crypto.SHA256, sum[:], sig) == nil
	case kid == k.ecKID && alg == "ES256" && len(sig) == 64:
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		return ecdsa.Verify(k.ecPub, sum[:], r, s)
	}
	return false
}

// FuzzRemoteVerifyJWT feeds an external server's verifier JWTs made of
// fuzzed headers and claims, signed with a published or an unpublished
// key, or a fuzzed token outright (the verifier has the keys already, as
// after its first fetch). What it accepts must, read again with
// the standard library: be signed by the published key its kid names with
// that key's algorithm, have a typ allowed (at+jwt, or JWT as configured),
// the exact issuer, the audience among aud, a subject, and not be expired.
func FuzzRemoteVerifyJWT(f *testing.F) {
	keys := newFuzzKeys(f)
	const audience = testAudience
	v := NewRemoteVerifier(RemoteConfig{Issuer: testIssuer, AcceptedTypes: []string{"JWT"}})
	v.meta.Fetch = func(context.Context) (*remoteMetadata, error) {
		return &remoteMetadata{Issuer: testIssuer, JWKSURI: "https://auth.example.com/jwks"}, nil
	}
	v.keys = NewKeySet(func(context.Context) (jwk.Set, error) { return keys.set, nil }, remoteKeyPolicy)

	now := time.Now().Unix()
	claims := func(extra string) []byte {
		return []byte(`{"iss":"` + testIssuer + `","sub":"u1","aud":["` + audience + `","account"],"client_id":"c1","iat":` +
			itoa(now) + `,"exp":` + itoa(now+3600) + extra + `}`)
	}
	valid := []byte(`{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}`)
	if _, err := v.Verify(context.Background(), keys.token(valid, claims(""), 0), audience); err != nil {
		f.Fatalf("a valid token is refused: %v", err) // else the target would test nothing
	}
	f.Add(valid, claims(""), uint8(0), "")
	f.Add([]byte(`{"alg":"ES256","kid":"ec-1","typ":"application/at+jwt"}`), claims(`,"scope":"a b"`), uint8(1), "")
	f.Add([]byte(`{"alg":"RS256","kid":"rsa-1","typ":"JWT"}`), claims(`,"azp":"c2","typ":"Bearer"`), uint8(0), "")
	f.Add([]byte(`{"alg":"RS256","kid":"rsa-1","typ":"JWT"}`), claims(`,"typ":"ID"`), uint8(0), "")
	f.Add([]byte(`{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}`), claims(`,"cnf":{"jkt":"x"}`), uint8(0), "")
	f.Add([]byte(`{"alg":"RS256","kid":"rsa-1"}`), claims(""), uint8(0), "")
	f.Add([]byte(`{"alg":"RS256","kid":"ec-1","typ":"at+jwt"}`), claims(""), uint8(0), "")
	f.Add([]byte(`{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}`), claims(""), uint8(2), "")
	f.Add([]byte(`{"alg":"none","kid":"rsa-1","typ":"at+jwt"}`), claims(""), uint8(0), "")
	f.Add([]byte(`{"alg":"HS256","kid":"rsa-1","typ":"at+jwt"}`), claims(""), uint8(0), "")
	f.Add([]byte(`{"alg":"RS256","kid":"rsa-1","typ":"at+jwt","typ":"JWT"}`), claims(`,"iss":"https://evil.test"`), uint8(0), "")
	f.Add([]byte(`{"alg":"RS256","kid":"rsa-1","typ":"at+jwt"}`), claims(`,"aud":"`+audience+`/"`), uint8(0), "")
	f.Add([]byte{}, []byte{}, uint8(3), "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.")
	f.Fuzz(func(t *testing.T, header, payload []byte, signer uint8, raw string) {
		token := raw // signer 3: the fuzzed token as is
		if signer %= 4; signer != 3 {
			token = keys.token(header, payload, signer)
		}
		got, err := v.Verify(context.Background(), token, audience)
		if err != nil {
			return
		}
		parts := strings.Split(token, ".")
		var h, c map[string]any
		if len(parts) != 3 || decodeSegment(parts[0], &h) != nil || decodeSegment(parts[1], &c) != nil {
			t.Fatalf("accepted a token whose parts do not decode: %q", token)
		}
		if !keys.signedByPublishedKey(token, h) {
			t.Fatalf("accepted a token not signed by the published key its header names: %s", h)
		}
		typ, _ := h["typ"].(string)
		switch strings.TrimPrefix(strings.ToLower(typ), "application/") {
		case "at+jwt", "jwt":
		default:
			t.Fatalf("accepted typ %q", typ)
		}
		if c["iss"] != testIssuer || got.Issuer != testIssuer {
			t.Fatalf("accepted issuer %v", c["iss"])
		}
		if !audienceHas(c["aud"], audience) {
			t.Fatalf("accepted audience %v", c["aud"])
		}
		if sub, _ := c["sub"].(string); sub == "" || sub != got.Subject {
			t.Fatalf("accepted subject %v as %q", c["sub"], got.Subject)
		}
		if exp, _ := c["exp"].(float64); int64(exp)+30 < time.Now().Unix() {
			t.Fatalf("accepted a token that expired at %v", c["exp"])
		}
		if cnf, ok := c["cnf"]; ok && cnf != nil {
			t.Fatal("accepted a sender-constrained token as a bearer token")
		}
	})
}

func itoa(n int64) string { return big.NewInt(n).String() }

// decodeSegment decodes one base64url segment of a compact JWS as JSON.
func decodeSegment(seg string, v any) error {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// audienceHas reports whether aud, a string or an array, names audience.
func audienceHas(aud any, audience string) bool {
	switch a := aud.(type) {
	case string:
		return a == audience
	case []any:
		for _, one := range a {
			if one == audience {
				return true
			}
		}
	}
	return false
}
