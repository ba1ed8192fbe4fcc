package mcpauth

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Tests of Enterprise-Managed Authorization (the MCP extension, SEP-990)
// through a real Caddy: clients exchange identity assertion grants
// (ID-JAG) of trusted enterprise identity providers at /token for access
// tokens (RFC 7523 section 2.1 with draft-ietf-oauth-identity-assertion-
// authz-grant), and use them at the MCP server behind the gate.

const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"

// idjagEnv is a site trusting two enterprise identity providers: acme,
// found by discovery, and partner, with its jwks_uri given. Users of acme
// are allowed by email domain, partner's one user by subject; only acme's
// admin gets mcp:admin.
type idjagEnv struct {
	*asEnv
	acme, partner *fakeidp.Enterprise
	// client is a confidential client registered for the jwt-bearer grant.
	client oauthtest.Client
}

func startIDJAG(t *testing.T) *idjagEnv {
	t.Helper()
	acme, partner := fakeidp.NewEnterprise(t), fakeidp.NewEnterprise(t)
	e := &idjagEnv{acme: acme, partner: partner}
	e.asEnv = usersAS(t, fmt.Sprintf(`enterprise_idp %s
		enterprise_idp %s {
			jwks_uri %s%s
		}
		allow users alice %s#partner-user
		allow emails *@acme.example
		grant_scope mcp:tools to everyone
		grant_scope mcp:admin to users %s#acme-admin`, acme.URL, partner.URL, partner.URL, fakeidp.EnterpriseKeysPath, partner.URL, acme.URL))
	e.client = e.RegisterClient(t, map[string]any{
		"client_name": "Enterprise agent", "redirect_uris": []string{clientRedirect},
		"grant_types": []string{"authorization_code", jwtBearer},
	})
	if e.client.Secret == "" {
		t.Fatal("the confidential client got no secret")
	}
	return e
}

// claims are acme's claims of a valid ID-JAG for sub at this site, issued
// to the test client.
func (e *idjagEnv) claims(idp *fakeidp.Enterprise, sub string) map[string]any {
	return idp.Claims(sub, siteAddr(), e.client.ID, canonicalResource())
}

// exchange posts assertion with the client's credentials.
func (e *idjagEnv) exchange(t *testing.T, c oauthtest.Client, assertion string, extra url.Values) (int, http.Header, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {jwtBearer}, "assertion": {assertion}}
	for k, v := range extra {
		form[k] = v
	}
	return e.Token(t, form, http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(c.ID, c.Secret)}})
}

// refused checks that assertion is refused with code, and that the answer
// is an RFC 6749 error response that is not cached.
func (e *idjagEnv) refused(t *testing.T, what, assertion string, extra url.Values, status int, code string) map[string]any {
	t.Helper()
	got, hdr, m := e.exchange(t, e.client, assertion, extra)
	if got != status || m["error"] != code {
		t.Errorf("%s: %d %v, want %d %s", what, got, m, status, code)
	}
	if hdr.Get("Cache-Control") != "no-store" {
		t.Errorf("%s: error without Cache-Control: no-store", what)
	}
	if m["access_token"] != nil {
		t.Errorf("%s: an error answer carries an access token", what)
	}
	return m
}

// bearerClient is an MCP client transport that sends token with every request.
func bearerClient(t *testing.T, token string) *mcp.StreamableClientTransport {
	c := mustTLSClient(t)
	c.Transport = profileHeaders{base: c.Transport, header: http.Header{"Authorization": {"Bearer " + token}}}
	return &mcp.StreamableClientTransport{Endpoint: canonicalResource(), HTTPClient: c}
}

// The happy path: an ID-JAG of a trusted provider for the authenticated
// client gives an access token for the ID-JAG's resource, with the scopes
// the ID-JAG grants and the rules give the user, and no refresh token; the
// backend sees the enterprise user through the identity placeholders.
func TestIDJAGExchange(t *testing.T) {
	e := startIDJAG(t)

	var meta map[string]any
	status, _, raw := oauthtest.Get(t, e.HTTP, siteAddr()+"/.well-known/oauth-authorization-server", nil)
	if status != http.StatusOK || json.Unmarshal(raw, &meta) != nil {
		t.Fatalf("metadata: %d %s", status, raw)
	}
	if !slices.Contains(anyStrings(meta["grant_types_supported"]), jwtBearer) {
		t.Errorf("grant_types_supported = %v, want the jwt-bearer grant", meta["grant_types_supported"])
	}
	if got := anyStrings(meta["authorization_grant_profiles_supported"]); !slices.Equal(got, []string{"urn:ietf:params:oauth:grant-profile:id-jag"}) {
		t.Errorf("authorization_grant_profiles_supported = %v, want the ID-JAG profile", got)
	}

	claims := e.claims(e.acme, "00u-carol")
	claims["email"], claims["email_verified"] = "carol@acme.example", true
	claims["scope"] = "mcp:tools mcp:admin"
	assertion := e.acme.Sign(claims)
	status, hdr, m := e.exchange(t, e.client, assertion, nil)
	if status != http.StatusOK {
		t.Fatalf("exchange: %d %v", status, m)
	}
	if hdr.Get("Cache-Control") != "no-store" || m["token_type"] != "Bearer" {
		t.Errorf("token response: Cache-Control %q, token_type %v", hdr.Get("Cache-Control"), m["token_type"])
	}
	// The draft: the server SHOULD NOT issue a refresh token; the client
	// gets a new ID-JAG, so the enterprise's policy stays in force.
	if m["refresh_token"] != nil {
		t.Errorf("a refresh token was issued: %v", m)
	}
	// carol may have mcp:tools; mcp:admin is the admin's only.
	if m["scope"] != "mcp:tools" {
		t.Errorf("scope = %v, want mcp:tools", m["scope"])
	}
	access := fmt.Sprint(m["access_token"])
	_, at := oauthtest.DecodeJWT(t, access)
	wantSub := e.acme.URL + "#00u-carol"
	if at["sub"] != wantSub || at["aud"] != canonicalResource() || at["client_id"] != e.client.ID || at["email"] != "carol@acme.example" {
		t.Errorf("access token claims %v: want sub %s, aud %s, client_id %s, email carol@acme.example", at, wantSub, canonicalResource(), e.client.ID)
	}

	id := whoami(t, bearerClient(t, access))
	if id.User != wantSub || id.Email != "carol@acme.example" || id.Client != e.client.ID || id.Scopes != "mcp:tools" || id.AuthorizationHeaderPresent {
		t.Errorf("the backend saw %+v, want the enterprise user %s", id, wantSub)
	}

	// The admin gets what the ID-JAG grants and the rules give.
	admin := e.claims(e.acme, "acme-admin")
	admin["email"], admin["email_verified"] = "admin@acme.example", true
	admin["scope"] = "mcp:tools mcp:admin"
	if status, _, m := e.exchange(t, e.client, e.acme.Sign(admin), nil); status != http.StatusOK || m["scope"] != "mcp:tools mcp:admin" {
		t.Errorf("admin exchange: %d %v, want mcp:tools mcp:admin", status, m)
	}
	// A request may ask for less than the ID-JAG grants.
	narrower := e.claims(e.acme, "acme-admin")
	narrower["email"], narrower["email_verified"] = "admin@acme.example", true
	narrower["scope"] = "mcp:tools mcp:admin"
	if status, _, m := e.exchange(t, e.client, e.acme.Sign(narrower), url.Values{"scope": {"mcp:tools"}}); status != http.StatusOK || m["scope"] != "mcp:tools" {
		t.Errorf("narrower request: %d %v, want mcp:tools", status, m)
	}
	// The partner's user, allowed by subject; its keys come from the
	// configured jwks_uri, an aud array holding the issuer is accepted,
	// and resource variants name the same resource (RFC 8707 matching).
	partner := e.claims(e.partner, "partner-user")
	partner["aud"] = []string{"https://other.example", siteAddr()}
	partner["resource"] = strings.Replace(canonicalResource(), "localhost", "LOCALHOST", 1) + "/"
	status, _, m = e.exchange(t, e.client, e.partner.Sign(partner), url.Values{"resource": {canonicalResource()}})
	if status != http.StatusOK {
		t.Fatalf("partner exchange: %d %v", status, m)
	}
	if _, at := oauthtest.DecodeJWT(t, fmt.Sprint(m["access_token"])); at["sub"] != e.partner.URL+"#partner-user" || at["aud"] != canonicalResource() || at["email"] != nil {
		t.Errorf("partner token claims %v", at)
	}

	// The operator revokes the enterprise user by subject: the token stops.
	if status, body := adminRequest(t, http.MethodDelete, "/mcp_auth/grants?sub="+url.QueryEscape(wantSub)); status != http.StatusOK {
		t.Fatalf("revoking %s: %d %s", wantSub, status, body)
	}
	if got := e.mcpStatus(t, access); got != http.StatusUnauthorized {
		t.Errorf("after revoking the user the token gets %d, want 401", got)
	}

	// Neither the assertion nor the token reaches a log.
	if found := logContains(t, e.logDir, assertion, access, e.client.Secret); len(found) > 0 {
		t.Errorf("secrets in the logs: %v", found)
	}
	if found := logContains(t, e.logDir, "identity assertion exchanged"); len(found) == 0 {
		t.Errorf("the exchange was not audit-logged")
	}
}

// Every rule of the grant, and the variants an attacker would try.
func TestIDJAGRefused(t *testing.T) {
	e := startIDJAG(t)
	stranger := fakeidp.NewEnterprise(t)
	good := func() map[string]any {
		c := e.claims(e.acme, "00u-dave")
		c["email"], c["email_verified"] = "dave@acme.example", true
		return c
	}
	with := func(edit func(map[string]any)) string {
		c := good()
		edit(c)
		return e.acme.Sign(c)
	}
	other := e.RegisterClient(t, map[string]any{
		"client_name": "Other agent", "redirect_uris": []string{clientRedirect},
		"grant_types": []string{"authorization_code", jwtBearer},
	})

	cases := []struct {
		name, assertion string
		extra           url.Values
		status          int
		code            string
		// why is in the description: the rule meant is the one that fired.
		why string
	}{
		{"no assertion", "", nil, 400, "invalid_request", "assertion is required"},
		{"not a JWT", "not-a-jwt", nil, 400, "invalid_grant", "not a signed JWT"},
		{"unknown identity provider", stranger.Sign(stranger.Claims("00u-dave", siteAddr(), e.client.ID, canonicalResource())), nil, 400, "invalid_grant", "not a trusted identity provider"},
		{"another provider's key (bad signature)", stranger.Sign(good()), nil, 400, "invalid_grant", "not signed by a key"},
		{"partner signs an ID-JAG naming acme as issuer", e.partner.Sign(good()), nil, 400, "invalid_grant", "not signed by a key"},
		{"issuer spelled with a trailing slash", with(func(c map[string]any) { c["iss"] = e.acme.URL + "/" }), nil, 400, "invalid_grant", "not a trusted identity provider"},
		{"wrong audience", with(func(c map[string]any) { c["aud"] = "https://other.example" }), nil, 400, "invalid_grant", "audience"},
		{"audience with a trailing slash", with(func(c map[string]any) { c["aud"] = siteAddr() + "/" }), nil, 400, "invalid_grant", "audience"},
		{"audience is the resource, not the issuer", with(func(c map[string]any) { c["aud"] = canonicalResource() + "x" }), nil, 400, "invalid_grant", "audience"},
		{"no audience", with(func(c map[string]any) { delete(c, "aud") }), nil, 400, "invalid_grant", "audience"},
		{"issued to another client", with(func(c map[string]any) { c["client_id"] = other.ID }), nil, 400, "invalid_grant", "another client"},
		{"no client_id claim", with(func(c map[string]any) { delete(c, "client_id") }), nil, 400, "invalid_grant", "another client"},
		{"client_id claim in another case", with(func(c map[string]any) { c["client_id"] = strings.ToUpper(e.client.ID) }), nil, 400, "invalid_grant", "another client"},
		{"Client_Id spelled in another case", with(func(c map[string]any) { delete(c, "client_id"); c["Client_Id"] = e.client.ID }), nil, 400, "invalid_grant", "another client"},
		{"resource not served here", with(func(c map[string]any) { c["resource"] = "https://other.example/mcp" }), nil, 400, "invalid_target", "not served"},
		{"resource on another port", with(func(c map[string]any) { c["resource"] = "https://localhost:1/mcp" }), nil, 400, "invalid_target", "not served"},
		{"request names another resource", e.acme.Sign(good()), url.Values{"resource": {"https://other.example/mcp"}}, 400, "invalid_target", "differs"},
		{"unknown scope", with(func(c map[string]any) { c["scope"] = "mcp:tools mcp:nope" }), nil, 400, "invalid_scope", "not offered"},
		{"request asks for more than the ID-JAG", with(func(c map[string]any) { c["scope"] = "mcp:tools" }), url.Values{"scope": {"mcp:tools mcp:admin"}}, 400, "invalid_scope", "exceeds"},
		{"only scopes the user may not have", with(func(c map[string]any) { c["scope"] = "mcp:admin" }), nil, 400, "invalid_scope", "none of the requested scopes"},
		{"alg none", unsigned(t, map[string]any{"alg": "none", "typ": fakeidp.IDJAGType}, good()), nil, 400, "invalid_grant", "algorithm"},
		{"alg HS256 with a public key", unsigned(t, map[string]any{"alg": "HS256", "typ": fakeidp.IDJAGType}, good()) + "c2ln", nil, 400, "invalid_grant", "algorithm"},
		{"typ JWT", e.acme.SignTyped("JWT", good()), nil, 400, "invalid_grant", "typ"},
		{"typ missing", e.acme.SignTyped("", good()), nil, 400, "invalid_grant", "typ"},
		{"typ in another case", e.acme.SignTyped("OAUTH-ID-JAG+JWT", good()), nil, 400, "invalid_grant", "typ"},
		{"typ an access token's", e.acme.SignTyped("at+jwt", good()), nil, 400, "invalid_grant", "typ"},
		{"expired", with(func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), nil, 400, "invalid_grant", "expired"},
		{"no exp", with(func(c map[string]any) { delete(c, "exp") }), nil, 400, "invalid_grant", "lacks exp"},
		{"exp a day ahead", with(func(c map[string]any) { c["exp"] = time.Now().Add(24 * time.Hour).Unix() }), nil, 400, "invalid_grant", "too far"},
		// A revocation is remembered for an hour: an ID-JAG issued before
		// one must not be taken once it is forgotten.
		{"living over an hour", with(func(c map[string]any) {
			c["iat"], c["exp"] = time.Now().Add(-50*time.Minute).Unix(), time.Now().Add(20*time.Minute).Unix()
		}), nil, 400, "invalid_grant", "longer than a revocation"},
		{"issued over an hour ago, expired within the skew", with(func(c map[string]any) {
			c["iat"], c["exp"] = time.Now().Add(-time.Hour-20*time.Second).Unix(), time.Now().Add(-20*time.Second).Unix()
		}), nil, 400, "invalid_grant", "longer than a revocation"},
		{"issued in the future", with(func(c map[string]any) { c["iat"] = time.Now().Add(time.Hour).Unix() }), nil, 400, "invalid_grant", "not valid yet"},
		{"no iat", with(func(c map[string]any) { delete(c, "iat") }), nil, 400, "invalid_grant", "lacks exp or iat"},
		{"no jti", with(func(c map[string]any) { delete(c, "jti") }), nil, 400, "invalid_grant", "no jti"},
		{"no sub", with(func(c map[string]any) { delete(c, "sub") }), nil, 400, "invalid_grant", "no sub"},
		{"user not allowed", with(func(c map[string]any) { c["email"] = "eve@evil.example" }), nil, 400, "invalid_grant", "not allowed"},
		{"unverified email", with(func(c map[string]any) { c["email_verified"] = false }), nil, 400, "invalid_grant", "not allowed"},
		{"email not said to be verified", with(func(c map[string]any) { delete(c, "email_verified") }), nil, 400, "invalid_grant", "not allowed"},
		{"email_verified a string", with(func(c map[string]any) { c["email_verified"] = "true" }), nil, 400, "invalid_grant", "malformed"},
		{"email with a display name", with(func(c map[string]any) { c["email"] = "Eve <dave@acme.example>" }), nil, 400, "invalid_grant", "not allowed"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := e.refused(t, tc.name, tc.assertion, tc.extra, tc.status, tc.code)
			if !strings.Contains(fmt.Sprint(m["error_description"]), tc.why) {
				t.Errorf("error_description %q does not say %q", m["error_description"], tc.why)
			}
		})
	}

	// Okta has been seen leaving out resource, which the MCP profile
	// requires: refused as invalid_grant, saying so.
	m := e.refused(t, "no resource", with(func(c map[string]any) { delete(c, "resource") }), nil, 400, "invalid_grant")
	if !strings.Contains(fmt.Sprint(m["error_description"]), "resource") {
		t.Errorf("missing resource: the description %q does not name it", m["error_description"])
	}

	// Single use: the second presentation is refused, by the same client
	// or another.
	once := good()
	assertion := e.acme.Sign(once)
	if status, _, m := e.exchange(t, e.client, assertion, nil); status != http.StatusOK {
		t.Fatalf("first use: %d %v", status, m)
	}
	e.refused(t, "replay", assertion, nil, 400, "invalid_grant")
	// A re-signed copy with the same jti is the same grant.
	e.refused(t, "same jti signed again", e.acme.Sign(once), nil, 400, "invalid_grant")

	// Of concurrent presentations of one ID-JAG, exactly one gets a token.
	raced := e.acme.Sign(good())
	statuses := make(chan int, 8)
	for range 8 {
		go func() {
			status, _, _ := e.exchange(t, e.client, raced, nil)
			statuses <- status
		}()
	}
	issued := 0
	for range 8 {
		if <-statuses == http.StatusOK {
			issued++
		}
	}
	if issued != 1 {
		t.Errorf("one ID-JAG presented 8 times at once gave %d tokens, want 1", issued)
	}

	// A client must authenticate as it registered, and have registered
	// the grant; a public client may not use it at all.
	if status, _, m := e.exchange(t, oauthtest.Client{ID: e.client.ID, Secret: "wrong"}, e.acme.Sign(good()), nil); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v, want 401 invalid_client", status, m)
	}
	codeOnly := e.RegisterClient(t, map[string]any{"client_name": "code only", "redirect_uris": []string{clientRedirect}})
	claims := good()
	claims["client_id"] = codeOnly.ID
	if status, _, m := e.exchange(t, codeOnly, e.acme.Sign(claims), nil); status != http.StatusBadRequest || m["error"] != "unauthorized_client" {
		t.Errorf("client without the grant: %d %v, want 400 unauthorized_client", status, m)
	}
	public := e.RegisterClient(t, map[string]any{
		"client_name": "public", "redirect_uris": []string{clientRedirect},
		"grant_types": []string{"authorization_code", jwtBearer}, "token_endpoint_auth_method": "none",
	})
	claims = good()
	claims["client_id"] = public.ID
	form := url.Values{"grant_type": {jwtBearer}, "assertion": {e.acme.Sign(claims)}, "client_id": {public.ID}}
	if status, _, m := e.Token(t, form, nil); status != http.StatusBadRequest || m["error"] != "unauthorized_client" {
		t.Errorf("public client: %d %v, want 400 unauthorized_client", status, m)
	}
}

// A provider that rotates its key: the next ID-JAG names a kid not yet
// known, and the keys are fetched again once the key set may be fetched
// again (every 10 s at most); until then the ID-JAG is refused without
// being spent, so the client may send it again.
func TestIDJAGKeyRotation(t *testing.T) {
	e := startIDJAG(t)
	first := e.claims(e.acme, "00u-erin")
	first["email"], first["email_verified"] = "erin@acme.example", true
	if status, _, m := e.exchange(t, e.client, e.acme.Sign(first), nil); status != http.StatusOK {
		t.Fatalf("before rotation: %d %v", status, m)
	}
	fetched := e.acme.KeyRequests()
	e.acme.RotateKey()
	next := e.claims(e.acme, "00u-erin")
	next["email"], next["email_verified"] = "erin@acme.example", true
	rotated := e.acme.Sign(next)
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(time.Second) {
		status, _, m := e.exchange(t, e.client, rotated, nil)
		if status == http.StatusOK {
			break
		}
		if status != http.StatusBadRequest || m["error"] != "invalid_grant" || time.Now().After(deadline) {
			t.Fatalf("after rotation: %d %v", status, m)
		}
	}
	if e.acme.KeyRequests() <= fetched {
		t.Errorf("the new key was not fetched: %d key requests before, %d after", fetched, e.acme.KeyRequests())
	}
}

// Revoking an enterprise user takes back what its ID-JAGs issued before
// the revocation, as it does an authorization code: an ID-JAG the client
// already held (the provider may already have disabled the user) gets no
// token afterwards, while one the provider issues later still does.
func TestIDJAGIssuedBeforeRevocation(t *testing.T) {
	e := startIDJAG(t)
	sub := e.acme.URL + "#00u-frank"
	assertion := func() string {
		c := e.claims(e.acme, "00u-frank")
		c["email"], c["email_verified"] = "frank@acme.example", true
		return e.acme.Sign(c)
	}
	held := assertion()
	if status, body := adminRequest(t, http.MethodDelete, "/mcp_auth/grants?sub="+url.QueryEscape(sub)); status != http.StatusOK {
		t.Fatalf("revoking %s: %d %s", sub, status, body)
	}
	e.refused(t, "an ID-JAG issued before the revocation", held, nil, http.StatusBadRequest, "invalid_grant")
	time.Sleep(1100 * time.Millisecond) // iat counts whole seconds
	if status, _, m := e.exchange(t, e.client, assertion(), nil); status != http.StatusOK {
		t.Errorf("an ID-JAG issued after the revocation: %d %v, want 200", status, m)
	}
}

// Registration takes the jwt-bearer grant only where a provider is
// configured.
func TestIDJAGRegistrationNeedsAProvider(t *testing.T) {
	e := usersAS(t, "")
	status, _, m := e.Register(t, fmt.Sprintf(`{"client_name":"x","redirect_uris":[%q],"grant_types":["authorization_code",%q]}`, clientRedirect, jwtBearer), nil)
	if status != http.StatusBadRequest || m["error"] != "invalid_client_metadata" {
		t.Errorf("registering the jwt-bearer grant without providers: %d %v, want 400 invalid_client_metadata", status, m)
	}
	var meta map[string]any
	status, _, raw := oauthtest.Get(t, e.HTTP, siteAddr()+"/.well-known/oauth-authorization-server", nil)
	if status != http.StatusOK || json.Unmarshal(raw, &meta) != nil {
		t.Fatalf("metadata: %d %s", status, raw)
	}
	if slices.Contains(anyStrings(meta["grant_types_supported"]), jwtBearer) || meta["authorization_grant_profiles_supported"] != nil {
		t.Errorf("metadata advertises the grant without providers: %v", meta)
	}
	form := url.Values{"grant_type": {jwtBearer}, "assertion": {"x.y.z"}}
	pub := e.publicClient(t)
	form.Set("client_id", pub.ID)
	if status, _, m := e.Token(t, form, nil); status != http.StatusBadRequest || m["error"] != "unsupported_grant_type" {
		t.Errorf("the grant without providers: %d %v, want unsupported_grant_type", status, m)
	}
}

// unsigned is a compact JWS with header and claims and an empty signature.
func unsigned(t *testing.T, header, claims map[string]any) string {
	t.Helper()
	h, err1 := json.Marshal(header)
	c, err2 := json.Marshal(claims)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	return base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(c) + "."
}

// anyStrings converts a decoded JSON array of strings.
func anyStrings(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

// README's Caddyfile for enterprise identity providers adapts as it says.
func TestIDJAGReadmeCaddyfile(t *testing.T) {
	h := adaptHandlerConfig(t, adaptMustAdapt(t, readmeCaddyfile(t, "## Enterprise IdP (Enterprise-Managed Authorization)")))
	if len(h.EnterpriseIdPs) != 2 || h.EnterpriseIdPs[0].Issuer != "https://acme.okta.com" ||
		h.EnterpriseIdPs[1].JWKSURI == "" || len(h.EnterpriseIdPs[1].Clients) != 1 {
		t.Errorf("enterprise_idps %+v", h.EnterpriseIdPs)
	}
	if h.Allow == nil || !slices.Contains(h.Allow.Users, "https://login.partner.example/tenant#u-1042") {
		t.Errorf("allow %+v: the enterprise user is missing", h.Allow)
	}
}

// A provider whose keys cannot be fetched: the exchange fails as the
// server's problem (503), not the client's, and nothing is spent.
func TestIDJAGProviderUnreachable(t *testing.T) {
	down := fmt.Sprintf("http://127.0.0.1:%d", freeport.One())
	e := &idjagEnv{acme: fakeidp.NewEnterprise(t)}
	e.asEnv = usersAS(t, "enterprise_idp "+down)
	e.client = e.RegisterClient(t, map[string]any{
		"client_name": "Enterprise agent", "redirect_uris": []string{clientRedirect},
		"grant_types": []string{"authorization_code", jwtBearer},
	})
	claims := e.claims(e.acme, "00u-frank")
	claims["iss"] = down
	m := e.refused(t, "provider down", e.acme.Sign(claims), nil, http.StatusServiceUnavailable, "temporarily_unavailable")
	if !strings.Contains(fmt.Sprint(m["error_description"]), "keys") {
		t.Errorf("description %q does not say the keys could not be fetched", m["error_description"])
	}
}

// A Client ID Metadata Document client that authenticates with
// private_key_jwt and lists the jwt-bearer grant redeems ID-JAGs issued to
// its client_id URL; without its assertion it is refused.
func TestIDJAGMetadataDocumentClient(t *testing.T) {
	acme := fakeidp.NewEnterprise(t)
	key := fakeidp.NewRSAKey(t)
	jwks := publicJWKS(t, key, "k1")
	srv, _ := metadataServer(t, map[string]func(string) any{"/agent.json": cimdDoc("/agent.json", func(d map[string]any) {
		d["token_endpoint_auth_method"] = "private_key_jwt"
		d["jwks"] = jwks
		d["grant_types"] = []string{"authorization_code", jwtBearer}
	})})
	e := usersAS(t, "enterprise_idp "+acme.URL+"\n\t\tallow emails *@acme.example")
	c := &pclient{
		Client: oauthtest.Client{ID: srv.URL + "/agent.json", Redirects: []string{clientRedirect}},
		method: "private_key_jwt", key: key, kid: "k1", aud: siteAddr() + "/token",
	}
	claims := acme.Claims("00u-gina", siteAddr(), c.ID, canonicalResource())
	claims["email"], claims["email_verified"] = "gina@acme.example", true
	assertion := acme.Sign(claims)

	form := url.Values{"grant_type": {jwtBearer}, "assertion": {assertion}, "client_id": {c.ID}}
	if status, _, m := e.Token(t, form, nil); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Errorf("without its client assertion: %d %v, want 401 invalid_client", status, m)
	}
	form = url.Values{"grant_type": {jwtBearer}, "assertion": {assertion}}
	status, _, m := e.Token(t, form, c.credentials(t, form))
	if status != http.StatusOK {
		t.Fatalf("with its client assertion: %d %v", status, m)
	}
	if _, at := oauthtest.DecodeJWT(t, fmt.Sprint(m["access_token"])); at["client_id"] != c.ID || at["sub"] != acme.URL+"#00u-gina" {
		t.Errorf("token claims %v", at)
	}
}

// An exchange with a DPoP proof gets a token bound to the proof's key, as
// every grant does: it works with a fresh proof and not as a bearer token.
func TestIDJAGWithDPoP(t *testing.T) {
	e := startIDJAG(t)
	key := oauthtest.NewDPoPKey(t)
	claims := e.claims(e.acme, "00u-hana")
	claims["email"], claims["email_verified"] = "hana@acme.example", true
	form := url.Values{"grant_type": {jwtBearer}, "assertion": {e.acme.Sign(claims)}}
	status, _, m := e.Token(t, form, http.Header{
		"Authorization": {"Basic " + oauthtest.BasicAuth(e.client.ID, e.client.Secret)},
		"Dpop":          {key.Proof(t, oauthtest.ProofClaims{Method: "POST", URL: siteAddr() + "/token"})},
	})
	if status != http.StatusOK || m["token_type"] != "DPoP" {
		t.Fatalf("exchange with a proof: %d %v, want a DPoP token", status, m)
	}
	at := fmt.Sprint(m["access_token"])
	if _, claims := oauthtest.DecodeJWT(t, at); fmt.Sprint(claims["cnf"]) != fmt.Sprint(map[string]any{"jkt": key.JKT}) {
		t.Errorf("cnf = %v, want jkt %s", claims["cnf"], key.JKT)
	}
	if status, _ := e.dpopCall(t, oauthtest.DPoP(at, callProof(t, key, at))); status != http.StatusOK {
		t.Errorf("bound call with a fresh proof: %d", status)
	}
	if got := e.mcpStatus(t, at); got != http.StatusUnauthorized {
		t.Errorf("the bound token as a bearer token: %d, want 401", got)
	}
}
