package tokens

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
)

// ValidS256Challenge reports whether s has the form of an S256 PKCE code
// challenge: the unpadded base64url encoding of a SHA-256 hash (RFC 7636
// section 4.2).
func ValidS256Challenge(s string) bool {
	if len(s) != 43 {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

// ValidVerifier reports whether s is a PKCE code verifier: 43 to 128
// unreserved characters (RFC 7636 section 4.1).
func ValidVerifier(s string) bool {
	if len(s) < 43 || len(s) > 128 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~') {
			return false
		}
	}
	return true
}

// VerifyS256 reports, in constant time, whether verifier hashes to challenge.
func VerifyS256(verifier, challenge string) bool {
	sum := sha256.Sum256([]byte(verifier))
	return subtle.ConstantTimeCompare([]byte(base64.RawURLEncoding.EncodeToString(sum[:])), []byte(challenge)) == 1
}
