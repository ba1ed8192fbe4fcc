package clients

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/fetch"
)

// MaxMetadataURLLength bounds a client_id that is a metadata document URL.
const MaxMetadataURLLength = 2000

// IsMetadataURL reports whether clientID is a valid Client ID Metadata
// Document URL (draft-ietf-oauth-client-id-metadata-document section 3):
// https, with a host, a path other than "/", no dot segments, no fragment
// and no user information. A query is allowed (the draft only discourages
// it). This is checked before anything is fetched.
func IsMetadataURL(clientID string) bool {
	if len(clientID) > MaxMetadataURLLength || !strings.HasPrefix(clientID, "https://") ||
		!isURIChars(clientID) || strings.Contains(clientID, "#") {
		return false
	}
	u, err := url.Parse(clientID)
	if err != nil || u.Scheme != "https" || u.Hostname() == "" || u.User != nil {
		return false
	}
	path := u.EscapedPath()
	if path == "" || path == "/" {
		return false
	}
	for _, seg := range strings.Split(path, "/") {
		// Encoded dots count: servers decode "%2e%2e" to "..".
		switch strings.ToLower(seg) {
		case ".", "..", "%2e", "%2e%2e", ".%2e", "%2e.":
			return false
		}
	}
	return true
}

// FetcherOptions configures a Fetcher. Zero values get the defaults shown.
type FetcherOptions struct {
	// AllowLoopback lets the fetcher connect to loopback addresses. It is
	// for tests against a local server only; private, link-local and other
	// internal addresses stay refused.
	AllowLoopback bool
	// RootCAs verifies server certificates; nil means the system pool.
	RootCAs *x509.CertPool
	// Timeout bounds a whole fetch, from dialing to the last body byte.
	// Default: 5s.
	Timeout time.Duration
	// MaxBytes bounds a metadata document. Default: 5 KiB.
	MaxBytes int64
	// MaxJWKSBytes bounds a JWK Set fetched from a jwks_uri. Default:
	// 64 KiB, as sets with several RSA keys or certificate chains exceed
	// 5 KiB.
	MaxJWKSBytes int64
	// MinCache and MaxCache clamp how long a fetched document or key set
	// is cached; within them the response's Cache-Control max-age applies
	// (MinCache without one). no-store disables caching. Defaults: 5m, 24h.
	MinCache, MaxCache time.Duration
	// FailureCache is how long a failure to reach a host (refused address,
	// timeout, TLS error) is remembered, so that repeated requests for the
	// same URL do not each wait out a timeout. HTTP errors and invalid
	// documents are never cached (draft section 4.4 forbids it). It is
	// also how long a last good document stands in (see StaleIfError)
	// before the next attempt. Default: 30s; negative disables.
	FailureCache time.Duration
	// StaleIfError is how long past its expiry a document or key set
	// fetched fine before is still used while fetching it again fails in
	// a way likely to pass (see MetadataError.RetryAfter). A document
	// that is gone (404, 410) or now invalid is never replaced by an old
	// copy. Default: 24h; negative disables.
	StaleIfError time.Duration
	// MaxEntries bounds each cache (documents, key sets). Default: 1000.
	MaxEntries int
	// OfferedGrants are the grant types the server offers besides
	// authorization_code and refresh_token (the jwt-bearer grant, with
	// enterprise identity providers): documents' grant_types keep them.
	OfferedGrants []string
	// Logger hears of failed fetches; nil logs nothing.
	Logger *zap.Logger
}

// Fetcher fetches and validates client metadata documents and client key
// sets over an SSRF-hardened HTTP client, and caches them. It is safe for
// concurrent use.
type Fetcher struct {
	opts   FetcherOptions
	client *http.Client
	docs   *fetchCache[*Client]
	keys   *fetchCache[jwk.Set]
	now    func() time.Time // replaced in tests
}

// jwksRefetchInterval is how often an unknown kid may force a key set to be
// fetched again before its cache entry expires.
const jwksRefetchInterval = time.Minute

// maxJWKSKeys bounds the keys of a client's JWK Set.
const maxJWKSKeys = 20

// NewFetcher returns a Fetcher with opts, defaults filled in.
func NewFetcher(opts FetcherOptions) *Fetcher {
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxBytes <= 0 {
		opts.MaxBytes = 5 << 10
	}
	if opts.MaxJWKSBytes <= 0 {
		opts.MaxJWKSBytes = 64 << 10
	}
	if opts.MinCache <= 0 {
		opts.MinCache = 5 * time.Minute
	}
	if opts.MaxCache <= 0 {
		opts.MaxCache = 24 * time.Hour
	}
	opts.MaxCache = max(opts.MaxCache, opts.MinCache)
	if opts.FailureCache == 0 {
		opts.FailureCache = 30 * time.Second
	}
	if opts.StaleIfError == 0 {
		opts.StaleIfError = 24 * time.Hour
	}
	if opts.MaxEntries <= 0 {
		opts.MaxEntries = 1000
	}
	if opts.Logger == nil {
		opts.Logger = zap.NewNop()
	}
	f := &Fetcher{
		opts:   opts,
		client: fetch.NewClient(fetch.Options{AllowLoopback: opts.AllowLoopback, RootCAs: opts.RootCAs, Timeout: opts.Timeout}),
		docs:   newFetchCache[*Client](opts.MaxEntries, opts.StaleIfError),
		keys:   newFetchCache[jwk.Set](opts.MaxEntries, opts.StaleIfError),
		now:    time.Now,
	}
	f.docs.onFailure = f.logFailure("client metadata document")
	f.keys.onFailure = f.logFailure("client key set")
	return f
}

// logFailure returns the logger of failed fetches of what. The cause may
// name addresses a host resolved to, which the client never sees; the
// logs may. Documents and key sets are public, so their URLs may be
// logged.
func (f *Fetcher) logFailure(what string) func(url string, err error, servedUntil time.Time) {
	return func(url string, err error, servedUntil time.Time) {
		fields := []zap.Field{zap.String("url", url), zap.String("reason", err.Error())}
		if cause := errors.Unwrap(err); cause != nil {
			fields = append(fields, zap.String("cause", cause.Error()))
		}
		if !servedUntil.IsZero() {
			f.opts.Logger.Warn(what+" could not be fetched again; using the last good copy",
				append(fields, zap.Time("until", servedUntil))...)
			return
		}
		f.opts.Logger.Warn(what+" could not be used", fields...)
	}
}

// Client returns the client whose metadata document is at clientID, an
// https URL (see IsMetadataURL), fetching and validating the document or
// taking it from the cache. The client has Metadata set and a
// token_endpoint_auth_method of none or private_key_jwt.
//
// Errors are *MetadataError (safe to show; abort the authorization request
// with an error page, never a redirect) or ctx's error.
func (f *Fetcher) Client(ctx context.Context, clientID string) (*Client, error) {
	if !IsMetadataURL(clientID) {
		return nil, metadataErr(nil, "client_id is not a valid client metadata document URL")
	}
	c, err := f.docs.get(ctx, clientID, f.now(), 0, func(ctx context.Context) (*Client, time.Duration, error) {
		resp, err := f.get(ctx, clientID, "client metadata document", f.opts.MaxBytes)
		if err != nil {
			return nil, f.failureTTL(err), err
		}
		c, err := parseDocument(clientID, resp.Body, f.opts.OfferedGrants)
		if err != nil {
			return nil, 0, err
		}
		return c, fetch.CacheTTL(resp.Header, f.opts.MinCache, f.opts.MaxCache), nil
	})
	if err != nil {
		return nil, err
	}
	return c.Clone(), nil
}

// JWKS returns the JWK Set at url, a client's jwks_uri, fetched like a
// metadata document (same address checks, no redirects, JSON only, size
// cap, cache). It holds public keys only. If ctx carries a key refresh
// request (see KeyRefreshRequested), a cached set at least a minute old is
// fetched again.
//
// Errors are *MetadataError or ctx's error.
func (f *Fetcher) JWKS(ctx context.Context, url string) (jwk.Set, error) {
	if !isHTTPSURL(url) {
		return nil, metadataErr(nil, "jwks_uri is not an https URL")
	}
	var refresh time.Duration
	if KeyRefreshRequested(ctx) {
		refresh = jwksRefetchInterval
	}
	set, err := f.keys.get(ctx, url, f.now(), refresh, func(ctx context.Context) (jwk.Set, time.Duration, error) {
		resp, err := f.get(ctx, url, "client key set", f.opts.MaxJWKSBytes)
		if err != nil {
			return nil, f.failureTTL(err), err
		}
		set, err := parseJWKS(resp.Body)
		if err != nil {
			return nil, 0, err
		}
		return set, fetch.CacheTTL(resp.Header, f.opts.MinCache, f.opts.MaxCache), nil
	})
	if err != nil {
		return nil, err
	}
	return set.Clone()
}

// Keys returns the key source VerifyAssertion needs for client c: the set
// at its jwks_uri, fetched through f, or its inline jwks.
func (f *Fetcher) Keys(c *Client) func(ctx context.Context) (jwk.Set, error) {
	uri, inline := c.JWKSURI, c.JWKS
	return func(ctx context.Context) (jwk.Set, error) {
		switch {
		case uri != "":
			return f.JWKS(ctx, uri)
		case len(inline) > 0:
			return parseJWKS(inline)
		}
		return nil, metadataErr(nil, "client has no keys registered")
	}
}

// failureTTL is how long the failure err may be cached.
func (f *Fetcher) failureTTL(err error) time.Duration {
	var me *MetadataError
	if errors.As(err, &me) && me.network && f.opts.FailureCache > 0 {
		return f.opts.FailureCache
	}
	return 0
}

// cimdAuthMethods are the methods a metadata document may declare. There
// is no way to share a secret with a client that registers itself by URL,
// so the client_secret_* methods are out (draft section 6.1 / CIMD-06).
var cimdAuthMethods = []string{AuthMethodNone, AuthMethodPrivateKeyJWT}

// parseDocument validates a metadata document fetched from clientID, for
// a server offering the grant types offered besides authorization_code and
// refresh_token.
func parseDocument(clientID string, body []byte, offered []string) (*Client, error) {
	fields, rerr := parseObject(body)
	if rerr != nil {
		return nil, metadataErr(nil, "client metadata document is not a JSON object")
	}
	// Draft section 4.1: "simple string comparison" (RFC 3986 section
	// 6.2.1). No normalization: a trailing slash or a case change is a
	// different client.
	if id, ok := stringMember(fields, "client_id"); !ok || id != clientID {
		return nil, metadataErr(nil, "client_id in the client metadata document does not match its URL")
	}
	if present(fields, "client_secret") || present(fields, "client_secret_expires_at") {
		return nil, metadataErr(nil, "client metadata document must not contain a client secret")
	}
	dropUnofferedGrants(fields, offered)
	c, rerr := parseMetadata(fields, cimdAuthMethods, AuthMethodNone, offered)
	if rerr != nil {
		return nil, metadataErr(rerr, "invalid client metadata document: %s", rerr.Description)
	}
	// MCP requires client_name; it is what the consent page shows.
	if c.ClientName == "" {
		return nil, metadataErr(nil, "invalid client metadata document: client_name is required")
	}
	if present(fields, "jwks") && present(fields, "jwks_uri") {
		return nil, metadataErr(nil, "invalid client metadata document: jwks and jwks_uri must not both be present")
	}
	if c.TokenEndpointAuthMethod == AuthMethodPrivateKeyJWT {
		uri, ok := stringMember(fields, "jwks_uri")
		switch {
		case !ok:
			return nil, metadataErr(nil, "invalid client metadata document: jwks_uri must be a string")
		case uri != "":
			if !isHTTPSURL(uri) {
				return nil, metadataErr(nil, "invalid client metadata document: jwks_uri must be an https URL")
			}
			c.JWKSURI = uri
		case present(fields, "jwks"):
			if _, err := parseJWKS(fields["jwks"]); err != nil {
				return nil, metadataErr(err, "invalid client metadata document: %s", err.Error())
			}
			var buf bytes.Buffer
			if err := json.Compact(&buf, fields["jwks"]); err != nil {
				return nil, metadataErr(err, "invalid client metadata document: jwks is malformed")
			}
			c.JWKS = buf.Bytes()
		default:
			return nil, metadataErr(nil, "invalid client metadata document: private_key_jwt requires jwks_uri or jwks")
		}
	}
	c.ClientID = clientID
	c.Metadata = true
	return c, nil
}

// dropUnofferedGrants removes from a document's grant_types those this
// server does not offer. One document serves every server the client
// talks to, so it lists what the client can do anywhere (VS Code's lists
// device_code), and its owner cannot answer a refusal from us by changing
// it, as a registering client can. offered are the grant types offered
// besides authorization_code and refresh_token.
func dropUnofferedGrants(fields map[string]json.RawMessage, offered []string) {
	list, ok := stringArray(fields, "grant_types")
	if !ok || list == nil {
		return // parseMetadata reports the type error or applies the default
	}
	kept := slices.DeleteFunc(list, func(g string) bool {
		return g != GrantAuthorizationCode && g != GrantRefreshToken && !slices.Contains(offered, g)
	})
	fields["grant_types"], _ = json.Marshal(kept)
}

// privateMembers are the JWK members (RFC 7518 section 6) that only private
// or symmetric keys have.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// parseJWKS parses a client's JWK Set, which must hold between one and
// maxJWKSKeys asymmetric public keys. A set with a private or symmetric key
// is refused outright: it was published by mistake, and the client's key
// is compromised.
func parseJWKS(raw []byte) (jwk.Set, error) {
	var shape struct {
		Keys []map[string]json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &shape); err != nil {
		return nil, metadataErr(err, "JWK Set is malformed")
	}
	switch {
	case len(shape.Keys) == 0:
		return nil, metadataErr(nil, "JWK Set has no keys")
	case len(shape.Keys) > maxJWKSKeys:
		return nil, metadataErr(nil, "JWK Set has too many keys (at most %d)", maxJWKSKeys)
	}
	for _, k := range shape.Keys {
		for _, m := range privateMembers {
			if _, ok := k[m]; ok {
				return nil, metadataErr(nil, "JWK Set must contain public keys only")
			}
		}
	}
	set, err := jwk.Parse(raw)
	if err != nil {
		return nil, metadataErr(err, "JWK Set is malformed")
	}
	for i := range set.Len() {
		key, _ := set.Key(i)
		if private, err := jwk.IsPrivateKey(key); err != nil || private {
			return nil, metadataErr(err, "JWK Set must contain public keys only")
		}
	}
	return set, nil
}
