package tokens

import (
	"context"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// JWSRules says what a compact JWS must be for VerifyJWS to accept it.
// Every signed token the server checks (its own access tokens, client
// assertions, upstream ID tokens, an external server's access tokens) goes
// through VerifyJWS; each caller states its own rules here.
type JWSRules struct {
	// MaxLength bounds the token; a longer one is not parsed.
	MaxLength int
	// Algorithms are the signature algorithms accepted. The header's alg
	// must be one of them before any key is looked for, so "none" and
	// algorithms a caller does not expect never reach a key.
	Algorithms []jwa.SignatureAlgorithm
	// Type reports whether the JOSE "typ" header ("" when absent) is
	// acceptable; nil accepts any.
	Type func(typ string) bool
	// Keys returns the keys that may have signed a token whose header
	// names kid ("" if none) and alg, already checked to be allowed:
	// crypto public keys or jwk.Keys. Each is tried with alg, never with
	// an algorithm of the key's choosing. An error is returned by
	// VerifyJWS as it is, so a caller can say why no key fits.
	Keys func(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]any, error)
	// EmbeddedKey, if set, is used instead of Keys for a token that
	// carries its own public key in the "jwk" header, as a DPoP proof
	// does (RFC 9449 section 4.2): it gets that key, or nil when the
	// header has none, and returns the key to verify with (see
	// VerificationKey) or why the key is refused.
	EmbeddedKey func(key jwk.Key, alg jwa.SignatureAlgorithm) (any, error)
}

// JWSFailure is why VerifyJWS refused a token for reasons of its own.
type JWSFailure int

const (
	// JWSTooLarge: longer than JWSRules.MaxLength.
	JWSTooLarge JWSFailure = iota + 1
	// JWSMalformed: not three parts of canonical base64url.
	JWSMalformed
	// JWSUnreadable: the parts are well formed, but the header or
	// signature cannot be decoded.
	JWSUnreadable
	// JWSTypeRejected: the typ header is not one JWSRules.Type accepts.
	JWSTypeRejected
	// JWSAlgorithmRejected: the alg header is not in JWSRules.Algorithms.
	JWSAlgorithmRejected
	// JWSSignatureInvalid: no key JWSRules.Keys gave verifies the token.
	JWSSignatureInvalid
)

// JWSError is a token VerifyJWS refused. Callers turn it into their own
// error, safe to show; it holds none of the token but the header's alg
// and kid, which are the sender's text: sanitize them before showing.
type JWSError struct {
	Failure  JWSFailure
	Alg, Kid string
	cause    error
}

func (e *JWSError) Error() string {
	switch e.Failure {
	case JWSTooLarge:
		return "token is too large"
	case JWSMalformed:
		return "token is not a compact JWS"
	case JWSUnreadable:
		return "token header is unreadable"
	case JWSTypeRejected:
		return "token type is not accepted"
	case JWSAlgorithmRejected:
		return "token algorithm is not allowed"
	}
	return "token signature is invalid"
}

// Unwrap returns the parser's or verifier's error, if any.
func (e *JWSError) Unwrap() error { return e.cause }

// VerifyJWS checks a JWS in compact serialization against rules and
// returns its payload. Errors are *JWSError or what rules.Keys returned.
func VerifyJWS(ctx context.Context, token string, rules JWSRules) ([]byte, error) {
	if len(token) > rules.MaxLength {
		return nil, &JWSError{Failure: JWSTooLarge}
	}
	if strings.Count(token, ".") != 2 || !IsCompactJWSText(token) {
		return nil, &JWSError{Failure: JWSMalformed}
	}
	var failure error
	var alg, kid string
	read := false
	payload, err := jws.Verify([]byte(token), jws.WithCompact(), jws.WithContext(ctx), jws.WithKeyProvider(jws.KeyProviderFunc(
		func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
			read = true
			h := sig.ProtectedHeaders()
			headerAlg, _ := h.Algorithm()
			alg = headerAlg.String()
			kid, _ = h.KeyID()
			if rules.Type != nil {
				if typ, _ := h.Type(); !rules.Type(typ) {
					failure = &JWSError{Failure: JWSTypeRejected, Alg: alg, Kid: kid}
					return failure
				}
			}
			if !slices.Contains(rules.Algorithms, headerAlg) {
				failure = &JWSError{Failure: JWSAlgorithmRejected, Alg: alg, Kid: kid}
				return failure
			}
			var keys []any
			var err error
			if rules.EmbeddedKey != nil {
				embedded, _ := h.JWK()
				var key any
				if key, err = rules.EmbeddedKey(embedded, headerAlg); err == nil {
					keys = []any{key}
				}
			} else {
				keys, err = rules.Keys(ctx, kid, headerAlg)
			}
			if err != nil {
				failure = err
				return err
			}
			for _, k := range keys {
				sink.Key(headerAlg, k)
			}
			return nil
		})))
	switch {
	case err == nil:
		return payload, nil
	case failure != nil:
		return nil, failure
	case !read:
		return nil, &JWSError{Failure: JWSUnreadable, cause: err}
	}
	return nil, &JWSError{Failure: JWSSignatureInvalid, Alg: alg, Kid: kid, cause: err}
}

// IsSigningKey reports whether a published key may verify signatures: its
// use, if stated, is "sig".
func IsSigningKey(key jwk.Key) bool {
	use, ok := key.KeyUsage()
	return !ok || use == "" || use == jwk.ForSignature.String()
}

// KeyAllows reports whether a published key may be used with alg: it
// names no algorithm, or that one.
func KeyAllows(key jwk.Key, alg jwa.SignatureAlgorithm) bool {
	ka, ok := key.Algorithm()
	return !ok || ka.String() == "" || ka.String() == alg.String()
}

// IsCompactJWSText reports whether s holds only the characters of a
// compact JWS, each part in canonical unpadded base64url. The base64
// decoders also take newlines, padding, the standard alphabet and
// non-zero unused bits in a part's last character, which would give one
// token many accepted spellings (and a signature valid for them all).
func IsCompactJWSText(s string) bool {
	partStart := 0
	for i := 0; i <= len(s); i++ {
		if i == len(s) || s[i] == '.' {
			if !canonicalBase64URLTail(s[partStart:i]) {
				return false
			}
			partStart = i + 1
			continue
		}
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// canonicalBase64URLTail reports whether a part of base64url characters
// has a length unpadded base64 can have and zero unused bits in its last
// character, as the one encoding of its bytes does.
func canonicalBase64URLTail(part string) bool {
	var unused byte
	switch len(part) % 4 {
	case 0:
		return true
	case 1:
		return false
	case 2:
		unused = 0x0f
	case 3:
		unused = 0x03
	}
	return base64URLValue(part[len(part)-1])&unused == 0
}

// base64URLValue is the 6-bit value of a base64url character.
func base64URLValue(c byte) byte {
	switch {
	case 'A' <= c && c <= 'Z':
		return c - 'A'
	case 'a' <= c && c <= 'z':
		return c - 'a' + 26
	case '0' <= c && c <= '9':
		return c - '0' + 52
	case c == '-':
		return 62
	default:
		return 63
	}
}

// typeMatches compares a JOSE typ, which RFC 7515 section 4.1.9 lets omit
// the "application/" prefix, case-insensitively.
func typeMatches(got, want string) bool {
	got = strings.ToLower(got)
	return got == want || got == "application/"+want
}
