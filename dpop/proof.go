// Package dpop checks DPoP proofs (RFC 9449): the signed JWT a client
// sends in the DPoP header of each request to show that it holds the key
// its tokens are bound to. The token endpoint and the gate use one
// Verifier each; what differs is where replayed proofs are remembered.
package dpop

import (
	"context"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// HeaderName is the request header of a proof, and the scheme of the
// Authorization header that presents a DPoP-bound token.
const HeaderName = "DPoP"

// canonicalHeader is HeaderName as net/http keys it.
const canonicalHeader = "Dpop"

// NonceHeader is the response header that hands the client a nonce.
const NonceHeader = "DPoP-Nonce"

// ProofType is the JOSE typ of a proof (RFC 9449 section 4.2).
const ProofType = "dpop+jwt"

// maxProofLength bounds what is parsed: a proof with a 4096-bit RSA key
// is under 2 KB.
const maxProofLength = 8 << 10

// maxJTILength bounds the client's jti, which is remembered.
const maxJTILength = 256

// Defaults for the window of a proof's iat.
const (
	// DefaultMaxAge is how old a proof may be: proofs are made for one
	// request (RFC 9449 section 11.1).
	DefaultMaxAge = 60 * time.Second
	// DefaultSkew is the clock skew tolerated either way.
	DefaultSkew = 30 * time.Second
)

// algorithms are the signature algorithms a proof may use: asymmetric
// only, since the key is sent with the proof.
var algorithms = []jwa.SignatureAlgorithm{jwa.ES256(), jwa.ES384(), jwa.EdDSA(), jwa.RS256(), jwa.PS256()}

// Algorithms names the accepted algorithms, for
// dpop_signing_alg_values_supported and the algs of challenges.
var Algorithms = func() []string {
	names := make([]string, len(algorithms))
	for i, a := range algorithms {
		names[i] = a.String()
	}
	return names
}()

// Replay remembers the proofs used, so each is accepted once.
type Replay interface {
	// Use records the proof of key jkt with jti as used for ttl and
	// reports whether it was not used before: of concurrent callers
	// with one proof, exactly one is told so.
	Use(ctx context.Context, jkt, jti string, ttl time.Duration) (bool, error)
}

// Verifier checks proofs.
type Verifier struct {
	// Replay remembers used proofs; it must keep them at least for the
	// ttl it is given.
	Replay Replay
	// Nonces, if set, requires every proof to carry a nonce it issued
	// (RFC 9449 section 8).
	Nonces *Nonces
	// MaxAge and Skew bound the proof's iat: no older than MaxAge+Skew,
	// no more than Skew ahead. Zero means the defaults.
	MaxAge, Skew time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Request is what a proof must match.
type Request struct {
	// Proof is the DPoP header's value.
	Proof string
	// Method is the request's method, compared exactly with htm.
	Method string
	// URL is the URL the client used; it and htu are compared without
	// query and fragment, after normalisation (see NormalizeURL).
	URL string
	// AccessToken, at a protected resource, is the token presented with
	// the proof: ath must be its hash (RFC 9449 section 4.3). Empty at
	// the token endpoint, where ath is not looked at.
	AccessToken string
	// BoundTo, if set, is the thumbprint the proof's key must have: the
	// token's cnf.jkt.
	BoundTo string
}

// Proof is an accepted proof.
type Proof struct {
	// JKT is the base64url SHA-256 JWK thumbprint of the proof's key.
	JKT string
}

// Error is why a proof was refused: answer invalid_dpop_proof, or
// use_dpop_nonce when NeedNonce. Reason is safe to send; it repeats
// nothing of the proof.
type Error struct {
	Reason string
	// NeedNonce: the proof lacks a current server nonce.
	NeedNonce bool
	cause     error
}

func (e *Error) Error() string { return e.Reason }

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.cause }

func refuse(reason string) error { return &Error{Reason: reason} }

// claims are the claims of a proof (RFC 9449 section 4.2).
type claims struct {
	JTI   string              `json:"jti"`
	HTM   string              `json:"htm"`
	HTU   string              `json:"htu"`
	IAT   *tokens.NumericDate `json:"iat"`
	ATH   string              `json:"ath"`
	Nonce string              `json:"nonce"`
}

var claimNames = []string{"jti", "htm", "htu", "iat", "ath", "nonce"}

// ProofFrom returns the request's proof: its one DPoP header, or "" if it
// has none. More than one is an error (RFC 9449 section 4.3, check 1).
func ProofFrom(h http.Header) (string, error) {
	values := h[canonicalHeader]
	switch {
	case len(values) == 0:
		return "", nil
	case len(values) > 1:
		return "", refuse("more than one DPoP header")
	case values[0] == "":
		return "", refuse("the DPoP header is empty")
	}
	return values[0], nil
}

// Verify checks req.Proof by the rules of RFC 9449 section 4.3 and, when
// it passes every other check, records it as used. Errors are *Error, or
// the Replay's when the proof could not be recorded.
func (v *Verifier) Verify(ctx context.Context, req Request) (*Proof, error) {
	var key jwk.Key
	payload, err := tokens.VerifyJWS(ctx, req.Proof, tokens.JWSRules{
		MaxLength:  maxProofLength,
		Algorithms: algorithms,
		Type:       func(typ string) bool { return typ == ProofType },
		EmbeddedKey: func(k jwk.Key, alg jwa.SignatureAlgorithm) (any, error) {
			if k == nil {
				return nil, refuse("DPoP proof has no jwk header")
			}
			raw, err := tokens.VerificationKey(alg, k)
			if err != nil {
				return nil, &Error{Reason: "DPoP proof key: " + err.Error(), cause: err}
			}
			key = k
			return raw, nil
		},
	})
	var jerr *tokens.JWSError
	switch {
	case errors.As(err, &jerr):
		return nil, &Error{Reason: "DPoP proof: " + jerr.Error(), cause: err}
	case err != nil:
		return nil, err
	}
	var c claims
	if err := tokens.DecodeExact(payload, claimNames, &c); err != nil {
		return nil, refuse("DPoP proof claims are malformed")
	}
	if c.JTI == "" || c.HTM == "" || c.HTU == "" || c.IAT == nil {
		return nil, refuse("DPoP proof lacks jti, htm, htu or iat")
	}
	if len(c.JTI) > maxJTILength {
		return nil, refuse("DPoP proof jti is too long")
	}
	if c.HTM != req.Method {
		return nil, refuse("DPoP proof htm does not match the request method")
	}
	if want, ok := NormalizeURL(req.URL); !ok {
		return nil, errors.New("dpop: the request URL is not an absolute http(s) URL")
	} else if got, ok := NormalizeURL(c.HTU); !ok || got != want {
		return nil, refuse("DPoP proof htu does not match the request URL")
	}
	maxAge, skew := v.window()
	now := v.now()
	iat := c.IAT.Time()
	switch {
	case iat.Before(now.Add(-maxAge - skew)):
		return nil, refuse("DPoP proof is too old")
	case iat.After(now.Add(skew)):
		return nil, refuse("DPoP proof is issued in the future")
	}
	if req.AccessToken != "" {
		sum := sha256.Sum256([]byte(req.AccessToken))
		if c.ATH != base64.RawURLEncoding.EncodeToString(sum[:]) {
			return nil, refuse("DPoP proof ath does not match the access token")
		}
	}
	thumb, err := key.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, &Error{Reason: "DPoP proof key has no thumbprint", cause: err}
	}
	jkt := base64.RawURLEncoding.EncodeToString(thumb)
	if req.BoundTo != "" && jkt != req.BoundTo {
		return nil, refuse("DPoP proof key is not the key the token is bound to")
	}
	if v.Nonces != nil && !v.Nonces.Valid(c.Nonce, now) {
		return nil, &Error{Reason: "DPoP proof lacks a current server nonce", NeedNonce: true}
	}
	// Kept until the proof's iat leaves the window, after which the
	// proof is refused as too old anyway.
	ttl := iat.Add(maxAge + skew).Sub(now)
	switch fresh, err := v.Replay.Use(ctx, jkt, c.JTI, max(ttl, time.Second)); {
	case err != nil:
		return nil, err
	case !fresh:
		return nil, refuse("DPoP proof has already been used")
	}
	return &Proof{JKT: jkt}, nil
}

// Span is the longest a proof can be accepted for, from first to last
// moment: a replay cache must remember a proof this long.
func (v *Verifier) Span() time.Duration {
	maxAge, skew := v.window()
	return maxAge + 2*skew
}

func (v *Verifier) window() (maxAge, skew time.Duration) {
	maxAge, skew = v.MaxAge, v.Skew
	if maxAge == 0 {
		maxAge = DefaultMaxAge
	}
	if skew == 0 {
		skew = DefaultSkew
	}
	return maxAge, skew
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}
