package tokens

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
)

// RemoteConfig configures a RemoteVerifier.
type RemoteConfig struct {
	// Issuer is the external authorization server's issuer identifier.
	Issuer string
	// IntrospectionClientID and IntrospectionSecret, when set, let opaque
	// (non-JWT) tokens be checked at the server's introspection endpoint.
	IntrospectionClientID, IntrospectionSecret string
	// HTTPClient talks to the authorization server.
	HTTPClient *http.Client
}

// remoteAlgorithms are the signature algorithms accepted from an external
// authorization server: asymmetric only.
var remoteAlgorithms = []jwa.SignatureAlgorithm{
	jwa.RS256(), jwa.RS384(), jwa.RS512(), jwa.PS256(), jwa.PS384(), jwa.PS512(),
	jwa.ES256(), jwa.ES384(), jwa.ES512(), jwa.EdDSA(),
}

// introspectionCacheLimit bounds how long an introspection answer is
// reused, so a token revoked at the server stops working soon.
const introspectionCacheLimit = time.Minute

// RemoteVerifier checks access tokens issued by an external authorization
// server (Keycloak, Auth0, Entra, Okta, ...): JWTs against its published
// keys, opaque tokens by introspection (RFC 7662). The server's metadata is
// discovered on first use (RFC 8414, then OpenID Connect Discovery).
type RemoteVerifier struct {
	cfg  RemoteConfig
	skew time.Duration

	mu          sync.Mutex
	meta        *remoteMetadata
	metaErr     error
	metaTried   time.Time
	keys        jwk.Set
	keysFetched time.Time

	cacheMu sync.RWMutex
	cache   map[[32]byte]cachedIntrospection
}

type remoteMetadata struct {
	Issuer                string `json:"issuer"`
	JWKSURI               string `json:"jwks_uri"`
	IntrospectionEndpoint string `json:"introspection_endpoint"`
}

type cachedIntrospection struct {
	claims *AccessClaims
	until  time.Time
}

// NewRemoteVerifier returns a verifier for tokens of cfg.Issuer.
func NewRemoteVerifier(cfg RemoteConfig) *RemoteVerifier {
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	return &RemoteVerifier{cfg: cfg, skew: 30 * time.Second, cache: map[[32]byte]cachedIntrospection{}}
}

// Verify checks token and returns its claims if it is valid for audience.
// Errors are *InvalidTokenError, except when the authorization server
// cannot be reached.
func (v *RemoteVerifier) Verify(ctx context.Context, token, audience string) (*AccessClaims, error) {
	if len(token) > MaxTokenLength {
		return nil, invalid("token is too large")
	}
	var claims *AccessClaims
	var err error
	if strings.Count(token, ".") == 2 {
		claims, err = v.verifyJWT(ctx, token)
	} else {
		claims, err = v.introspect(ctx, token)
	}
	if err != nil {
		return nil, err
	}
	now := time.Now()
	switch {
	case claims.Issuer != v.cfg.Issuer:
		return nil, invalid("token issuer is not the authorization server")
	case !slices.Contains(claims.Audience, audience):
		return nil, invalid("token is not meant for this resource")
	case claims.Expiry == 0 || now.After(time.Unix(claims.Expiry, 0).Add(v.skew)):
		return nil, invalid("token has expired")
	case time.Unix(claims.NotBefore, 0).After(now.Add(v.skew)):
		return nil, invalid("token is not valid yet")
	case claims.Subject == "":
		return nil, invalid("token has no subject")
	}
	return claims, nil
}

// metadata discovers the authorization server, retrying at most every 10 s.
func (v *RemoteVerifier) metadata(ctx context.Context) (*remoteMetadata, error) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.meta != nil {
		return v.meta, nil
	}
	if v.metaErr != nil && time.Since(v.metaTried) < 10*time.Second {
		return nil, v.metaErr
	}
	v.metaTried = time.Now()
	v.meta, v.metaErr = v.discover(ctx)
	return v.meta, v.metaErr
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
		return &m, nil
	}
	return nil, fmt.Errorf("discovering authorization server %s: %w", v.cfg.Issuer, lastErr)
}

func (v *RemoteVerifier) getJSON(ctx context.Context, u string, dst any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", u, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	return json.Unmarshal(body, dst)
}

// key returns the server's key with kid, refetching the key set when the
// kid is unknown (at most once a second) or the set is an hour old.
func (v *RemoteVerifier) key(ctx context.Context, kid string) (jwk.Key, error) {
	meta, err := v.metadata(ctx)
	if err != nil {
		return nil, err
	}
	if meta.JWKSURI == "" {
		return nil, invalid("the authorization server publishes no keys")
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.keys != nil && time.Since(v.keysFetched) < time.Hour {
		if k, err := lookupKey(v.keys, kid); err == nil {
			return k, nil
		}
		if time.Since(v.keysFetched) < time.Second {
			return nil, invalid("token is signed by an unknown key")
		}
	}
	var raw json.RawMessage
	if err := v.getJSON(ctx, meta.JWKSURI, &raw); err != nil {
		return nil, fmt.Errorf("fetching the authorization server's keys: %w", err)
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("parsing the authorization server's keys: %w", err)
	}
	v.keys, v.keysFetched = set, time.Now()
	return lookupKey(set, kid)
}

// lookupKey finds kid in set; a token without kid may use a set's only key.
func lookupKey(set jwk.Set, kid string) (jwk.Key, error) {
	if k, ok := set.LookupKeyID(kid); ok {
		return k, nil
	}
	if kid == "" && set.Len() == 1 {
		k, _ := set.Key(0)
		return k, nil
	}
	return nil, invalid("token is signed by an unknown key")
}

// verifyJWT checks the signature with the server's key named by kid, with
// an asymmetric algorithm that fits the key, and decodes the claims. Access
// tokens of external servers are typed at+jwt or, as Keycloak's, JWT.
func (v *RemoteVerifier) verifyJWT(ctx context.Context, token string) (*AccessClaims, error) {
	var failure error
	payload, err := jws.Verify([]byte(token), jws.WithCompact(), jws.WithKeyProvider(jws.KeyProviderFunc(
		func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, _ *jws.Message) error {
			h := sig.ProtectedHeaders()
			if typ, ok := h.Type(); ok && !typeMatches(typ, AccessTokenType) && !strings.EqualFold(typ, "JWT") {
				failure = invalid("token type is not an access token")
				return failure
			}
			alg, _ := h.Algorithm()
			if !slices.Contains(remoteAlgorithms, alg) {
				failure = invalid("token algorithm is not allowed")
				return failure
			}
			kid, _ := h.KeyID()
			key, err := v.key(ctx, kid)
			if err != nil {
				failure = err
				return err
			}
			if keyAlg, ok := key.Algorithm(); ok && keyAlg.String() != alg.String() {
				failure = invalid("token algorithm does not match its key")
				return failure
			}
			sink.Key(alg, key)
			return nil
		})))
	if err != nil {
		var inv *InvalidTokenError
		if failure != nil && !errors.As(failure, &inv) {
			return nil, failure // the server could not be reached
		}
		if failure != nil {
			return nil, failure
		}
		return nil, invalid("token signature is invalid")
	}
	var raw remoteClaims
	if err := json.Unmarshal(payload, &raw); err != nil {
		return nil, invalid("token claims are malformed")
	}
	return raw.accessClaims(), nil
}

// remoteClaims reads the claim spellings of common authorization servers.
type remoteClaims struct {
	AccessClaims
	Scp      json.RawMessage `json:"scp"` // Entra, Okta: string or array
	Azp      string          `json:"azp"` // Keycloak, Auth0
	Cid      string          `json:"cid"` // Okta
	Username string          `json:"username"`
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
	for _, id := range []string{r.Azp, r.Cid} {
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
// answer until the token expires, and for at most a minute.
func (v *RemoteVerifier) introspect(ctx context.Context, token string) (*AccessClaims, error) {
	if v.cfg.IntrospectionClientID == "" {
		return nil, invalid("token is not a JWT")
	}
	key := sha256.Sum256([]byte(token))
	v.cacheMu.RLock()
	cached, ok := v.cache[key]
	v.cacheMu.RUnlock()
	if ok && time.Now().Before(cached.until) {
		if cached.claims == nil {
			return nil, invalid("token is not active")
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
	resp, err := v.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspecting a token: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspecting a token: %s", resp.Status)
	}
	var answer struct {
		Active bool `json:"active"`
		remoteClaims
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&answer); err != nil {
		return nil, fmt.Errorf("introspecting a token: %w", err)
	}
	until := time.Now().Add(introspectionCacheLimit)
	var claims *AccessClaims
	if answer.Active {
		claims = answer.accessClaims()
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
		return nil, invalid("token is not active")
	}
	return claims, nil
}
