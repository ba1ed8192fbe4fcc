package authserver

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// authenticatedClient is a client together with how it proved itself in
// this request.
type authenticatedClient struct {
	*clients.Client
	// Method is the token_endpoint_auth_method the client used: the one
	// it registered, or none for a metadata-document client that sent no
	// assertion and is named in AssertionOptional.
	Method string
}

// provedCredential reports whether the client proved a secret or a key,
// rather than only naming itself.
func (c *authenticatedClient) provedCredential() bool { return authStrength(c.Method) > 0 }

// authStrength ranks client authentication methods: a grant born with one
// may only be used again with one of at least the same rank. The two
// secret methods rank alike; unknown and empty methods (grants stored
// before the method was recorded) rank lowest.
func authStrength(method string) int {
	switch method {
	case clients.AuthMethodPrivateKeyJWT:
		return 2
	case clients.AuthMethodClientSecretBasic, clients.AuthMethodClientSecretPost:
		return 1
	}
	return 0
}

// presentedCredentials is what a request offers to authenticate a client.
type presentedCredentials struct {
	// method is the token_endpoint_auth_method the request uses.
	method   string
	clientID string
	secret   string
	// assertion is a client_assertion of type clients.ClientAssertionType.
	assertion string
}

// readCredentials reads the client credentials of a request, refusing a
// request that uses more than one method (OAuth 2.1 section 2.4) or whose
// credentials are malformed.
func readCredentials(r *http.Request, params map[string]string) (*presentedCredentials, *oauth.Error) {
	_, hasSecret := params["client_secret"]
	_, hasAssertion := params["client_assertion"]
	_, hasAssertionType := params["client_assertion_type"]
	header, hasHeader := r.Header["Authorization"]
	used := 0
	for _, present := range []bool{hasSecret, hasAssertion || hasAssertionType, hasHeader} {
		if present {
			used++
		}
	}
	if used > 1 {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "use exactly one client authentication method")
	}
	creds := &presentedCredentials{method: clients.AuthMethodNone, clientID: params["client_id"]}
	switch {
	case hasHeader:
		if len(header) != 1 {
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "the Authorization header is repeated")
		}
		id, secret, ok := basicCredentials(header[0])
		if !ok {
			return nil, oauth.NewError(http.StatusUnauthorized, oauth.InvalidClient, "client authentication failed")
		}
		if creds.clientID != "" && creds.clientID != id {
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "client_id differs from the authenticated client")
		}
		creds.clientID = id
		// Basic with an empty password names a client and proves nothing,
		// which is how some libraries present public clients.
		if secret != "" {
			creds.method, creds.secret = clients.AuthMethodClientSecretBasic, secret
		}
	case hasSecret:
		creds.method, creds.secret = clients.AuthMethodClientSecretPost, params["client_secret"]
	case hasAssertion || hasAssertionType:
		if params["client_assertion_type"] != clients.ClientAssertionType || params["client_assertion"] == "" {
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "client_assertion_type must be "+clients.ClientAssertionType)
		}
		creds.method, creds.assertion = clients.AuthMethodPrivateKeyJWT, params["client_assertion"]
		if creds.clientID == "" {
			// RFC 7521 section 4.2: client_id may be left out; the
			// assertion names the client, and verifying it checks that.
			creds.clientID = clients.AssertionSubject(creds.assertion)
		}
	}
	if creds.clientID == "" {
		return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidRequest, "client_id is required")
	}
	return creds, nil
}

// clientAuthenticator authenticates the clients of the token, revocation
// and introspection endpoints.
type clientAuthenticator struct {
	issuer    string
	directory *clientDirectory
	// assertionOptional is Config.AssertionOptional.
	assertionOptional []string
	// secretFailures throttles failed secrets per client and source.
	secretFailures *RateLimiter
	sources        sources
	// keys fetches the keys of private_key_jwt clients (Config.Keys).
	// usedAssertions remembers spent assertions.
	keys           *clients.Fetcher
	usedAssertions clients.UsedAssertions
	log            *events
}

// authenticate identifies the client of a request to /token,
// /revoke or /introspect and checks that it authenticated with the method
// it registered (RFC 7591 section 2): a client registered for
// client_secret_basic may not send its secret in the body, nor the
// reverse, and a private_key_jwt client must send a verified assertion.
// The one exception is explicit: a metadata-document client named in
// AssertionOptional may leave out its assertion and is then treated as a
// public client (method none). endpoint is the URL the request was sent
// to, which client assertions may name as their audience.
func (a *clientAuthenticator) authenticate(r *http.Request, params map[string]string, endpoint string) (*authenticatedClient, *oauth.Error) {
	invalidClient := oauth.NewError(http.StatusUnauthorized, oauth.InvalidClient, "client authentication failed")
	creds, oerr := readCredentials(r, params)
	if oerr != nil {
		return nil, oerr
	}
	client, err := a.directory.lookup(r.Context(), creds.clientID)
	var document *clients.MetadataError
	switch {
	case errors.Is(err, errClientUnreadable):
		return nil, oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the client could not be looked up").
			WithCause(err)
	case errors.As(err, &document) && document.RetryAfter > 0:
		// As when the store fails: no fault of the client's, and it
		// passes. The description says what to fix if it does not.
		return nil, &oauth.Error{Status: http.StatusServiceUnavailable, Code: oauth.TemporarilyUnavailable,
			Description: document.Description, RetryAfter: document.RetryAfter}
	case errors.As(err, &document):
		// invalid_client, the one code RFC 6749 section 5.2 has for a
		// client that cannot be identified, but saying why, so that the
		// client's developers do not look for a registration problem.
		return nil, oauth.NewError(http.StatusUnauthorized, oauth.InvalidClient, document.Description)
	case err != nil:
		return nil, invalidClient
	}
	registered := client.TokenEndpointAuthMethod
	if client.Configured && authStrength(creds.method) == 1 && authStrength(registered) == 1 {
		// A configured client's secret may come either way: the MCP
		// client credentials extension sends it in the body, and the
		// metadata it reads names client_secret_basic.
		registered = creds.method
	}
	if creds.method != registered {
		if registered == clients.AuthMethodPrivateKeyJWT && creds.method == clients.AuthMethodNone && a.mayOmitAssertion(client) {
			a.log.debug("client sent no assertion; accepted as a public client", zap.String("client_id", client.ClientID))
			return &authenticatedClient{Client: client, Method: clients.AuthMethodNone}, nil
		}
		a.log.debug("client used another authentication method than it registered", zap.String("client_id", client.ClientID),
			zap.String("registered", registered), zap.String("used", creds.method))
		return nil, invalidClient
	}
	switch registered {
	case clients.AuthMethodNone:
	case clients.AuthMethodClientSecretBasic, clients.AuthMethodClientSecretPost:
		if oerr := a.checkSecret(r, client, creds.secret); oerr != nil {
			return nil, oerr
		}
	case clients.AuthMethodPrivateKeyJWT:
		if oerr := a.checkAssertion(r, client, creds.assertion, endpoint); oerr != nil {
			return nil, oerr
		}
	default:
		return nil, invalidClient
	}
	return &authenticatedClient{Client: client, Method: registered}, nil
}

// checkSecret checks a client secret. Failures are throttled per client
// and source (OAuth 2.1 section 2.4.1, sources as registrations count
// them): a guesser is stopped, and guessing from one source never locks
// the client out at another.
func (a *clientAuthenticator) checkSecret(r *http.Request, client *clients.Client, secret string) *oauth.Error {
	invalidClient := oauth.NewError(http.StatusUnauthorized, oauth.InvalidClient, "client authentication failed")
	limit, key := a.secretFailures, client.ClientID+"\x00"+a.sources.of(r)
	if limit != nil {
		if wait := limit.Wait(key); wait > 0 {
			return &oauth.Error{Status: http.StatusTooManyRequests, Code: oauth.InvalidClient, Description: "too many failed authentications; try again later", RetryAfter: wait}
		}
	}
	if client.SecretHash == "" || !client.CheckSecret(secret) {
		if limit != nil {
			limit.Allow(key)
		}
		return invalidClient
	}
	if client.SecretExpired(time.Now()) {
		return invalidClient
	}
	return nil
}

// checkAssertion verifies a private_key_jwt client assertion (RFC 7523).
func (a *clientAuthenticator) checkAssertion(r *http.Request, client *clients.Client, assertion, endpoint string) *oauth.Error {
	if a.keys == nil {
		return oauth.NewError(http.StatusUnauthorized, oauth.InvalidClient, "client authentication failed")
	}
	err := clients.VerifyAssertion(r.Context(), assertion, client, a.assertionAudiences(endpoint), a.keys.Keys(client), a.usedAssertions, time.Now())
	var aerr *clients.AssertionError
	switch {
	case errors.As(err, &aerr):
		a.log.debug("client assertion refused", zap.String("client_id", client.ClientID), zap.String("reason", aerr.Reason))
		return oauth.NewError(http.StatusUnauthorized, oauth.InvalidClient, "client authentication failed")
	case err != nil:
		return oauth.NewError(http.StatusServiceUnavailable, oauth.TemporarilyUnavailable, "the client assertion could not be checked").
			WithCause(fmt.Errorf("verifying client assertion: %w", err))
	}
	return nil
}

// assertionAudiences are the aud values a client assertion may carry at
// endpoint: RFC 7523 section 3 names the token endpoint, RFC
// 7523 and libraries also use the issuer, and some the URL they post to
// (/revoke, /introspect). Each must match exactly as the metadata
// advertises it, so an assertion made for another server never works
// here; its jti is spent at whichever endpoint takes it first.
func (a *clientAuthenticator) assertionAudiences(endpoint string) []string {
	audiences := []string{a.issuer, a.issuer + pathToken}
	if endpoint == a.issuer+pathRevoke || endpoint == a.issuer+pathIntrospect {
		audiences = append(audiences, endpoint)
	}
	return audiences
}

// mayOmitAssertion reports whether client, a metadata-document client
// registered for private_key_jwt, may leave out its assertion: its
// client_id, or the host of its client_id, is in AssertionOptional.
func (a *clientAuthenticator) mayOmitAssertion(client *clients.Client) bool {
	if !client.Metadata || len(a.assertionOptional) == 0 {
		return false
	}
	u, err := url.Parse(client.ClientID)
	if err != nil {
		return false
	}
	for _, entry := range a.assertionOptional {
		if entry == client.ClientID || strings.EqualFold(entry, u.Host) {
			return true
		}
	}
	return false
}

// challenge is oerr, a failed client authentication, as sent to r: a
// client that tried HTTP Basic gets a Basic challenge (RFC 6749 section 5.2).
func (a *clientAuthenticator) challenge(r *http.Request, oerr *oauth.Error) *oauth.Error {
	if oerr.Status == http.StatusUnauthorized && r.Header.Get("Authorization") != "" {
		return oerr.WithChallenge(oauth.BasicChallenge(a.issuer))
	}
	return oerr
}

// basicCredentials decodes HTTP Basic client credentials, which OAuth
// form-urlencodes before base64 (RFC 6749 section 2.3.1).
func basicCredentials(header string) (id, secret string, ok bool) {
	scheme, encoded, found := strings.Cut(header, " ")
	if !found || !strings.EqualFold(scheme, "Basic") {
		return "", "", false
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", "", false
	}
	rawID, rawSecret, found := strings.Cut(string(raw), ":")
	if !found {
		return "", "", false
	}
	id, err1 := url.QueryUnescape(rawID)
	secret, err2 := url.QueryUnescape(rawSecret)
	if err1 != nil || err2 != nil || id == "" {
		return "", "", false
	}
	return id, secret, true
}
