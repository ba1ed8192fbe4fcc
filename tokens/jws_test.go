package tokens

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// jwsFixture is an EC and an RSA key, and rules that accept ES256 tokens
// of typ "JWT" signed by the EC key under kid "ec".
type jwsFixture struct {
	ec    *ecdsa.PrivateKey
	rsa   *rsa.PrivateKey
	rules JWSRules
}

func newJWSFixture(t *testing.T) *jwsFixture {
	t.Helper()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &jwsFixture{ec: ec, rsa: rk}
	f.rules = JWSRules{
		MaxLength:  MaxTokenLength,
		Algorithms: []jwa.SignatureAlgorithm{jwa.ES256(), jwa.RS256()},
		Type:       func(typ string) bool { return typeMatches(typ, "jwt") },
		Keys: func(_ context.Context, kid string, alg jwa.SignatureAlgorithm) ([]any, error) {
			if kid != "ec" {
				return nil, errUnknownTestKid
			}
			if alg != jwa.ES256() {
				return nil, errTestKeyAlg
			}
			return []any{&ec.PublicKey}, nil
		},
	}
	return f
}

var (
	errUnknownTestKid = errors.New("unknown kid")
	errTestKeyAlg     = errors.New("algorithm does not fit the key")
)

// sign signs payload with key and alg under the given protected headers.
func (f *jwsFixture) sign(t *testing.T, alg jwa.SignatureAlgorithm, key any, headers map[string]string) string {
	t.Helper()
	h := jws.NewHeaders()
	for k, v := range headers {
		if err := h.Set(k, v); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := jws.Sign([]byte(`{"sub":"u1"}`), jws.WithKey(alg, key, jws.WithProtectedHeaders(h)))
	if err != nil {
		t.Fatal(err)
	}
	return string(tok)
}

// unsignedJWS builds a token from a raw header and signature.
func unsignedJWS(header, signature string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(`{"sub":"u1"}`)) + "." + signature
}

func TestVerifyJWS(t *testing.T) {
	f := newJWSFixture(t)
	valid := f.sign(t, jwa.ES256(), f.ec, map[string]string{"kid": "ec", "typ": "JWT"})
	parts := strings.Split(valid, ".")
	pubJSON, _ := json.Marshal(f.ec.PublicKey)
	tests := []struct {
		name    string
		token   string
		failure JWSFailure // 0: rules.Keys' error or success
		err     error
	}{
		{name: "valid", token: valid},
		{name: "typ with application/ prefix", token: f.sign(t, jwa.ES256(), f.ec, map[string]string{"kid": "ec", "typ": "application/JWT"})},
		{name: "alg none", token: unsignedJWS(`{"alg":"none","kid":"ec","typ":"JWT"}`, ""), failure: JWSAlgorithmRejected},
		{name: "HS256 keyed with the public key", token: f.sign(t, jwa.HS256(), pubJSON, map[string]string{"kid": "ec", "typ": "JWT"}), failure: JWSAlgorithmRejected},
		{name: "ES512 not in the allow-list", token: unsignedJWS(`{"alg":"ES512","kid":"ec","typ":"JWT"}`, "c2ln"), failure: JWSAlgorithmRejected},
		{name: "allowed alg the key does not have", token: f.sign(t, jwa.RS256(), f.rsa, map[string]string{"kid": "ec", "typ": "JWT"}), err: errTestKeyAlg},
		{name: "unknown kid", token: f.sign(t, jwa.ES256(), f.ec, map[string]string{"kid": "other", "typ": "JWT"}), err: errUnknownTestKid},
		{name: "wrong typ", token: f.sign(t, jwa.ES256(), f.ec, map[string]string{"kid": "ec", "typ": "at+jwt"}), failure: JWSTypeRejected},
		{name: "no typ", token: f.sign(t, jwa.ES256(), f.ec, map[string]string{"kid": "ec"}), failure: JWSTypeRejected},
		{name: "payload swapped", token: parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"admin"}`)) + "." + parts[2], failure: JWSSignatureInvalid},
		{name: "signed by another key", token: f.sign(t, jwa.ES256(), mustECKey(t), map[string]string{"kid": "ec", "typ": "JWT"}), failure: JWSSignatureInvalid},
		{name: "padded", token: valid + "=", failure: JWSMalformed},
		{name: "standard alphabet", token: parts[0] + "." + parts[1] + "." + strings.NewReplacer("-", "+", "_", "/").Replace(parts[2]) + "+", failure: JWSMalformed},
		{name: "non-zero unused bits", token: parts[0] + "." + parts[1] + "." + nonCanonicalTail(parts[2]), failure: JWSMalformed},
		{name: "newline inside", token: parts[0] + "\n." + parts[1] + "." + parts[2], failure: JWSMalformed},
		{name: "two parts", token: parts[0] + "." + parts[1], failure: JWSMalformed},
		{name: "JSON serialization", token: `{"payload":"` + parts[1] + `","signatures":[]}`, failure: JWSMalformed},
		{name: "header not JSON", token: base64.RawURLEncoding.EncodeToString([]byte("not json")) + "." + parts[1] + "." + parts[2], failure: JWSUnreadable},
		{name: "too long", token: valid + strings.Repeat("A", MaxTokenLength), failure: JWSTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			payload, err := VerifyJWS(context.Background(), tc.token, f.rules)
			var jerr *JWSError
			switch {
			case tc.failure != 0:
				if !errors.As(err, &jerr) || jerr.Failure != tc.failure {
					t.Fatalf("err = %v, want JWSError with failure %d", err, tc.failure)
				}
				if strings.Contains(jerr.Error(), parts[2]) {
					t.Errorf("error %q contains the token", jerr)
				}
			case tc.err != nil:
				if !errors.Is(err, tc.err) {
					t.Fatalf("err = %v, want %v", err, tc.err)
				}
			default:
				if err != nil || string(payload) != `{"sub":"u1"}` {
					t.Fatalf("VerifyJWS = %q, %v; want the payload", payload, err)
				}
			}
		})
	}
}

// nonCanonicalTail returns part with its last character's unused bits
// set: it decodes to the same bytes but is another spelling of them.
func nonCanonicalTail(part string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, part[len(part)-1])
	return part[:len(part)-1] + string(alphabet[last|1])
}

func mustECKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestVerifyJWSTriesEveryCandidateKey(t *testing.T) {
	f := newJWSFixture(t)
	rules := f.rules
	rules.Keys = func(context.Context, string, jwa.SignatureAlgorithm) ([]any, error) {
		return []any{&mustECKey(t).PublicKey, &f.ec.PublicKey}, nil
	}
	token := f.sign(t, jwa.ES256(), f.ec, map[string]string{"typ": "JWT"})
	if _, err := VerifyJWS(context.Background(), token, rules); err != nil {
		t.Fatalf("token signed by the second candidate: %v", err)
	}
}

func TestPublishedKeyChecks(t *testing.T) {
	f := newJWSFixture(t)
	key, err := jwk.Import(&f.ec.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	if !IsSigningKey(key) || !KeyAllows(key, jwa.ES256()) || !KeyAllows(key, jwa.RS256()) {
		t.Fatal("a key without use or alg is refused")
	}
	_ = key.Set(jwk.AlgorithmKey, jwa.ES256())
	if !KeyAllows(key, jwa.ES256()) || KeyAllows(key, jwa.ES384()) {
		t.Error("a key pinned to ES256 is not held to it")
	}
	_ = key.Set(jwk.KeyUsageKey, jwk.ForEncryption)
	if IsSigningKey(key) {
		t.Error("an encryption key is taken as a signing key")
	}
}
