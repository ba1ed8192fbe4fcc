package tokens

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// AccessTokenType is the JOSE "typ" of access tokens (RFC 9068 section 2.1).
const AccessTokenType = "at+jwt"

// MaxTokenLength bounds the size of a token the verifier will parse; ours
// are well under 2 KB, and anything much larger is garbage or an attack.
const MaxTokenLength = 8 << 10

// AccessClaims are the claims of an RFC 9068 access token.
type AccessClaims struct {
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Audience  Audience `json:"aud"`
	Expiry    int64    `json:"exp"`
	NotBefore int64    `json:"nbf,omitempty"`
	IssuedAt  int64    `json:"iat"`
	JWTID     string   `json:"jti"`
	ClientID  string   `json:"client_id"`
	// Scope is the space-delimited list of granted scopes.
	Scope string `json:"scope,omitempty"`
	// Email is the user's verified email address, when known.
	Email string `json:"email,omitempty"`
	// Username is the user's login name at the identity provider, if any.
	Username string `json:"preferred_username,omitempty"`
	// Confirmation, when present, binds the token to a key: only a client
	// that proves it holds the key may use it (RFC 7800, RFC 9449 section 6).
	Confirmation *Confirmation `json:"cnf,omitempty"`
	// UpstreamTokenID names the record of the user's token at the
	// identity provider that the gate hands to the backend, when the
	// site keeps it: an id only the server can look up, never the token.
	UpstreamTokenID string `json:"upstream_token_id,omitempty"`
}

// Confirmation is the "cnf" claim of a sender-constrained token.
type Confirmation struct {
	// JKT is the base64url SHA-256 JWK thumbprint (RFC 7638) of the DPoP
	// key the token is bound to (RFC 9449 section 6.1). A cnf without it
	// binds the token by a method this server cannot check.
	JKT string `json:"jkt,omitempty"`
}

// Thumbprint returns the JKT of c, "" when c is nil.
func (c *Confirmation) Thumbprint() string {
	if c == nil {
		return ""
	}
	return c.JKT
}

// Scopes returns the granted scopes.
func (c *AccessClaims) Scopes() []string { return strings.Fields(c.Scope) }

// Audience is the "aud" claim: one string, or an array of strings.
type Audience []string

// MarshalJSON writes a single audience as a plain string, as RFC 9068 shows.
func (a Audience) MarshalJSON() ([]byte, error) {
	if len(a) == 1 {
		return json.Marshal(a[0])
	}
	return json.Marshal([]string(a))
}

// UnmarshalJSON accepts a string or an array of strings.
func (a *Audience) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*a = Audience{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("aud is neither a string nor an array of strings")
	}
	*a = many
	return nil
}

// NumericDate is a JWT NumericDate (RFC 7519 section 2): seconds since the
// epoch, possibly fractional. Decoding refuses non-numbers and values out
// of any sane range.
type NumericDate float64

// UnmarshalJSON accepts a JSON number within range.
func (d *NumericDate) UnmarshalJSON(b []byte) error {
	var f float64
	if err := json.Unmarshal(b, &f); err != nil {
		return errors.New("date claim is not a number")
	}
	if math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return errors.New("date claim is out of range")
	}
	*d = NumericDate(f)
	return nil
}

// Time returns the date as a time.Time.
func (d NumericDate) Time() time.Time {
	sec, frac := math.Modf(float64(d))
	return time.Unix(int64(sec), int64(frac*1e9))
}

// Sign signs claims with the ring's current key, with the given JOSE typ.
func (kr *KeyRing) Sign(typ string, claims any) (string, error) {
	key, err := kr.signingKey()
	if err != nil {
		return "", err
	}
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", err
	}
	hdrs := jws.NewHeaders()
	if err := hdrs.Set(jws.TypeKey, typ); err != nil {
		return "", err
	}
	if err := hdrs.Set(jws.KeyIDKey, key.kid); err != nil {
		return "", err
	}
	signed, err := jws.Sign(payload, jws.WithKey(key.alg, key.private, jws.WithProtectedHeaders(hdrs)))
	if err != nil {
		return "", fmt.Errorf("signing token: %w", err)
	}
	return string(signed), nil
}

// MintAccessToken fills in iat, exp and a fresh jti and signs an access token.
func (kr *KeyRing) MintAccessToken(claims AccessClaims, lifetime time.Duration) (string, error) {
	now := kr.now()
	claims.IssuedAt = now.Unix()
	claims.Expiry = now.Add(lifetime).Unix()
	claims.JWTID = NewID()
	return kr.Sign(AccessTokenType, claims)
}

// NewID returns a random 128-bit identifier, base64url-encoded.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// InvalidTokenError says why a token was rejected. Its text is safe to
// show to the client: it never contains any part of the token.
type InvalidTokenError struct{ Reason string }

func (e *InvalidTokenError) Error() string { return e.Reason }

func invalid(reason string) error { return &InvalidTokenError{Reason: reason} }

// ringAlgorithms are the algorithms a ring's keys may have.
var ringAlgorithms = []jwa.SignatureAlgorithm{jwa.ES256(), jwa.RS256(), jwa.EdDSA()}

// verifySignature checks the JWS signature against the ring, requiring the
// given typ and a known kid, and returns the payload. The algorithm is the
// one of our key, never the one the header claims, so "none" and algorithm
// confusion cannot get through.
func (kr *KeyRing) verifySignature(ctx context.Context, token, typ string) ([]byte, error) {
	payload, err := VerifyJWS(ctx, token, JWSRules{
		MaxLength:  MaxTokenLength,
		Algorithms: ringAlgorithms,
		Type:       func(got string) bool { return typeMatches(got, typ) },
		Keys: func(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]any, error) {
			key, ok := kr.verificationKey(ctx, kid)
			switch {
			case !ok:
				return nil, invalid("token is signed by an unknown key")
			case alg != key.alg:
				return nil, invalid("token algorithm does not match its key")
			}
			return []any{key.publicRaw}, nil
		},
	})
	var jerr *JWSError
	if errors.As(err, &jerr) {
		switch jerr.Failure {
		case JWSTooLarge:
			return nil, invalid("token is too large")
		case JWSMalformed:
			return nil, invalid("token is not a JWT")
		case JWSTypeRejected:
			return nil, invalid("token type is not " + typ)
		case JWSAlgorithmRejected:
			return nil, invalid("token algorithm does not match its key")
		}
		return nil, invalid("token signature is invalid")
	}
	return payload, err
}

// Verifier checks access tokens issued by one issuer.
type Verifier struct {
	ring   *KeyRing
	issuer string
	// Skew is the clock skew tolerated on exp, nbf and iat.
	skew  time.Duration
	cache *verifiedCache
}

// NewVerifier returns a verifier for access tokens from issuer, signed by ring.
func NewVerifier(ring *KeyRing, issuer string) *Verifier {
	return &Verifier{ring: ring, issuer: issuer, skew: 30 * time.Second, cache: newVerifiedCache(8192)}
}

// Verify checks token and returns its claims if it is a valid access token of
// this issuer for audience at the current time. Errors are
// *InvalidTokenError. A token seen before skips the signature check: its
// claims are cached until it expires.
func (v *Verifier) Verify(ctx context.Context, token, audience string) (*AccessClaims, error) {
	now := v.ring.now()
	removals := v.ring.removals.Load()
	claims, ok := v.cache.get(token, removals)
	if !ok {
		payload, err := v.ring.verifySignature(ctx, token, AccessTokenType)
		if err != nil {
			return nil, err
		}
		claims = new(AccessClaims)
		if err := json.Unmarshal(payload, claims); err != nil {
			return nil, invalid("token claims are malformed")
		}
		// What does not change while the token is cached: its issuer,
		// its claims, when it starts to be valid.
		static := ClaimRules{Now: now, Skew: v.skew, Issuers: []string{v.issuer}}
		if failure := static.Check(claims.registered()); failure != 0 {
			return nil, accessClaimError(failure)
		}
		if claims.Subject == "" || claims.ClientID == "" || claims.JWTID == "" || claims.Expiry == 0 || claims.IssuedAt == 0 || len(claims.Audience) == 0 {
			return nil, invalid("token lacks required claims")
		}
		v.cache.put(token, claims, removals, now)
	}
	// What changes with the time and the resource: nbf and iat, checked
	// above, cannot fail later.
	rules := ClaimRules{Now: now, Skew: v.skew, Audiences: []string{audience}}
	if failure := rules.Check(RegisteredClaims{Audience: claims.Audience, Expiry: time.Unix(claims.Expiry, 0)}); failure != 0 {
		return nil, accessClaimError(failure)
	}
	return claims, nil
}

// registered returns the claims ClaimRules checks.
func (c *AccessClaims) registered() RegisteredClaims {
	return RegisteredClaims{
		Issuer: c.Issuer, Audience: c.Audience,
		Expiry: unixTime(c.Expiry), NotBefore: unixTime(c.NotBefore), IssuedAt: unixTime(c.IssuedAt),
	}
}

// accessClaimError says why an access token's claims are refused.
func accessClaimError(failure ClaimFailure) error {
	switch failure {
	case ClaimIssuer:
		return invalid("token issuer is not this authorization server")
	case ClaimAudience:
		return invalid("token is not meant for this resource")
	case ClaimNotYetValid:
		return invalid("token is not valid yet")
	case ClaimIssuedInFuture:
		return invalid("token was issued in the future")
	}
	return invalid("token has expired")
}
