package oauthtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// DPoPKey is a client's DPoP key pair (RFC 9449), ES256.
type DPoPKey struct {
	Private *ecdsa.PrivateKey
	// Public is the public JWK sent in proofs; JKT its thumbprint.
	Public jwk.Key
	JKT    string
}

// NewDPoPKey makes a fresh ES256 DPoP key.
func NewDPoPKey(t testing.TB) *DPoPKey {
	t.Helper()
	k, err := GenerateDPoPKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// GenerateDPoPKey makes a fresh ES256 DPoP key.
func GenerateDPoPKey() (*DPoPKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return DPoPKeyOf(priv)
}

// DPoPKeyOf is the DPoP key of an existing P-256 private key.
func DPoPKeyOf(priv *ecdsa.PrivateKey) (*DPoPKey, error) {
	pub, err := jwk.Import(&priv.PublicKey)
	if err != nil {
		return nil, err
	}
	thumb, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &DPoPKey{Private: priv, Public: pub, JKT: base64.RawURLEncoding.EncodeToString(thumb)}, nil
}

// ProofClaims are the claims of a proof; Proof fills in jti and iat when
// they are empty, and ath from AccessToken.
type ProofClaims struct {
	Method, URL string
	// AccessToken, if set, is hashed into ath.
	AccessToken string
	Nonce       string
	JTI         string
	IssuedAt    time.Time
	// Extra members, or overrides of the above by name.
	Extra map[string]any
}

// Proof signs a DPoP proof for c with the key's public JWK in the header.
func (k *DPoPKey) Proof(t testing.TB, c ProofClaims) string {
	t.Helper()
	return k.ProofWithHeader(t, c, nil)
}

// ProofWithHeader signs a proof with header members set over the usual
// typ, alg and jwk (a nil value removes one), for malformed proofs.
func (k *DPoPKey) ProofWithHeader(t testing.TB, c ProofClaims, header map[string]any) string {
	t.Helper()
	proof, err := k.Sign(c, header)
	if err != nil {
		t.Fatal(err)
	}
	return proof
}

// Sign is ProofWithHeader for callers without a testing.TB.
func (k *DPoPKey) Sign(c ProofClaims, header map[string]any) (string, error) {
	return k.sign(c, header, jwa.ES256(), k.Private)
}

// SignHS256 signs a proof with HMAC-SHA-256 keyed with secret, the header
// still naming the key's public JWK: what a server must never accept.
func (k *DPoPKey) SignHS256(c ProofClaims, secret []byte) (string, error) {
	return k.sign(c, nil, jwa.HS256(), secret)
}

// Unsigned is a proof with alg "none" and an empty signature.
func (k *DPoPKey) Unsigned(c ProofClaims) (string, error) {
	jwkJSON, err := json.Marshal(k.Public)
	if err != nil {
		return "", err
	}
	payload, err := proofPayload(c)
	if err != nil {
		return "", err
	}
	header := `{"typ":"dpop+jwt","alg":"none","jwk":` + string(jwkJSON) + `}`
	return base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(payload) + ".", nil
}

func (k *DPoPKey) sign(c ProofClaims, header map[string]any, alg jwa.SignatureAlgorithm, key any) (string, error) {
	payload, err := proofPayload(c)
	if err != nil {
		return "", err
	}
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.TypeKey, "dpop+jwt"); err != nil {
		return "", err
	}
	if err := hdrs.Set(jws.JWKKey, k.Public); err != nil {
		return "", err
	}
	for name, v := range header {
		if v == nil {
			err = hdrs.Remove(name)
		} else {
			err = hdrs.Set(name, v)
		}
		if err != nil {
			return "", err
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(alg, key, jws.WithProtectedHeaders(hdrs)))
	return string(signed), err
}

// proofPayload is the JSON of c's claims, with a fresh jti and the current
// time for iat where c leaves them out.
func proofPayload(c ProofClaims) ([]byte, error) {
	if c.JTI == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		c.JTI = base64.RawURLEncoding.EncodeToString(b[:])
	}
	if c.IssuedAt.IsZero() {
		c.IssuedAt = time.Now()
	}
	claims := map[string]any{"jti": c.JTI, "htm": c.Method, "htu": c.URL, "iat": c.IssuedAt.Unix()}
	if c.AccessToken != "" {
		claims["ath"] = ATH(c.AccessToken)
	}
	if c.Nonce != "" {
		claims["nonce"] = c.Nonce
	}
	for name, v := range c.Extra {
		if v == nil {
			delete(claims, name)
		} else {
			claims[name] = v
		}
	}
	return json.Marshal(claims)
}

// ATH is the ath claim for an access token (RFC 9449 section 4.2).
func ATH(token string) string {
	sum := sha256.Sum256([]byte(token))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// DPoP returns the headers of a DPoP-bound call: Authorization: DPoP and
// the proof.
func DPoP(token, proof string) http.Header {
	return http.Header{"Authorization": {"DPoP " + token}, "Dpop": {proof}}
}
