package upstream

import (
	"cmp"
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// allowedAlgs are the ID-token signature algorithms accepted. Only
// asymmetric ones: "none" proves nothing, and HS* would make the client
// secret a signing key that anyone holding it (including us) could forge
// tokens with.
var allowedAlgs = []jwa.SignatureAlgorithm{
	jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512(),
	jwa.ES256(), jwa.ES384(), jwa.ES512(), jwa.EdDSA(),
}

// clockSkew is how far the provider's clock may be off from ours when
// checking exp, iat and nbf.
const clockSkew = time.Minute

// maxIDTokenSize bounds the ID token accepted; real ones are 1-2 KiB.
const maxIDTokenSize = 64 << 10

// providerKeyPolicy is when a provider's key set is fetched. Its ID tokens
// come from its token endpoint, not from whoever calls us, so an unknown
// kid means a key rotation: it fetches the keys again at once, but once per
// kid within UnknownKidInterval, so logins racing on a rotation share one
// fetch.
var providerKeyPolicy = tokens.KeySetPolicy{
	// MaxAge makes keys the provider withdrew stop being accepted.
	MaxAge:             time.Hour,
	UnknownKidInterval: 10 * time.Second,
	Timeout:            exchangeTimeout,
}

// idTokenKeys are a provider's published keys, at url.
type idTokenKeys struct {
	url  string
	keys *tokens.KeySet
}

func newIDTokenKeys(url string, client *http.Client) *idTokenKeys {
	return &idTokenKeys{url: url, keys: tokens.NewKeySet(func(ctx context.Context) (jwk.Set, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return nil, fmt.Errorf("jwks_uri %s: %v", url, err)
		}
		req.Header.Set("Accept", "application/json")
		var raw json.RawMessage
		if _, err := getJSON(client, req, &raw); err != nil {
			return nil, err
		}
		// Non-strict parsing keeps a key of a type jwx does not know (a new
		// algorithm the provider starts publishing) as an unusable placeholder
		// instead of failing the whole set and with it every login.
		set, err := jwk.Parse(raw, jwk.WithStrictKeySetParsing(false))
		if err != nil {
			return nil, fmt.Errorf("%s: invalid JWKS: %v", url, err)
		}
		return set, nil
	}, providerKeyPolicy)}
}

// verify checks the signature of the compact JWS raw against the
// provider's keys and returns its payload. An unknown kid triggers a
// refetch of the key set, which is how providers' key rotation shows up.
func (k *idTokenKeys) verify(ctx context.Context, raw string) ([]byte, error) {
	payload, err := tokens.VerifyJWS(ctx, raw, tokens.JWSRules{
		MaxLength:  maxIDTokenSize,
		Algorithms: allowedAlgs,
		Keys: func(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]any, error) {
			has := func(set jwk.Set) bool { return len(candidateKeys(set, kid, alg)) > 0 }
			set, err := k.keys.Find(ctx, kid, has)
			if errors.Is(err, tokens.ErrUnknownKey) {
				// The first set fetched may predate the token: a kid it
				// lacks asks for one more fetch.
				set, err = k.keys.Find(ctx, kid, has)
			}
			var unavailable *tokens.KeysUnavailableError
			switch {
			case errors.Is(err, tokens.ErrUnknownKey):
				return nil, fmt.Errorf("no key in %s matches the ID token's kid %q and alg %s", k.url, sanitize(kid), alg)
			case errors.As(err, &unavailable) && unavailable.Cause != nil:
				return nil, fmt.Errorf("fetching signing keys: %w", unavailable.Cause)
			case err != nil:
				return nil, cmp.Or(ctx.Err(), errors.New("fetching signing keys: no answer in time"))
			}
			return candidateKeys(set, kid, alg), nil
		},
	})
	var jerr *tokens.JWSError
	if !errors.As(err, &jerr) {
		return payload, err
	}
	switch jerr.Failure {
	case tokens.JWSTooLarge:
		return nil, fmt.Errorf("ID token is larger than %d bytes", maxIDTokenSize)
	case tokens.JWSMalformed, tokens.JWSUnreadable:
		return nil, fmt.Errorf("ID token is not a valid compact JWS: %v", err)
	case tokens.JWSAlgorithmRejected:
		return nil, fmt.Errorf("ID token signature algorithm %q is not allowed", sanitize(jerr.Alg))
	}
	return nil, fmt.Errorf("ID token signature does not verify with the provider's keys (kid %q, alg %s)", sanitize(jerr.Kid), sanitize(jerr.Alg))
}

// candidateKeys returns the keys in set that may have signed a token with
// the given kid and alg: same kid when the token names one (any key when it
// does not, as some single-key providers omit it), meant for signatures,
// and not pinned to a different algorithm.
func candidateKeys(set jwk.Set, kid string, alg jwa.SignatureAlgorithm) []any {
	var out []any
	for i := range set.Len() {
		key, ok := set.Key(i)
		if !ok {
			continue
		}
		if kid != "" {
			if id, _ := key.KeyID(); id != kid {
				continue
			}
		}
		if tokens.IsSigningKey(key) && tokens.KeyAllows(key, alg) {
			out = append(out, key)
		}
	}
	return out
}

// idClaims are the ID-token claims checked or used; sub comes with the
// embedded profile claims.
type idClaims struct {
	Issuer          string              `json:"iss"`
	Audience        tokens.Audience     `json:"aud"`
	AuthorizedParty string              `json:"azp"`
	Expiry          *tokens.NumericDate `json:"exp"`
	IssuedAt        *tokens.NumericDate `json:"iat"`
	NotBefore       *tokens.NumericDate `json:"nbf"`
	Nonce           string              `json:"nonce"`
	// HostedDomain is Google's hd: the account's Workspace domain.
	HostedDomain string `json:"hd"`
	profileClaims
}

// profileClaims are the standard OIDC claims that make up an Identity; the
// ID token and the userinfo response both carry them.
type profileClaims struct {
	Subject           string   `json:"sub"`
	Email             string   `json:"email"`
	EmailVerified     flexBool `json:"email_verified"`
	Name              string   `json:"name"`
	PreferredUsername string   `json:"preferred_username"`
	Picture           string   `json:"picture"`
}

// idTokenCheck is what an ID token must match.
type idTokenCheck struct {
	issuers  []string // the issuer, plus any alias the provider is known to use
	clientID string
	nonce    string
	now      time.Time
}

// validate checks the claims of a signature-verified ID token
// (OpenID Connect Core 1.0, section 3.1.3.7).
func (c *idTokenCheck) validate(cl *idClaims) error {
	rules := tokens.ClaimRules{
		Now: c.now, Skew: clockSkew,
		Issuers: c.issuers, Audiences: []string{c.clientID},
		RequireExpiry: true, RequireIssuedAt: true,
	}
	failure := rules.Check(tokens.RegisteredClaims{
		Issuer: cl.Issuer, Audience: cl.Audience,
		Expiry: cl.Expiry.TimeOrZero(), NotBefore: cl.NotBefore.TimeOrZero(), IssuedAt: cl.IssuedAt.TimeOrZero(),
	})
	if failure == tokens.ClaimIssuer {
		return fmt.Errorf("ID token issuer %q is not %q", sanitize(cl.Issuer), c.issuers[0])
	}
	if cl.Subject == "" {
		return errors.New("ID token has no sub claim")
	}
	if failure == tokens.ClaimAudience {
		return fmt.Errorf("ID token audience %q does not include client_id %q", sanitize(fmt.Sprint([]string(cl.Audience))), c.clientID)
	}
	// With several audiences, azp says which one the token was issued to;
	// it must be us, or another audience could replay a token it received.
	if len(cl.Audience) > 1 && cl.AuthorizedParty == "" {
		return errors.New("ID token has several audiences but no azp claim")
	}
	if cl.AuthorizedParty != "" && cl.AuthorizedParty != c.clientID {
		return fmt.Errorf("ID token azp %q is not client_id %q", sanitize(cl.AuthorizedParty), c.clientID)
	}
	switch failure {
	case tokens.ClaimNoExpiry:
		return errors.New("ID token has no exp claim")
	case tokens.ClaimExpired:
		return fmt.Errorf("ID token expired at %s", cl.Expiry.Time().UTC().Format(time.RFC3339))
	case tokens.ClaimNoIssuedAt:
		return errors.New("ID token has no iat claim")
	case tokens.ClaimIssuedInFuture:
		return fmt.Errorf("ID token issued in the future (iat %s)", cl.IssuedAt.Time().UTC().Format(time.RFC3339))
	case tokens.ClaimNotYetValid:
		return fmt.Errorf("ID token not valid before %s", cl.NotBefore.Time().UTC().Format(time.RFC3339))
	}
	// The nonce ties the token to the login this browser started; without
	// the check a token from another login could be injected.
	if cl.Nonce == "" || subtle.ConstantTimeCompare([]byte(cl.Nonce), []byte(c.nonce)) != 1 {
		return errors.New("ID token nonce does not match the one sent with the login")
	}
	// at_hash is not checked: in the code flow the token comes straight
	// from the token endpoint over TLS, so it cannot have been swapped
	// (Core 3.1.3.8 makes the check optional there).
	return nil
}

// flexBool is a boolean claim that some providers (AWS Cognito, for one)
// send as the string "true" or "false".
type flexBool bool

func (f *flexBool) UnmarshalJSON(b []byte) error {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	switch v := v.(type) {
	case bool:
		*f = flexBool(v)
	case string:
		*f = v == "true"
	default:
		*f = false
	}
	return nil
}
