package upstream

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// allowedAlgs are the ID-token signature algorithms accepted. Only
// asymmetric ones: "none" proves nothing, and HS* would make the client
// secret a signing key that anyone holding it (including us) could forge
// tokens with.
var allowedAlgs = map[string]jwa.SignatureAlgorithm{
	"RS256": jwa.RS256(), "RS384": jwa.RS384(), "RS512": jwa.RS512(),
	"PS256": jwa.PS256(), "PS384": jwa.PS384(), "PS512": jwa.PS512(),
	"ES256": jwa.ES256(), "ES384": jwa.ES384(), "ES512": jwa.ES512(),
	"EdDSA": jwa.EdDSA(),
}

// clockSkew is how far the provider's clock may be off from ours when
// checking exp, iat and nbf.
const clockSkew = time.Minute

// jwksMaxAge is how long a fetched key set is trusted before it is fetched
// again, so keys the provider withdrew stop being accepted.
const jwksMaxAge = time.Hour

// maxIDTokenSize bounds the ID token accepted; real ones are 1-2 KiB.
const maxIDTokenSize = 64 << 10

// keySet fetches and caches a provider's JWKS.
type keySet struct {
	url    string
	client *http.Client

	// sem serializes fetches (capacity 1) so a burst of logins after a key
	// rotation fetches once; a channel rather than a mutex lets waiters
	// give up when their context ends.
	sem     chan struct{}
	set     jwk.Set
	fetched time.Time
}

func newKeySet(url string, client *http.Client) *keySet {
	return &keySet{url: url, client: client, sem: make(chan struct{}, 1)}
}

// get returns the cached key set, fetching it if there is none, it is
// older than jwksMaxAge, or it was fetched at or before staleAt (the time
// of a set the caller already found lacking). It returns the set and when
// it was fetched.
func (k *keySet) get(ctx context.Context, staleAt time.Time) (jwk.Set, time.Time, error) {
	select {
	case k.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, time.Time{}, ctx.Err()
	}
	defer func() { <-k.sem }()

	if k.set != nil && k.fetched.After(staleAt) && time.Since(k.fetched) < jwksMaxAge {
		return k.set, k.fetched, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("jwks_uri %s: %v", k.url, err)
	}
	req.Header.Set("Accept", "application/json")
	var raw json.RawMessage
	if _, err := getJSON(k.client, req, &raw); err != nil {
		return nil, time.Time{}, fmt.Errorf("fetching signing keys: %w", err)
	}
	// Non-strict parsing keeps a key of a type jwx does not know (a new
	// algorithm the provider starts publishing) as an unusable placeholder
	// instead of failing the whole set and with it every login.
	set, err := jwk.Parse(raw, jwk.WithStrictKeySetParsing(false))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("fetching signing keys: %s: invalid JWKS: %v", k.url, err)
	}
	k.set, k.fetched = set, time.Now()
	return set, k.fetched, nil
}

// verify checks the signature of the compact JWS raw against the
// provider's keys and returns its payload. An unknown kid triggers one
// refetch of the key set, which is how providers' key rotation shows up.
func (k *keySet) verify(ctx context.Context, raw string) ([]byte, error) {
	if len(raw) > maxIDTokenSize {
		return nil, fmt.Errorf("ID token is larger than %d bytes", maxIDTokenSize)
	}
	msg, err := jws.Parse([]byte(raw), jws.WithCompact())
	if err != nil {
		return nil, fmt.Errorf("ID token is not a valid compact JWS: %v", err)
	}
	sigs := msg.Signatures()
	if len(sigs) != 1 {
		return nil, fmt.Errorf("ID token has %d signatures, want 1", len(sigs))
	}
	hdr := sigs[0].ProtectedHeaders()
	algHdr, _ := hdr.Algorithm()
	alg, ok := allowedAlgs[algHdr.String()]
	if !ok {
		return nil, fmt.Errorf("ID token signature algorithm %q is not allowed", sanitize(algHdr.String()))
	}
	kid, _ := hdr.KeyID()

	set, fetched, err := k.get(ctx, time.Time{})
	if err != nil {
		return nil, err
	}
	keys := candidateKeys(set, kid, alg)
	if len(keys) == 0 && kid != "" {
		if set, _, err = k.get(ctx, fetched); err != nil {
			return nil, err
		}
		keys = candidateKeys(set, kid, alg)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("no key in %s matches the ID token's kid %q and alg %s", k.url, sanitize(kid), alg)
	}
	for _, key := range keys {
		// The algorithm is pinned to the allow-listed one from the header;
		// jws.Verify checks it fits the key type.
		if payload, err := jws.Verify([]byte(raw), jws.WithKey(alg, key)); err == nil {
			return payload, nil
		}
	}
	return nil, fmt.Errorf("ID token signature does not verify with the provider's keys (kid %q, alg %s)", sanitize(kid), alg)
}

// candidateKeys returns the keys in set that may have signed a token with
// the given kid and alg: same kid when the token names one (any key when it
// does not, as some single-key providers omit it), meant for signatures,
// and not pinned to a different algorithm.
func candidateKeys(set jwk.Set, kid string, alg jwa.SignatureAlgorithm) []jwk.Key {
	var out []jwk.Key
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
		if use, ok := key.KeyUsage(); ok && use != "" && use != jwk.ForSignature.String() {
			continue
		}
		if ka, ok := key.Algorithm(); ok && ka.String() != "" && ka.String() != alg.String() {
			continue
		}
		out = append(out, key)
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
	if !slices.Contains(c.issuers, cl.Issuer) {
		return fmt.Errorf("ID token issuer %q is not %q", sanitize(cl.Issuer), c.issuers[0])
	}
	if cl.Subject == "" {
		return errors.New("ID token has no sub claim")
	}
	if !slices.Contains(cl.Audience, c.clientID) {
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
	if cl.Expiry == nil {
		return errors.New("ID token has no exp claim")
	}
	if !c.now.Before(cl.Expiry.Time().Add(clockSkew)) {
		return fmt.Errorf("ID token expired at %s", cl.Expiry.Time().UTC().Format(time.RFC3339))
	}
	if cl.IssuedAt == nil {
		return errors.New("ID token has no iat claim")
	}
	if cl.IssuedAt.Time().After(c.now.Add(clockSkew)) {
		return fmt.Errorf("ID token issued in the future (iat %s)", cl.IssuedAt.Time().UTC().Format(time.RFC3339))
	}
	if cl.NotBefore != nil && cl.NotBefore.Time().After(c.now.Add(clockSkew)) {
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
