package clients

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// Limits on registration requests. They are generous for every real MCP
// client (Cursor sends 3 redirect URIs, VS Code 4) and keep a stored record,
// and the consent page that shows it, small.
const (
	// MaxRegistrationBytes is the largest registration body accepted. The
	// HTTP handler should cap the body at this size too.
	MaxRegistrationBytes = 64 << 10
	// MaxClientRecordBytes bounds the stored record of a registered
	// client, whatever mix of members fills it: anyone may register, so
	// this and the registration rate limits bound what strangers store.
	MaxClientRecordBytes = 8 << 10
	maxRedirectURIs      = 20
	// maxRedirectURIBytes bounds all redirect URIs together.
	maxRedirectURIBytes  = 4 << 10
	maxNameLength        = 200 // characters, for client_name and software_*
	maxScopeLength       = 2000
	maxMetadataURILength = 2000
)

// badMetadata and badRedirect are the registration failures of RFC 7591
// section 3.2.2. Their descriptions are sent to the client, so they never
// echo submitted values.
func badMetadata(format string, args ...any) *oauth.Error {
	return oauth.NewError(http.StatusBadRequest, oauth.InvalidClientMetadata, fmt.Sprintf(format, args...))
}

func badRedirect(format string, args ...any) *oauth.Error {
	return oauth.NewError(http.StatusBadRequest, oauth.InvalidRedirectURI, fmt.Sprintf(format, args...))
}

// dcrAuthMethods are the token endpoint auth methods a dynamically
// registered client may choose. private_key_jwt is reserved for metadata
// document clients, whose keys are published at a URL they control.
var dcrAuthMethods = []string{AuthMethodNone, AuthMethodClientSecretBasic, AuthMethodClientSecretPost}

// NewRegistration validates an RFC 7591 registration request body and
// returns the client to store and, for a confidential client, its secret in
// clear; it is shown to the client once and only its hash is kept.
//
// Unknown members are ignored (RFC 7591 section 2). When
// token_endpoint_auth_method is omitted the RFC default client_secret_basic
// applies, so the client gets a secret: the MCP clients that want to be
// public (Claude Code, VS Code, Cursor, the Inspector, mcp-remote) all send
// "none" explicitly, and the ones that omit it (ChatGPT) authenticate with
// Basic. Secrets expire after secretLifetime, or never if it is zero.
// offered are the grant types the server offers besides the
// authorization code and refresh token grants (the jwt-bearer grant, with
// enterprise identity providers configured); clients may register them
// too.
//
// Errors are *oauth.Error, ready to send.
func NewRegistration(body []byte, now time.Time, secretLifetime time.Duration, offered ...string) (client *Client, secret string, err error) {
	if len(body) > MaxRegistrationBytes {
		return nil, "", badMetadata("registration request is too large")
	}
	fields, rerr := parseObject(body)
	if rerr != nil {
		return nil, "", rerr
	}
	c, rerr := parseMetadata(fields, dcrAuthMethods, AuthMethodClientSecretBasic, offered)
	if rerr != nil {
		return nil, "", rerr
	}
	// RFC 7591 section 2: "jwks_uri and jwks parameters MUST NOT both be
	// present". Neither is used for the methods allowed here.
	if present(fields, "jwks") && present(fields, "jwks_uri") {
		return nil, "", badMetadata("jwks and jwks_uri must not both be present")
	}
	c.ClientID = randomString(registeredIDBytes)
	c.IssuedAt = now.Unix()
	if !c.IsPublic() {
		secret = randomString(32)
		c.SecretHash = HashSecret(secret)
		if secretLifetime > 0 {
			c.SecretExpiresAt = now.Add(secretLifetime).Unix()
		}
	}
	if record, err := json.Marshal(c); err != nil || len(record) > MaxClientRecordBytes {
		return nil, "", badMetadata("client metadata is too large (at most %d bytes stored)", MaxClientRecordBytes)
	}
	return c, secret, nil
}

// ClientInformation is the RFC 7591 section 3.2.1 client information
// response: every registered metadata value, including the defaults the
// server applied, plus the credentials issued. Marshal it as the body of the
// 201 response, sent with Cache-Control: no-store.
type ClientInformation struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret,omitempty"`
	// ClientIDIssuedAt is a Unix time.
	ClientIDIssuedAt int64 `json:"client_id_issued_at"`
	// ClientSecretExpiresAt is REQUIRED when a secret is issued, 0 meaning
	// never, and absent otherwise, hence the pointer.
	ClientSecretExpiresAt   *int64   `json:"client_secret_expires_at,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	ApplicationType         string   `json:"application_type"`
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri,omitempty"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	TOSURI                  string   `json:"tos_uri,omitempty"`
	PolicyURI               string   `json:"policy_uri,omitempty"`
	Scope                   string   `json:"scope,omitempty"`
	SoftwareID              string   `json:"software_id,omitempty"`
	SoftwareVersion         string   `json:"software_version,omitempty"`
}

// RegistrationResponse returns the client information response for a
// newly registered client. Pass the secret NewRegistration returned ("" for
// a public client): it is shown this once, and only its hash is stored.
func RegistrationResponse(c *Client, secret string) *ClientInformation {
	r := &ClientInformation{
		ClientID:                c.ClientID,
		ClientSecret:            secret,
		ClientIDIssuedAt:        c.IssuedAt,
		RedirectURIs:            c.RedirectURIs,
		GrantTypes:              c.GrantTypes,
		ResponseTypes:           c.ResponseTypes,
		TokenEndpointAuthMethod: c.TokenEndpointAuthMethod,
		ApplicationType:         c.ApplicationType,
		ClientName:              c.ClientName,
		ClientURI:               c.ClientURI,
		LogoURI:                 c.LogoURI,
		TOSURI:                  c.TOSURI,
		PolicyURI:               c.PolicyURI,
		Scope:                   c.Scope,
		SoftwareID:              c.SoftwareID,
		SoftwareVersion:         c.SoftwareVersion,
	}
	if secret != "" {
		exp := c.SecretExpiresAt
		r.ClientSecretExpiresAt = &exp
	}
	return r
}

// HashSecret returns the hex SHA-256 of a client secret. A fast hash is
// right here: secrets are 256 random bits, so there is nothing to
// brute-force, and a slow hash would only hand attackers a CPU amplifier.
func HashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// CheckSecret reports whether secret is the client's secret, in constant
// time. It does not check expiry; see SecretExpired.
func (c *Client) CheckSecret(secret string) bool {
	if c.SecretHash == "" || secret == "" {
		return false
	}
	got := HashSecret(secret)
	return subtle.ConstantTimeCompare([]byte(got), []byte(c.SecretHash)) == 1
}

// randomString returns n random bytes, base64url-encoded without padding.
func randomString(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return base64.RawURLEncoding.EncodeToString(b)
}

// parseObject decodes body as a JSON object into its members, unparsed.
func parseObject(body []byte) (map[string]json.RawMessage, *oauth.Error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, badMetadata("client metadata must be a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, badMetadata("client metadata is not valid JSON")
	}
	return fields, nil
}

// present reports whether the member name is present and not null.
func present(fields map[string]json.RawMessage, name string) bool {
	raw, ok := fields[name]
	return ok && string(raw) != "null"
}

// parseMetadata validates the client metadata shared by registration
// requests and metadata documents (RFC 7591 section 2) and returns a client
// with everything but its identity and credentials filled in. methods are
// the allowed token_endpoint_auth_method values, defaultMethod applies when
// the member is omitted; offered are grant types allowed besides
// authorization_code and refresh_token.
func parseMetadata(fields map[string]json.RawMessage, methods []string, defaultMethod string, offered []string) (*Client, *oauth.Error) {
	c := new(Client)
	var rerr *oauth.Error

	uris, ok := stringArray(fields, "redirect_uris")
	switch {
	case !ok:
		return nil, badRedirect("redirect_uris must be an array of strings")
	case len(uris) == 0:
		// Every client here uses the authorization code grant, which
		// needs a registered redirect URI (OAuth 2.1 section 2.3.1).
		return nil, badRedirect("redirect_uris is required")
	case len(uris) > maxRedirectURIs:
		return nil, badRedirect("too many redirect_uris (at most %d)", maxRedirectURIs)
	}
	total := 0
	for i, u := range uris {
		if err := ValidateRedirectURI(u); err != nil {
			return nil, badRedirect("redirect_uris[%d]: %v", i, err)
		}
		if total += len(u); total > maxRedirectURIBytes {
			return nil, badRedirect("redirect_uris are too long together (at most %d bytes)", maxRedirectURIBytes)
		}
	}
	c.RedirectURIs = dedupe(uris)
	if c.ApplicationType, rerr = applicationType(fields, c.RedirectURIs); rerr != nil {
		return nil, rerr
	}

	if c.GrantTypes, rerr = grantTypes(fields, offered); rerr != nil {
		return nil, rerr
	}
	if c.ResponseTypes, rerr = responseTypes(fields); rerr != nil {
		return nil, rerr
	}
	// RFC 7591 section 2.1: authorization_code needs response type "code"
	// and the reverse. Both lists are subsets of what we support, so the
	// only inconsistent registrations are those lacking one of the pair.
	if !slices.Contains(c.GrantTypes, GrantAuthorizationCode) || !slices.Contains(c.ResponseTypes, ResponseTypeCode) {
		return nil, badMetadata("grant_types must include authorization_code and response_types must include code")
	}

	method, ok := stringMember(fields, "token_endpoint_auth_method")
	switch {
	case !ok:
		return nil, badMetadata("token_endpoint_auth_method must be a string")
	case method == "":
		method = defaultMethod
	case !slices.Contains(methods, method):
		return nil, badMetadata("token_endpoint_auth_method must be one of %s", strings.Join(methods, ", "))
	}
	c.TokenEndpointAuthMethod = method

	if c.ClientName, rerr = displayString(fields, "client_name"); rerr != nil {
		return nil, rerr
	}
	if c.SoftwareID, rerr = displayString(fields, "software_id"); rerr != nil {
		return nil, rerr
	}
	if c.SoftwareVersion, rerr = displayString(fields, "software_version"); rerr != nil {
		return nil, rerr
	}
	for _, m := range []struct {
		name string
		dst  *string
	}{
		{"client_uri", &c.ClientURI},
		{"logo_uri", &c.LogoURI},
		{"tos_uri", &c.TOSURI},
		{"policy_uri", &c.PolicyURI},
	} {
		if *m.dst, rerr = displayURI(fields, m.name); rerr != nil {
			return nil, rerr
		}
	}
	if c.Scope, rerr = scope(fields); rerr != nil {
		return nil, rerr
	}
	return c, nil
}

// applicationType returns the registered application type, checked
// against the redirect URIs (MCP SEP-837, OpenID Connect Registration
// section 2). "web" clients run on a remote host, so their redirect URIs
// must be https: a loopback or private-use redirect would hand the code to
// whatever runs on the user's machine. "native" clients may use loopback
// http, private-use schemes and, as RFC 8252 section 7.2 allows, claimed
// https URIs (Cursor registers all three kinds at once). Omitted means
// "web", but the redirect URIs are then held only to the general rules:
// the MCP clients that leave it out (Claude Code, VS Code, Cursor, the
// Inspector, mcp-remote) register loopback and private-use redirects.
func applicationType(fields map[string]json.RawMessage, redirectURIs []string) (string, *oauth.Error) {
	t, ok := stringMember(fields, "application_type")
	switch {
	case !ok:
		return "", badMetadata("application_type must be a string")
	case t == "":
		return ApplicationWeb, nil
	case t == ApplicationNative:
		return t, nil
	case t != ApplicationWeb:
		return "", badMetadata("application_type must be web or native")
	}
	for i, u := range redirectURIs {
		if !strings.HasPrefix(u, "https://") {
			return "", badRedirect("redirect_uris[%d]: a web application's redirect URI must be https; register loopback and private-use redirect URIs with application_type native", i)
		}
	}
	return t, nil
}

// grantTypes returns the registered grant types, defaulting to
// authorization_code (RFC 7591 section 2); offered are allowed besides
// authorization_code and refresh_token.
func grantTypes(fields map[string]json.RawMessage, offered []string) ([]string, *oauth.Error) {
	list, ok := stringArray(fields, "grant_types")
	if !ok {
		return nil, badMetadata("grant_types must be an array of strings")
	}
	if !present(fields, "grant_types") {
		return []string{GrantAuthorizationCode}, nil
	}
	var out []string
	for _, g := range list {
		switch {
		case g == GrantAuthorizationCode, g == GrantRefreshToken, slices.Contains(offered, g):
			out = append(out, g)
		case g == "urn:ietf:params:oauth:grant-type:device_code":
			// VS Code registers the device grant next to the code grant
			// when the server's metadata does not list grant_types. RFC
			// 7591 section 2 lets the server drop what it will not honour,
			// and the response shows the client what was registered.
		default:
			// implicit and password are gone in OAuth 2.1;
			// client_credentials has no user for an MCP server to act for.
			return nil, badMetadata("grant_types may only contain %s", strings.Join(append([]string{GrantAuthorizationCode, GrantRefreshToken}, offered...), ", "))
		}
	}
	return dedupe(out), nil
}

// responseTypes returns the registered response types, defaulting to code.
func responseTypes(fields map[string]json.RawMessage) ([]string, *oauth.Error) {
	list, ok := stringArray(fields, "response_types")
	if !ok {
		return nil, badMetadata("response_types must be an array of strings")
	}
	if !present(fields, "response_types") {
		return []string{ResponseTypeCode}, nil
	}
	for _, r := range list {
		if r != ResponseTypeCode {
			return nil, badMetadata("response_types may only contain code")
		}
	}
	return dedupe(list), nil
}

// scope validates the scope member: space-delimited scope tokens of the
// RFC 6749 section 3.3 character set. Runs of whitespace are collapsed, as
// clients have been seen sending a leading space.
func scope(fields map[string]json.RawMessage) (string, *oauth.Error) {
	s, ok := stringMember(fields, "scope")
	switch {
	case !ok:
		return "", badMetadata("scope must be a string")
	case len(s) > maxScopeLength:
		return "", badMetadata("scope is too long")
	}
	tokens := strings.Fields(s)
	for _, t := range tokens {
		for i := 0; i < len(t); i++ {
			// scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
			if c := t[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
				return "", badMetadata("scope contains characters not allowed in a scope")
			}
		}
	}
	return strings.Join(dedupe(tokens), " "), nil
}

// displayString returns an optional human-readable member, checking that it
// can be shown on a consent page without misleading the user.
func displayString(fields map[string]json.RawMessage, name string) (string, *oauth.Error) {
	s, ok := stringMember(fields, name)
	switch {
	case !ok:
		return "", badMetadata("%s must be a string", name)
	case utf8.RuneCountInString(s) > maxNameLength:
		return "", badMetadata("%s is too long (at most %d characters)", name, maxNameLength)
	}
	for _, r := range s {
		// Control characters and bidi overrides can make a name render as
		// something else ("moc.elgoog" shown reversed) on a consent page.
		if unicode.IsControl(r) || (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069) || r == utf8.RuneError {
			return "", badMetadata("%s contains control characters", name)
		}
	}
	return strings.TrimSpace(s), nil
}

// displayURI returns an optional informational URI (client_uri, logo_uri,
// tos_uri, policy_uri). A value that is not an https URL is dropped rather
// than failing the registration: these are only ever displayed, and RFC 7591
// section 2 lets the server drop metadata it will not use. Dropped values
// are absent from the registration response, so the client can tell.
func displayURI(fields map[string]json.RawMessage, name string) (string, *oauth.Error) {
	s, ok := stringMember(fields, name)
	if !ok {
		return "", badMetadata("%s must be a string", name)
	}
	if s == "" || !isHTTPSURL(s) {
		return "", nil
	}
	return s, nil
}

// isHTTPSURL reports whether s is an https URL with a host, without user
// information, of reasonable length and made of URI characters only.
func isHTTPSURL(s string) bool {
	if len(s) > maxMetadataURILength || !strings.HasPrefix(s, "https://") || !isURIChars(s) {
		return false
	}
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Hostname() != "" && u.User == nil
}

// stringMember returns the string member name; "" if it is absent or null.
// ok is false if it has another type.
func stringMember(fields map[string]json.RawMessage, name string) (string, bool) {
	if !present(fields, name) {
		return "", true
	}
	var s string
	if err := json.Unmarshal(fields[name], &s); err != nil {
		return "", false
	}
	return s, true
}

// stringArray returns the array-of-strings member name; nil if it is absent
// or null. ok is false if it has another type.
func stringArray(fields map[string]json.RawMessage, name string) ([]string, bool) {
	if !present(fields, name) {
		return nil, true
	}
	var list []string
	if err := json.Unmarshal(fields[name], &list); err != nil {
		return nil, false
	}
	if list == nil {
		list = []string{}
	}
	return list, true
}

// dedupe returns list without repeated values, keeping the first of each.
func dedupe(list []string) []string {
	out := make([]string, 0, len(list))
	for _, s := range list {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
