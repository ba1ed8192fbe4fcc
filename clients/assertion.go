package clients

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// ClientAssertionType is the client_assertion_type value of a JWT client
// assertion (RFC 7523 section 2.2). The token endpoint checks it before
// calling VerifyAssertion.
const ClientAssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

const (
	// assertionSkew is the clock skew tolerated on exp, nbf and iat.
	assertionSkew = 30 * time.Second
	// maxAssertionLifetime bounds how far in the future exp may be. An
	// assertion is made for one request; a long-lived one is a bearer
	// credential someone could collect and replay elsewhere.
	maxAssertionLifetime = 10 * time.Minute
	// maxAssertionLength bounds what is parsed at all.
	maxAssertionLength = 8 << 10
)

// assertionAlgs are the signature algorithms a client assertion may use:
// asymmetric only. "none" and the HMAC algorithms are out: the client's
// keys are public, so an HMAC "signed" with them proves nothing.
var assertionAlgs = []jwa.SignatureAlgorithm{
	jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.ES256(), jwa.ES384(), jwa.EdDSA(),
}

// AssertionAlgorithms names the algorithms VerifyAssertion accepts, for
// token_endpoint_auth_signing_alg_values_supported in the authorization
// server metadata. Changing it does not change what is accepted.
var AssertionAlgorithms = func() []string {
	names := make([]string, len(assertionAlgs))
	for i, a := range assertionAlgs {
		names[i] = a.String()
	}
	return names
}()

// AssertionError says why a client assertion was rejected; answer with
// 401 invalid_client. Reason is safe to send as error_description: it never
// contains the assertion or its claims. Unwrap gives the cause, for logs.
type AssertionError struct {
	Reason string
	cause  error
}

func (e *AssertionError) Error() string { return e.Reason }

// Unwrap returns the underlying cause, if any.
func (e *AssertionError) Unwrap() error { return e.cause }

func badAssertion(reason string) error { return &AssertionError{Reason: reason} }

// errUnknownKID marks a signature check that failed only because the key
// was not in the set, which a key-set refetch may cure.
var errUnknownKID = errors.New("client assertion is signed by an unknown key")

type keyRefreshKey struct{}

// KeyRefreshRequested reports whether ctx asks a key source to bypass its
// cache. VerifyAssertion asks once when an assertion names a kid the set
// does not contain, which is what a client rotating its keys looks like.
// Fetcher.JWKS honours it at most once a minute per URL.
func KeyRefreshRequested(ctx context.Context) bool {
	v, _ := ctx.Value(keyRefreshKey{}).(bool)
	return v
}

// AssertionSubject returns the sub claim of a client assertion without
// verifying anything, or "" if it cannot be read. RFC 7521 section 4.2 lets
// a client omit client_id when it authenticates with an assertion; this
// tells the token endpoint which client to load, and VerifyAssertion then
// checks that the assertion really is that client's (iss == sub == its
// client_id, signed with its key).
func AssertionSubject(assertion string) string {
	var claims assertionClaims
	if !tokens.UnverifiedClaims(assertion, maxAssertionLength, assertionClaimNames, &claims) {
		return ""
	}
	return claims.Subject
}

// VerifyAssertion authenticates a private_key_jwt client (RFC 7523 section
// 3, as profiled by OAuth 2.1 section 2.4.2) by its client_assertion.
//
// The JWT must be signed with one of the client's keys (chosen by kid, or
// the only key when there is no kid) using an allowed asymmetric algorithm
// that fits the key; iss and sub must both be the client_id; aud must be,
// or contain, one of audiences exactly (pass the URLs exactly as the
// authorization server metadata advertises them: the issuer, the
// token_endpoint, the endpoint being called); exp must be present, not
// past and at most 10 minutes ahead; nbf and iat must not be in the
// future; and jti must be present and never seen before for this client.
// The jti is recorded in used until the assertion expires.
//
// keys returns the client's key set (Fetcher.Keys). It is called a second
// time with a context for which KeyRefreshRequested is true if the kid is
// unknown.
//
// Rejections are *AssertionError. Any other error (the store failing, ctx
// ending) is the server's problem, not the client's.
func VerifyAssertion(ctx context.Context, assertion string, client *Client, audiences []string,
	keys func(ctx context.Context) (jwk.Set, error), used UsedAssertions, now time.Time) error {
	if len(audiences) == 0 || slices.Contains(audiences, "") {
		return errors.New("clients: VerifyAssertion needs the authorization server's URLs as audiences")
	}
	if client.TokenEndpointAuthMethod != AuthMethodPrivateKeyJWT {
		return badAssertion("client is not registered for private_key_jwt authentication")
	}
	payload, err := verifySignature(ctx, assertion, keys)
	if err != nil {
		return err
	}

	claims, err := decodeClaims(payload)
	if err != nil {
		return &AssertionError{Reason: "client assertion claims are malformed", cause: err}
	}
	if err := claims.check(client.ClientID, audiences, now); err != nil {
		return err
	}

	// RFC 7523 section 3: the server "MAY ensure that JWTs are not replayed
	// by maintaining the set of used jti values for the length of time for
	// which the JWT would be considered valid".
	ttl := max(time.Unix(claims.Expiry.Time().Unix(), 0).Add(assertionSkew).Sub(now), time.Second)
	switch fresh, err := used.UseAssertion(ctx, client.ClientID, claims.JWTID, ttl); {
	case err != nil:
		return fmt.Errorf("recording client assertion jti: %w", err)
	case !fresh:
		return badAssertion("client assertion has already been used")
	}
	return nil
}

// UsedAssertions remembers the client assertions used, by client and jti.
type UsedAssertions interface {
	// UseAssertion records the jti of an assertion of clientID as used
	// for ttl and reports whether it was not used before: of concurrent
	// callers with one jti, exactly one is told so.
	UseAssertion(ctx context.Context, clientID, jti string, ttl time.Duration) (bool, error)
}

// verifySignature checks the compact JWS assertion against the client's
// keys and gives back its payload. The algorithm must be allowed and fit
// the selected key, so "none", HMAC with a public key as secret and
// algorithm confusion cannot get through; neither a malformed assertion
// nor one with a refused algorithm makes the keys be fetched.
func verifySignature(ctx context.Context, assertion string, keys func(context.Context) (jwk.Set, error)) ([]byte, error) {
	payload, err := tokens.VerifyJWS(ctx, assertion, tokens.JWSRules{
		MaxLength:  maxAssertionLength,
		Algorithms: assertionAlgs,
		Keys: func(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]any, error) {
			key, err := clientKey(ctx, keys, kid)
			if errors.Is(err, errUnknownKID) {
				key, err = clientKey(context.WithValue(ctx, keyRefreshKey{}, true), keys, kid)
			}
			if err != nil {
				return nil, err
			}
			raw, err := publicKeyFor(alg, key)
			if err != nil {
				return nil, err
			}
			return []any{raw}, nil
		},
	})
	var jerr *tokens.JWSError
	if !errors.As(err, &jerr) {
		return payload, err
	}
	switch jerr.Failure {
	case tokens.JWSTooLarge:
		return nil, badAssertion("client assertion is too large")
	case tokens.JWSMalformed:
		return nil, badAssertion("client assertion is not a signed JWT")
	case tokens.JWSAlgorithmRejected:
		return nil, badAssertion("client assertion algorithm is not allowed")
	}
	return nil, &AssertionError{Reason: "client assertion signature is invalid", cause: err}
}

// clientKey returns the client's key named kid from the set keys returns.
func clientKey(ctx context.Context, keys func(context.Context) (jwk.Set, error), kid string) (jwk.Key, error) {
	set, err := keys(ctx)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, ctxErr
		}
		reason := "client keys could not be loaded"
		var me *MetadataError
		if errors.As(err, &me) {
			reason += ": " + me.Description
		}
		return nil, &AssertionError{Reason: reason, cause: err}
	}
	return selectKey(set, kid)
}

// selectKey picks the key named kid, or the only key if there is no kid.
func selectKey(set jwk.Set, kid string) (jwk.Key, error) {
	if kid == "" {
		if set.Len() != 1 {
			return nil, badAssertion("client assertion has no kid and the client has several keys")
		}
		key, _ := set.Key(0)
		return key, nil
	}
	key, ok := set.LookupKeyID(kid)
	if !ok {
		return nil, &AssertionError{Reason: errUnknownKID.Error(), cause: errUnknownKID}
	}
	return key, nil
}

// publicKeyFor returns the raw public key of key for verifying alg (see
// tokens.VerificationKey).
func publicKeyFor(alg jwa.SignatureAlgorithm, key jwk.Key) (any, error) {
	raw, err := tokens.VerificationKey(alg, key)
	var kerr *tokens.KeyError
	if errors.As(err, &kerr) {
		reason := "client " + kerr.Reason
		if kerr.Reason == "algorithm does not match its key" {
			reason = "client assertion " + kerr.Reason
		}
		return nil, &AssertionError{Reason: reason, cause: err}
	}
	return raw, err
}

// assertionClaims are the claims RFC 7523 section 3 constrains.
type assertionClaims struct {
	Issuer    string              `json:"iss"`
	Subject   string              `json:"sub"`
	Audience  tokens.Audience     `json:"aud"`
	Expiry    *tokens.NumericDate `json:"exp"`
	NotBefore *tokens.NumericDate `json:"nbf"`
	IssuedAt  *tokens.NumericDate `json:"iat"`
	JWTID     string              `json:"jti"`
}

// assertionClaimNames are the members of assertionClaims, exactly as
// spelled in the JWT.
var assertionClaimNames = []string{"iss", "sub", "aud", "exp", "nbf", "iat", "jti"}

// decodeClaims decodes the claims of an assertion by their exact names
// (see tokens.DecodeExact).
func decodeClaims(payload []byte) (*assertionClaims, error) {
	var claims assertionClaims
	if err := tokens.DecodeExact(payload, assertionClaimNames, &claims); err != nil {
		return nil, err
	}
	return &claims, nil
}

// check applies the RFC 7523 section 3 claim rules for clientID at now.
func (c *assertionClaims) check(clientID string, audiences []string, now time.Time) error {
	if c.Issuer != clientID || c.Subject != clientID {
		return badAssertion("client assertion iss and sub must both be the client_id")
	}
	rules := tokens.ClaimRules{
		Now: now, Skew: assertionSkew,
		// Exact strings: "https://as//token" or "https://as/token/" is
		// another endpoint, and accepting look-alikes would let an
		// assertion made for one server work at another.
		Audiences:     audiences,
		RequireExpiry: true,
		MaxLifetime:   maxAssertionLifetime,
	}
	switch rules.Check(tokens.RegisteredClaims{
		Audience: c.Audience, Expiry: c.Expiry.TimeOrZero(), NotBefore: c.NotBefore.TimeOrZero(), IssuedAt: c.IssuedAt.TimeOrZero(),
	}) {
	case tokens.ClaimAudience:
		return badAssertion("client assertion audience is not this authorization server or endpoint")
	case tokens.ClaimNoExpiry:
		return badAssertion("client assertion has no exp")
	case tokens.ClaimExpired:
		return badAssertion("client assertion has expired")
	case tokens.ClaimExpiryTooFar:
		return badAssertion("client assertion expires too far in the future")
	case tokens.ClaimNotYetValid:
		return badAssertion("client assertion is not valid yet")
	case tokens.ClaimIssuedInFuture:
		return badAssertion("client assertion was issued in the future")
	}
	if c.JWTID == "" {
		return badAssertion("client assertion has no jti")
	}
	return nil
}
