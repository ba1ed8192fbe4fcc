package tokens

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
)

// MinRSABits is the smallest RSA modulus accepted (RFC 7518 section 3.3).
const MinRSABits = 2048

// KeyError says why a key that a sender supplied cannot verify its
// token. Reason is safe to show: it names no key material.
type KeyError struct {
	Reason string
	cause  error
}

func (e *KeyError) Error() string { return e.Reason }

// Unwrap returns the cause, if any.
func (e *KeyError) Unwrap() error { return e.cause }

// VerificationKey returns the raw public key of key for verifying alg,
// after checking that the key is public, meant for signatures, does not
// pin another algorithm and is of the type and strength alg needs.
// Errors are *KeyError.
func VerificationKey(alg jwa.SignatureAlgorithm, key jwk.Key) (any, error) {
	if !IsSigningKey(key) {
		return nil, &KeyError{Reason: "key is not a signing key"}
	}
	if !KeyAllows(key, alg) {
		return nil, &KeyError{Reason: "algorithm does not match its key"}
	}
	if private, err := jwk.IsPrivateKey(key); err != nil || private {
		// A private key has no business in a message: whoever sent it
		// has given it away, and a symmetric one proves nothing.
		return nil, &KeyError{Reason: "key is not a public key"}
	}
	var raw any
	if err := jwk.Export(key, &raw); err != nil {
		return nil, &KeyError{Reason: "key is unusable", cause: err}
	}
	fits := false
	switch alg {
	case jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512():
		k, ok := raw.(*rsa.PublicKey)
		if ok && k.N.BitLen() < MinRSABits {
			return nil, &KeyError{Reason: "RSA key is too short"}
		}
		fits = ok
	case jwa.ES256():
		k, ok := raw.(*ecdsa.PublicKey)
		fits = ok && k.Curve == elliptic.P256()
	case jwa.ES384():
		k, ok := raw.(*ecdsa.PublicKey)
		fits = ok && k.Curve == elliptic.P384()
	case jwa.EdDSA():
		_, fits = raw.(ed25519.PublicKey)
	}
	if !fits {
		return nil, &KeyError{Reason: "algorithm does not match its key"}
	}
	return raw, nil
}
