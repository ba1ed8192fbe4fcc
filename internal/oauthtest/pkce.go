package oauthtest

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
)

// PKCE is a Proof Key for Code Exchange pair (RFC 7636) with the S256
// method.
type PKCE struct {
	// Verifier is sent with the token request.
	Verifier string
	// Challenge is sent with the authorization request.
	Challenge string
}

// NewPKCE returns a fresh pair with a 43-character verifier (256 bits).
func NewPKCE() PKCE {
	var b [32]byte
	_, _ = rand.Read(b[:])
	v := base64.RawURLEncoding.EncodeToString(b[:])
	return PKCE{Verifier: v, Challenge: S256(v)}
}

// S256 is the S256 code challenge of verifier.
func S256(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}
