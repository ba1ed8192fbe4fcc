package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/fetch"
)

// RemoteConfig configures a RemoteVerifier.
type RemoteConfig struct {
	// Issuer is the external authorization server's issuer identifier.
	Issuer string
	// IntrospectionClientID and IntrospectionSecret, when set, let opaque
	// (non-JWT) tokens be checked at the server's introspection endpoint.
	IntrospectionClientID, IntrospectionSecret string
	// AcceptedTypes are JOSE "typ" values accepted on JWT access tokens
	// besides at+jwt (RFC 9068), for servers that type theirs otherwise:
	// Keycloak, Auth0 and Entra use "JWT". Compared like typ values are,
	// case-insensitively and with an optional "application/" prefix. The
	// empty string accepts tokens without typ (Okta).
	AcceptedTypes []string
	// JWKSURI, when set, is where the server publishes its keys, and its
	// metadata is not discovered.
	JWKSURI string
	// HTTPClient talks to the authorization server.
	HTTPClient *http.Client
}

// RemoteAlgorithms are the signature algorithms accepted from an external
// authorization server or identity provider: asymmetric only, as their
// keys are public.
var RemoteAlgorithms = []jwa.SignatureAlgorithm{
	jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512(),
	jwa.ES256(), jwa.ES384(), jwa.ES512(), jwa.EdDSA(),
}

// introspectionCacheLimit bounds how long an introspection answer is
// reused, so a token revoked at the server stops working soon.
const introspectionCacheLimit = time.Minute

// Limits of the external server's discovery and key fetches.
const (
	// remoteDiscoveryRetry is the least time between two attempts at
	// discovering the server's metadata.
	remoteDiscoveryRetry = 10 * time.Second
	// remoteFetchWait is how long a verification waits for a fetch it
	// needs: the server's metadata, or the keys for an unknown kid.
	remoteFetchWait = 5 * time.Second
	// remoteFetchTimeout bounds one fetch, or one discovery.
	remoteFetchTimeout = 10 * time.Second
)

// remoteKeyPolicy bounds what tokens naming made-up kids can cost: one
// fetch per FetchInterval, however many arrive.
var remoteKeyPolicy = KeySetPolicy{
	MaxAge:             time.Hour,
	FetchInterval:      10 * time.Second,
	UnknownKidInterval: time.Minute,
	Wait:               remoteFetchWait,
	Timeout:            remoteFetchTimeout,
}

// RemoteVerifier checks access tokens issued by an external authorization
// server (Keycloak, Auth0, Entra, Okta, ...): JWTs against its published
// keys, opaque tokens by introspection (RFC 7662). The server's metadata is
// discovered on first use (RFC 8414, then OpenID Connect Discovery).
type RemoteVerifier struct {
	cfg  RemoteConfig
	skew time.Duration

	meta fetch.Refresher[*remoteMetadata]
	keys *KeySet

	cacheMu sync.RWMutex
	cache   map[[32]byte]cachedIntrospection
}

type remoteMetadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

type cachedIntrospection struct {
	claims *remoteClaims
	until  time.Time
}

// NewRemoteVerifier returns a verifier for tokens of cfg.Issuer.
func NewRemoteVerifier(cfg RemoteConfig) *RemoteVerifier {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	v := &RemoteVerifier{cfg: cfg, skew: 30 * time.Second, cache: map[[32]byte]cachedIntrospection{}}
	v.meta.Fetch, v.meta.Timeout = v.discover, remoteFetchTimeout
	v.keys = NewKeySet(v.fetchKeys, remoteKeyPolicy)
	return v
}

// Verify checks token and returns its claims if it is an access token
// valid for audience. Errors are *InvalidTokenError, except when the
// authorization server cannot be reached.
func (v *RemoteVerifier) Verify(ctx context.Context, token, audience string) (*AccessClaims, error) {
	if len(token) > MaxTokenLength {
		return nil, invalid("token is too large")
	}
	var raw *remoteClaims
	var err error
	if strings.Count(token, ".") == 2 {
		raw, err = v.verifyJWT(ctx, token)
	} else {
		raw, err = v.introspect(ctx, token)
	}
	if err != nil {
		return nil, err
	}
	claims := raw.accessClaims()
	rules := ClaimRules{Now: time.Now(), Skew: v.skew, Issuers: []string{v.cfg.Issuer}, Audiences: []string{audience}, RequireExpiry: true}
	switch failure := rules.Check(claims.registered()); {
	case failure == ClaimIssuer:
		return nil, invalid("token issuer is not the authorization server")
	case failure != 0:
		return nil, accessClaimError(failure)
	case claims.Subject == "":
		return nil, invalid("token has no subject")
	case raw.Typ != "" && !strings.EqualFold(raw.Typ, "Bearer"):
		// Keycloak names the kind of each of its tokens in this claim:
		// Bearer for access tokens, ID, Refresh, Logout for others.
		return nil, invalid("token is not an access token")
	case len(raw.Cnf) > 0 && string(raw.Cnf) != "null":
		// A sender-constrained token (DPoP, RFC 9449; mTLS, RFC 8705)
		// is only good with a proof of its key, which this resource
		// does not check: taking it as a bearer token would undo the
		// binding.
		return nil, invalid("token is bound to a key this resource cannot check")
	}
	return claims, nil
}

// metadata returns the authorization server's metadata, discovered once
// it answers. Discovery runs in the background, one at a time and, after a
// failure, at most every remoteDiscoveryRetry; a verification waits for it
// at most remoteFetchWait, so an unreachable server makes requests fail
// quickly rather than pile up.
func (v *RemoteVerifier) metadata(ctx context.Context) (*remoteMetadata, error) {
	if v.cfg.JWKSURI != "" {
		return &remoteMetadata{Issuer: v.cfg.Issuer, JWKSURI: v.cfg.JWKSURI}, nil
	}
	if known := v.meta.State(); known.Have {
		return known.Value, nil
	}
	fetch.Wait(ctx, v.meta.Start(remoteDiscoveryRetry), remoteFetchWait)
	known := v.meta.State()
	switch {
	case known.Have:
		return known.Value, nil
	case known.Err != nil:
		return nil, known.Err
	}
	return nil, errors.New("the authorization server's metadata did not arrive in time")
}

func (v *RemoteVerifier) discover(ctx context.Context) (*remoteMetadata, error) {
	u, err := url.Parse(v.cfg.Issuer)
	if err != nil {
		return nil, err
	}
	path := strings.TrimRight(u.Path, "/")
	candidates := []string{
		u.Scheme + "://" + u.Host + "/.well-known/oauth-authorization-server" + path,
		u.Scheme + "://" + u.Host + "/.well-known/openid-configuration" + path,
		strings.TrimRight(v.cfg.Issuer, "/") + "/.well-known/openid-configuration",
	}
	var lastErr error
	for _, c := range candidates {
		var m remoteMetadata
		if lastErr = v.getJSON(ctx, c, &m); lastErr != nil {
			continue
		}
		if m.Issuer != v.cfg.Issuer {
			return nil, fmt.Errorf("metadata at %s names issuer %q, not %q", c, m.Issuer, v.cfg.Issuer)
		}
		if m.JWKSURI == "" && m.IntrospectionEndpoint == "" {
			return nil, fmt.Errorf("metadata at %s has neither jwks_uri nor introspection_endpoint", c)
		}
		if err := m.checkSchemes(v.cfg.Issuer); err != nil {
			return nil, fmt.Errorf("metadata at %s: %w", c, err)
		}
		return &m, nil
	}
	return nil, fmt.Errorf("discovering authorization server %s: %w", v.cfg.Issuer, lastErr)
}

// checkSchemes refuses the endpoints of an https issuer's metadata that
// are not https (OpenID Connect Discovery 1.0 section 3 requires it of
// jwks_uri): keys fetched over plain http could be swapped on the way, and
// tokens sent to introspection read. An http issuer is a loopback one.
func (m *remoteMetadata) checkSchemes(issuer string) error {
	if u, err := url.Parse(issuer); err != nil || u.Scheme != "https" {
		return nil
	}
	for _, e := range []struct{ name, raw string }{{"jwks_uri", m.JWKSURI}, {"introspection_endpoint", m.IntrospectionEndpoint}} {
		if u, err := url.Parse(e.raw); e.raw != "" && (err != nil || u.Scheme != "https" || u.Host == "") {
			return fmt.Errorf("%s %q is not an https URL", e.name, e.raw)
		}
	}
	return nil
}

// maxRemoteResponse bounds a metadata document, key set or introspection
// answer read from the authorization server.
const maxRemoteResponse = 1 << 20

func (v *RemoteVerifier) getJSON(ctx context.Context, u string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := fetch.Do(v.cfg.HTTPClient, req, maxRemoteResponse, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", u, resp.Status)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return json.Unmarshal(resp.Body, dst)
}

// fetchKeys fetches the server's published keys.
func (v *RemoteVerifier) fetchKeys(ctx context.Context) (jwk.Set, error) {
	meta, err := v.metadata(ctx)
	if err != nil {
		return nil, err
	}
	var raw json.RawMessage
	if err := v.getJSON(ctx, meta.JWKSURI, &raw); err != nil {
		return nil, err
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing the keys: %w", err)
	}
	return set, nil
}

// typeAccepted reports whether typ, a JWT's JOSE "typ" ("" if absent),
// marks an access token. RFC 9068 requires at+jwt, which no ID token or
// other JWT of the same server carries; other values only when configured.
func (v *RemoteVerifier) typeAccepted(typ string) bool {
	if typeMatches(typ, AccessTokenType) {
		return true
	}
	for _, t := range v.cfg.AcceptedTypes {
		if t == typ || t != "" && typeMatches(typ, strings.ToLower(t)) {
			return true
		}
	}
	return false
}

// verifyJWT checks the signature with the server's key named by kid, with
// an asymmetric algorithm that fits the key, and decodes the claims. It
// requires the claims RFC 9068 requires that every server we know sets:
// iat and a client id (client_id, or azp, cid, appid).
func (v *RemoteVerifier) verifyJWT(ctx context.Context, token string) (*remoteClaims, error) {
	if !IsCompactJWSText(token) {
		return nil, invalid("token is not a JWT")
	}
	meta, err := v.metadata(ctx)
	if err != nil {
		return nil, err
	}
	if meta.JWKSURI == "" {
		return nil, invalid("the authorization server publishes no keys")
	}
	payload, err := VerifyJWS(ctx, token, JWSRules{
		MaxLength:  MaxTokenLength,
		Algorithms: RemoteAlgorithms,
		Type:       v.typeAccepted,
		Keys:       v.SigningKeys,
	})
	var jerr *JWSError
	if errors.As(err, &jerr) {
		switch jerr.Failure {
		case JWSTypeRejected:
			return nil, invalid("token type is not an access token")
		case JWSAlgorithmRejected:
			return nil, invalid("token algorithm is not allowed")
		}
		return nil, invalid("token signature is invalid")
	}
	if err != nil {
		return nil, err
	}
	var raw remoteClaims
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, invalid("token claims are malformed")
	}
	if raw.IssuedAt == 0 || raw.accessClaims().ClientID == "" {
		return nil, invalid("token lacks required claims")
	}
	return &raw, nil
}

// SigningKeys returns the server's published key named kid, for
// JWSRules.Keys, once it is known to fit alg: for the server's access
// tokens, and for other tokens its keys sign (an enterprise identity
// provider's identity assertions). An unknown kid makes the keys be
// fetched again, within KeySet's limits. Errors are *InvalidTokenError
// when no published key fits, and others when the keys could not be
// fetched.
func (v *RemoteVerifier) SigningKeys(ctx context.Context, kid string, alg jwa.SignatureAlgorithm) ([]any, error) {
	meta, err := v.metadata(ctx)
	if err != nil {
		return nil, err
	}
	if meta.JWKSURI == "" {
		return nil, invalid("the server publishes no keys")
	}
	key, err := remoteKey(ctx, v.keys, kid)
	if err != nil {
		return nil, err // an *InvalidTokenError, or the server could not be reached
	}
	if !KeyAllows(key, alg) {
		return nil, invalid("token algorithm does not match its key")
	}
	return []any{key}, nil
}

// remoteKey returns the server's key named kid. Errors are
// *InvalidTokenError when the server does not publish such a key, and
// others when the server's keys could not be fetched at all.
func remoteKey(ctx context.Context, keys *KeySet, kid string) (jwk.Key, error) {
	set, err := keys.Find(ctx, kid, func(set jwk.Set) bool {
		_, ok := lookupKey(set, kid)
		return ok
	})
	var unavailable *KeysUnavailableError
	switch {
	case errors.Is(err, ErrUnknownKey):
		return nil, invalid("token is signed by an unknown key")
	case errors.As(err, &unavailable) && unavailable.Cause != nil:
		return nil, fmt.Errorf("fetching the authorization server's keys: %w", unavailable.Cause)
	case err != nil:
		return nil, errors.New("the authorization server's keys did not arrive in time")
	}
	key, _ := lookupKey(set, kid)
	return key, nil
}

// lookupKey finds kid in set; a token without kid may use a set's only key.
// Keys published for encryption only are not signing keys.
func lookupKey(set jwk.Set, kid string) (jwk.Key, bool) {
	k, ok := set.LookupKeyID(kid)
	if !ok && kid == "" && set.Len() == 1 {
		k, ok = set.Key(0)
	}
	if !ok || !IsSigningKey(k) {
		return nil, false
	}
	return k, true
}

// remoteClaims reads the claim spellings of common authorization servers,
// and the claims that say a token is not a bearer access token.
type remoteClaims struct {
	AccessClaims
	Scp      json.RawMessage `json:"scp"`   // Entra, Okta: string or array
	Azp      string          `json:"azp"`   // Keycloak, Auth0, Entra v2
	Cid      string          `json:"cid"`   // Okta
	AppID    string          `json:"appid"` // Entra v1
	Username string          `json:"username"`
	// Typ is Keycloak's kind of token: Bearer, ID, Refresh, ...
	Typ string `json:"typ"`
	// Cnf binds a token to a key (RFC 7800, RFC 9449, RFC 8705).
	Cnf json.RawMessage `json:"cnf"`
}

func (r *remoteClaims) accessClaims() *AccessClaims {
	c := r.AccessClaims
	if c.Scope == "" && len(r.Scp) > 0 {
		var one string
		var many []string
		if json.Unmarshal(r.Scp, &one) == nil {
			c.Scope = one
		} else if json.Unmarshal(r.Scp, &many) == nil {
			c.Scope = strings.Join(many, " ")
		}
	}
	for _, id := range []string{r.Azp, r.Cid, r.AppID} {
		if c.ClientID == "" {
			c.ClientID = id
		}
	}
	if c.Username == "" {
		c.Username = r.Username
	}
	return &c
}

// introspect asks the server about an opaque token (RFC 7662), reusing an
// answer until the token expires, and for at most a minute. Only answers
// about access tokens count: one whose token_type names anything else (a
// refresh token, a DPoP-bound token) is refused. An answer without
// token_type is taken as one about the access token we asked about (we
// send token_type_hint=access_token), as the member is optional and many
// servers leave it out; audience, issuer and expiry are checked anyway.
func (v *RemoteVerifier) introspect(ctx context.Context, token string) (*remoteClaims, error) {
	if v.cfg.IntrospectionClientID == "" {
		return nil, invalid("token is not a JWT")
	}
	key := sha256.Sum256([]byte(token))
	v.cacheMu.RLock()
	cached, ok := v.cache[key]
	v.cacheMu.RUnlock()
	if ok && time.Now().Before(cached.until) {
		if cached.claims == nil {
			return nil, invalid("token is not an active access token")
		}
		return cached.claims, nil
	}
	meta, err := v.metadata(ctx)
	if err != nil {
		return nil, err
	}
	if meta.IntrospectionEndpoint == "" {
		return nil, invalid("token is not a JWT")
	}
	form := url.Values{"token": {token}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, meta.IntrospectionEndpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.SetBasicAuth(url.QueryEscape(v.cfg.IntrospectionClientID), url.QueryEscape(v.cfg.IntrospectionSecret))
	resp, err := fetch.Do(v.cfg.HTTPClient, req, maxRemoteResponse, func(resp *http.Response) error {
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("introspecting a token: %w", err)
	}
	var answer struct {
		Active    bool   `json:"active"`
		TokenType string `json:"token_type"`
		remoteClaims
	}
	if err := json.Unmarshal(resp.Body, &answer); err != nil {
		return nil, fmt.Errorf("introspecting a token: %w", err)
	}
	until := time.Now().Add(introspectionCacheLimit)
	var claims *remoteClaims
	if answer.Active && (answer.TokenType == "" || isAccessTokenType(answer.TokenType)) {
		claims = &answer.remoteClaims
		if claims.Issuer == "" { // the server vouches for its own tokens
			claims.Issuer = v.cfg.Issuer
		}
		if exp := time.Unix(claims.Expiry, 0); claims.Expiry != 0 && exp.Before(until) {
			until = exp
		}
	}
	v.cacheMu.Lock()
	if len(v.cache) > 10000 {
		clear(v.cache)
	}
	v.cache[key] = cachedIntrospection{claims: claims, until: until}
	v.cacheMu.Unlock()
	if claims == nil {
		return nil, invalid("token is not an active access token")
	}
	return claims, nil
}

// isAccessTokenType reports whether an introspection answer's token_type
// names a bearer access token: the OAuth token type (RFC 6749 section
// 7.1) "Bearer", or the access token's type URI (RFC 8693 section 3).
func isAccessTokenType(t string) bool {
	return strings.EqualFold(t, "Bearer") || t == "access_token" || t == "urn:ietf:params:oauth:token-type:access_token"
}
