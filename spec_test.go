package mcpauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Black-box tests for the rows of the acceptance list
// (spec-requirements.md) that no other test covers. Subtests are named
// after the row IDs. Rows covered elsewhere are not repeated here.

// fetchJSON GETs a JSON document and decodes it, failing unless it is 200.
func fetchJSON(t *testing.T, c *http.Client, u string, header http.Header) (http.Header, []byte, map[string]any) {
	t.Helper()
	status, hdr, body := get(t, c, u, header)
	var doc map[string]any
	if status != http.StatusOK || json.Unmarshal(body, &doc) != nil {
		t.Fatalf("GET %s: %d %.300s", u, status, body)
	}
	return hdr, body, doc
}

// strs returns the strings of a JSON array member.
func strs(v any) []string {
	var out []string
	list, _ := v.([]any)
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// challengeParam returns a parameter of a Bearer challenge.
func challengeParam(challenge, name string) string {
	m := regexp.MustCompile(`(?:^|[ ,])` + name + `="([^"]*)"`).FindStringSubmatch(challenge)
	if m == nil {
		return ""
	}
	return m[1]
}

// hs256Assertion is a client_secret_jwt assertion (RFC 7523 with an HMAC
// of the client secret), a method the server does not advertise.
func hs256Assertion(t *testing.T, clientID, secret, aud string) string {
	t.Helper()
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{"iss": clientID, "sub": clientID, "aud": aud, "jti": newPKCE().verifier,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	out, err := jws.Sign(payload, jws.WithKey(jwa.HS256(), []byte(secret)))
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func TestSpec_Metadata(t *testing.T) {
	e := usersAS(t, "")
	asmURL := siteAddr() + "/.well-known/oauth-authorization-server"
	hdr, plain, asm := fetchJSON(t, e.http, asmURL, nil)

	t.Run("ASM-01_JSONAtWellKnown", func(t *testing.T) {
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
	})

	t.Run("GEN-04_NotFromForwardedHeaders", func(t *testing.T) {
		forged := http.Header{"X-Forwarded-Host": {"evil.test"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Port": {"80"}, "Forwarded": {"host=evil.test;proto=http"}}
		for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/.well-known/oauth-protected-resource/mcp"} {
			_, want, _ := fetchJSON(t, e.http, siteAddr()+path, nil)
			_, got, _ := fetchJSON(t, e.http, siteAddr()+path, forged)
			if string(got) != string(want) || strings.Contains(string(got), "evil.test") || strings.Contains(string(got), `"http:`) {
				t.Errorf("%s changed with forwarded headers:\n%s\nwant\n%s", path, got, want)
			}
		}
		if asm["issuer"] != siteAddr() {
			t.Errorf("issuer %v", asm["issuer"])
		}
	})

	t.Run("ASM-06_RequiredMembers", func(t *testing.T) {
		for _, k := range []string{"issuer", "authorization_endpoint", "token_endpoint"} {
			if s, _ := asm[k].(string); !strings.HasPrefix(s, "https://") {
				t.Errorf("%s = %v", k, asm[k])
			}
		}
		rt := strs(asm["response_types_supported"])
		if !slices.Contains(rt, "code") || slices.ContainsFunc(rt, func(s string) bool { return strings.Contains(s, "token") }) {
			t.Errorf("response_types_supported %v", rt)
		}
	})

	t.Run("ASM-07_GrantTypesExplicit", func(t *testing.T) {
		if got := strs(asm["grant_types_supported"]); !slices.Equal(got, []string{"authorization_code", "refresh_token"}) {
			t.Errorf("grant_types_supported %v", asm["grant_types_supported"])
		}
	})

	t.Run("ASM-08_AuthMethods", func(t *testing.T) {
		methods := strs(asm["token_endpoint_auth_methods_supported"])
		for _, m := range []string{"none", "client_secret_basic", "client_secret_post", "private_key_jwt"} {
			if !slices.Contains(methods, m) {
				t.Errorf("token_endpoint_auth_methods_supported %v lacks %s", methods, m)
			}
		}
		if slices.Contains(methods, "client_secret_jwt") {
			t.Fatalf("client_secret_jwt is advertised: %v", methods)
		}
		// Every advertised method is exercised by TestTokenEndpoint and
		// TestProfileChatGPT; here an unadvertised one is refused.
		conf := e.registerClient(t, map[string]any{"client_name": "conf", "redirect_uris": []string{"https://client.test/cb"}})
		pub := e.publicClient(t)
		for name, c := range map[string]testClient{"confidential": conf, "public": pub} {
			secret := c.Secret
			if secret == "" {
				secret = strings.Repeat("k", 32)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {newPKCE().verifier}, "client_id": {c.ID},
				"client_assertion_type": {clients.ClientAssertionType}, "client_assertion": {hs256Assertion(t, c.ID, secret, asm["token_endpoint"].(string))}}
			if status, _, m := e.tokenRequest(t, form, nil); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
				t.Errorf("client_secret_jwt from a %s client: %d %v, want 401 invalid_client", name, status, m)
			}
		}
	})

	t.Run("DCR-03_RegisteredMethodEnforced", func(t *testing.T) {
		// Registered without token_endpoint_auth_method: client_secret_basic.
		status, _, m := e.register(t, `{"client_name":"default method","redirect_uris":["https://client.test/cb"]}`, nil)
		if status != http.StatusCreated || m["token_endpoint_auth_method"] != "client_secret_basic" || m["client_secret"] == nil {
			t.Fatalf("registration without a method: %d %v", status, m)
		}
		id, secret := m["client_id"].(string), m["client_secret"].(string)
		// Presenting no credential (method none) is refused.
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {newPKCE().verifier}, "client_id": {id}}
		if status, _, m := e.tokenRequest(t, form, nil); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Errorf("client_secret_basic client without credentials: %d %v, want 401 invalid_client", status, m)
		}
		// With Basic it authenticates (the bogus code then fails).
		form.Del("client_id")
		if status, _, m := e.tokenRequest(t, form, http.Header{"Authorization": {"Basic " + basicAuth(id, secret)}}); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("client_secret_basic: %d %v, want the client authenticated (invalid_grant)", status, m)
		}
	})

	t.Run("ASM-09_RegistrationEndpointWorks", func(t *testing.T) {
		reg, _ := asm["registration_endpoint"].(string)
		if reg == "" || asm["client_id_metadata_document_supported"] != true {
			t.Fatalf("registration_endpoint %q, client_id_metadata_document_supported %v", reg, asm["client_id_metadata_document_supported"])
		}
		status, _, body := do(t, e.http, http.MethodPost, reg, http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"redirect_uris":["http://127.0.0.1:5555/cb"],"token_endpoint_auth_method":"none"}`))
		if status != http.StatusCreated {
			t.Errorf("POST %s: %d %s", reg, status, body)
		}
	})

	t.Run("ASM-11_OptionalEndpoints", func(t *testing.T) {
		for k, path := range map[string]string{"revocation_endpoint": "/revoke", "introspection_endpoint": "/introspect", "userinfo_endpoint": "/userinfo", "jwks_uri": "/jwks"} {
			if asm[k] != siteAddr()+path {
				t.Errorf("%s = %v, want %s", k, asm[k], siteAddr()+path)
			}
		}
		if m := strs(asm["revocation_endpoint_auth_methods_supported"]); !slices.Contains(m, "none") {
			t.Errorf("revocation_endpoint_auth_methods_supported %v lacks none (public clients revoke)", m)
		}
	})

	t.Run("ASM-12_NoEmptyArrays", func(t *testing.T) {
		docs := map[string][]byte{"AS metadata": plain}
		for _, path := range []string{"/.well-known/openid-configuration", "/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
			_, body, _ := fetchJSON(t, e.http, siteAddr()+path, nil)
			docs[path] = body
		}
		for name, body := range docs {
			var doc map[string]any
			_ = json.Unmarshal(body, &doc)
			for k, v := range doc {
				if list, ok := v.([]any); (ok && len(list) == 0) || v == nil {
					t.Errorf("%s: member %s is %v", name, k, v)
				}
			}
		}
	})
}

func TestSpec_ASM03_PathIssuer(t *testing.T) {
	iss := siteAddr() + "/t1"
	e := usersAS(t, "issuer "+iss)

	_, _, asm := fetchJSON(t, e.http, siteAddr()+"/.well-known/oauth-authorization-server/t1", nil)
	t.Run("ASM-03_PathInsertion", func(t *testing.T) {
		if asm["issuer"] != iss {
			t.Errorf("issuer %v, want %s", asm["issuer"], iss)
		}
		for _, k := range []string{"authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint", "jwks_uri"} {
			if s, _ := asm[k].(string); !strings.HasPrefix(s, iss+"/") {
				t.Errorf("%s = %v is not below the issuer", k, asm[k])
			}
		}
		status, _, body := get(t, e.http, siteAddr()+"/.well-known/oauth-authorization-server", nil)
		if status != http.StatusNotFound || strings.Contains(string(body), `"issuer"`) {
			t.Errorf("root AS metadata with a path issuer: %d %s, want 404", status, body)
		}
	})

	t.Run("ASM-04_OIDCDiscoveryForPathIssuer", func(t *testing.T) {
		for _, path := range []string{"/.well-known/openid-configuration/t1", "/t1/.well-known/openid-configuration"} {
			_, _, doc := fetchJSON(t, e.http, siteAddr()+path, nil)
			if doc["issuer"] != iss || !slices.Contains(strs(doc["code_challenge_methods_supported"]), "S256") || doc["jwks_uri"] == nil ||
				len(strs(doc["subject_types_supported"])) == 0 || len(strs(doc["id_token_signing_alg_values_supported"])) == 0 {
				t.Errorf("%s: %v", path, doc)
			}
		}
	})

	t.Run("ASM-02_IssuerIdenticalEverywhere", func(t *testing.T) {
		_, _, prm := fetchJSON(t, e.http, siteAddr()+"/.well-known/oauth-protected-resource/mcp", nil)
		if as := strs(prm["authorization_servers"]); len(as) != 1 || as[0] != iss {
			t.Errorf("PRM authorization_servers %v, want [%s]", prm["authorization_servers"], iss)
		}
		status, _, m := do(t, e.http, http.MethodPost, asm["registration_endpoint"].(string), http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"client_name":"path","redirect_uris":["`+clientRedirect+`"],"token_endpoint_auth_method":"none"}`))
		var reg map[string]any
		if status != http.StatusCreated || json.Unmarshal(m, &reg) != nil {
			t.Fatalf("register at the advertised endpoint: %d %s", status, m)
		}
		c := testClient{ID: reg["client_id"].(string), Redirects: []string{clientRedirect}}
		p := newPKCE()
		q := authParams(c, p)

		// The flow under the issuer's path, as a browser runs it.
		b := aliceBrowser(t)
		status, _, page := get(t, b.client, asm["authorization_endpoint"].(string)+"?"+q.Encode(), nil)
		if status != http.StatusOK || !strings.Contains(string(page), `action="`+iss+`/authorize/consent"`) {
			t.Fatalf("consent page: %d %.300s", status, page)
		}
		form := formFields(string(page))
		form.Set("decision", "approve")
		h := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {siteAddr()}}
		status, hdr, _ := do(t, b.client, http.MethodPost, iss+"/authorize/consent", h, []byte(form.Encode()))
		if status != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), iss+"/authorize/login?") {
			t.Fatalf("consent: %d %q", status, hdr.Get("Location"))
		}
		_, _, page = get(t, b.client, hdr.Get("Location"), nil)
		form = formFields(string(page))
		form.Set("username", "alice")
		form.Set("password", "correct horse")
		status, hdr, _ = do(t, b.client, http.MethodPost, iss+"/authorize/login", h, []byte(form.Encode()))
		loc, _ := url.Parse(hdr.Get("Location"))
		if status != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("login: %d %q", status, hdr.Get("Location"))
		}
		if got := loc.Query()["iss"]; len(got) != 1 || got[0] != iss {
			t.Errorf("iss response parameter %q, want %s", got, iss)
		}
		status, _, tok := e.postForm(t, strings.TrimPrefix(asm["token_endpoint"].(string), siteAddr()), codeForm(c, loc.Query().Get("code"), p), nil)
		at, _ := tok["access_token"].(string)
		if status != http.StatusOK || at == "" {
			t.Fatalf("token: %d %v", status, tok)
		}
		if _, claims := decodeJWT(t, at); claims["iss"] != iss || claims["aud"] != canonicalResource() {
			t.Errorf("access token iss %v aud %v, want %s and %s", claims["iss"], claims["aud"], iss, canonicalResource())
		}
		if status := e.mcpStatus(t, at); status != http.StatusOK {
			t.Errorf("access token from the path issuer at /mcp: %d", status)
		}
	})
}

func TestSpec_SeveralResources(t *testing.T) {
	e := usersAS(t, "resource /b/mcp {\n\t\t\tscopes b:tools\n\t\t}")
	a, bURL := canonicalResource(), siteAddr()+"/b/mcp"

	t.Run("PRM-07_DistinctDocuments", func(t *testing.T) {
		_, _, prmA := fetchJSON(t, e.http, siteAddr()+"/.well-known/oauth-protected-resource/mcp", nil)
		_, _, prmB := fetchJSON(t, e.http, siteAddr()+"/.well-known/oauth-protected-resource/b/mcp", nil)
		if prmA["resource"] != a || prmB["resource"] != bURL {
			t.Errorf("resources %v and %v, want %s and %s", prmA["resource"], prmB["resource"], a, bURL)
		}
		if fmt.Sprint(prmB["scopes_supported"]) != "[b:tools]" {
			t.Errorf("/b/mcp scopes_supported %v", prmB["scopes_supported"])
		}
	})

	t.Run("PRM-08_ChallengeDereferences", func(t *testing.T) {
		for _, u := range []string{a, bURL} {
			status, hdr, _ := do(t, e.http, http.MethodPost, u, http.Header{"Content-Type": {"application/json"}}, []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
			rm := challengeParam(hdr.Get("WWW-Authenticate"), "resource_metadata")
			if status != http.StatusUnauthorized || !strings.HasPrefix(rm, "https://") {
				t.Fatalf("%s: %d %q", u, status, hdr.Get("WWW-Authenticate"))
			}
			if _, _, prm := fetchJSON(t, e.http, rm, nil); prm["resource"] != u {
				t.Errorf("%s: its challenge's metadata names resource %v", u, prm["resource"])
			}
		}
	})

	// A token minted (through the real flow) for one resource is refused
	// at the other, though this server signed both.
	c := e.publicClient(t)
	p := newPKCE()
	q := authParams(c, p)
	q.Set("resource", bURL)
	form := codeForm(c, loginCode(t, q), p)
	form.Set("resource", bURL)
	forB := e.exchange(t, form, nil)
	forA := e.login(t, c, nil)
	call := func(u, token string) (int, string) {
		h := bearer(token)
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "application/json, text/event-stream")
		status, hdr, _ := do(t, e.http, http.MethodPost, u, h, []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"spec","version":"0"}}}`))
		return status, hdr.Get("WWW-Authenticate")
	}

	t.Run("RS-04_AudienceChecked", func(t *testing.T) {
		if _, claims := decodeJWT(t, forB.Access); claims["aud"] != bURL || forB.Scope != "b:tools" {
			t.Fatalf("token for /b/mcp: aud %v scope %q", claims["aud"], forB.Scope)
		}
		status, challenge := call(a, forB.Access)
		if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) ||
			challengeParam(challenge, "resource_metadata") != siteAddr()+"/.well-known/oauth-protected-resource/mcp" {
			t.Errorf("token for /b/mcp at /mcp: %d %q, want 401 invalid_token", status, challenge)
		}
	})

	t.Run("RS-09_PathAwareAudience", func(t *testing.T) {
		// CG-02: the full URL is compared, not the origin.
		if status, challenge := call(bURL, forA.Access); status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
			t.Errorf("token for /mcp at /b/mcp: %d %q, want 401 invalid_token", status, challenge)
		}
		if status, _ := call(bURL, forB.Access); status == http.StatusUnauthorized || status == http.StatusForbidden {
			t.Errorf("token for /b/mcp at /b/mcp: %d", status)
		}
		if status, _ := call(a, forA.Access); status != http.StatusOK {
			t.Errorf("token for /mcp at /mcp: %d", status)
		}
	})
}

func TestSpec_Gate(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	startCaddy(t, gatedSite(t, storagePath, logDir, ""))
	client := mustTLSClient(t)
	ring := testRing(t, storagePath)
	iss := siteAddr()

	t.Run("RS-03_UnknownKid", func(t *testing.T) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		now := time.Now()
		payload, _ := json.Marshal(map[string]any{"iss": iss, "sub": "user-alice", "aud": iss + "/mcp", "client_id": "client-1",
			"scope": "mcp:tools", "jti": "spec-unknown-kid", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix()})
		hdrs := jws.NewHeaders()
		_ = hdrs.Set(jws.TypeKey, tokens.AccessTokenType)
		_ = hdrs.Set(jws.KeyIDKey, "not-a-published-kid")
		tok, err := jws.Sign(payload, jws.WithKey(jwa.ES256(), key, jws.WithProtectedHeaders(hdrs)))
		if err != nil {
			t.Fatal(err)
		}
		status, hdr, _ := get(t, client, iss+"/other", bearer(string(tok)))
		ch := hdr.Get("WWW-Authenticate")
		if status != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) || challengeParam(ch, "resource_metadata") == "" {
			t.Errorf("unknown kid: %d %q, want 401 invalid_token with resource_metadata", status, ch)
		}
	})

	t.Run("RS-14_EverySessionRequestAuthenticated", func(t *testing.T) {
		token := mint(t, ring, nil)
		h := bearer(token)
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "application/json, text/event-stream")
		status, hdr, body := do(t, client, http.MethodPost, iss+"/mcp", h,
			[]byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"spec","version":"0"}}}`))
		session := hdr.Get("Mcp-Session-Id")
		if status != http.StatusOK || session == "" {
			t.Fatalf("initialize: %d session %q %.200s", status, session, body)
		}
		noToken := http.Header{"Mcp-Session-Id": {session}, "Mcp-Protocol-Version": {"2025-06-18"},
			"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}}
		for _, method := range []string{http.MethodPost, http.MethodDelete} {
			status, hdr, _ := do(t, client, method, iss+"/mcp", noToken, []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`))
			if status != http.StatusUnauthorized || challengeParam(hdr.Get("WWW-Authenticate"), "resource_metadata") == "" {
				t.Errorf("%s with a session and no token: %d %q, want 401", method, status, hdr.Get("WWW-Authenticate"))
			}
		}
		withToken := noToken.Clone()
		withToken.Set("Authorization", "Bearer "+token)
		if status, _, body := do(t, client, http.MethodPost, iss+"/mcp", withToken, []byte(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`)); status != http.StatusOK {
			t.Errorf("the session with its token: %d %.200s", status, body)
		}
	})

	preflight := func(t *testing.T, path string) http.Header {
		t.Helper()
		status, hdr, _ := do(t, client, http.MethodOptions, iss+path, http.Header{
			"Origin": {"http://localhost:6274"}, "Access-Control-Request-Method": {"POST"},
			"Access-Control-Request-Headers": {"authorization,content-type,mcp-protocol-version,mcp-session-id,last-event-id,mcp-method,mcp-name"},
		}, nil)
		if status != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "http://localhost:6274" || hdr.Get("WWW-Authenticate") != "" {
			t.Errorf("preflight %s: %d %v", path, status, hdr)
		}
		return hdr
	}

	t.Run("RS-17_CORSPreflight", func(t *testing.T) {
		hdr := preflight(t, "/mcp")
		allowed := strings.ToLower(hdr.Get("Access-Control-Allow-Headers"))
		for _, h := range []string{"authorization", "content-type", "mcp-protocol-version", "mcp-session-id", "last-event-id", "mcp-method", "mcp-name"} {
			if !strings.Contains(allowed, h) {
				t.Errorf("Access-Control-Allow-Headers %q lacks %s", allowed, h)
			}
		}
		for _, m := range []string{"GET", "POST", "DELETE"} {
			if !strings.Contains(hdr.Get("Access-Control-Allow-Methods"), m) {
				t.Errorf("Access-Control-Allow-Methods %q lacks %s", hdr.Get("Access-Control-Allow-Methods"), m)
			}
		}
	})

	t.Run("TOK-14_TokenEndpointCORS", func(t *testing.T) {
		preflight(t, "/token")
		status, hdr, _ := do(t, client, http.MethodPost, iss+"/token", http.Header{"Origin": {"http://localhost:6274"},
			"Content-Type": {"application/x-www-form-urlencoded"}}, []byte("grant_type=password&client_id=x"))
		if status == http.StatusForbidden || hdr.Get("Access-Control-Allow-Origin") != "http://localhost:6274" || hdr.Get("Set-Cookie") != "" {
			t.Errorf("POST /token from a browser origin: %d %v", status, hdr)
		}
	})
}

func TestSpec_Endpoints(t *testing.T) {
	srv, hits := metadataServer(t, map[string]func(string) any{"/local.json": cimdDoc("/local.json", nil)})
	e := usersAS(t, "introspection_client rs-1 rs-secret-0123456789abc")
	c := e.publicClient(t)
	ts := e.login(t, c, nil)
	rs := http.Header{"Authorization": {"Basic " + basicAuth("rs-1", "rs-secret-0123456789abc")}}

	t.Run("INT-01_IntrospectionNeedsAuthorization", func(t *testing.T) {
		status, _, m := e.postForm(t, "/introspect", url.Values{"token": {ts.Access}}, nil)
		if status != http.StatusUnauthorized || m["error"] != "invalid_client" || m["active"] != nil {
			t.Errorf("introspection without credentials: %d %v, want 401 invalid_client", status, m)
		}
	})

	t.Run("INT-04_WrongHintStillFindsToken", func(t *testing.T) {
		status, _, m := e.postForm(t, "/introspect", url.Values{"token": {ts.Refresh}, "token_type_hint": {"access_token"}}, rs)
		if status != http.StatusOK || m["active"] != true || m["token_type"] != "refresh_token" {
			t.Errorf("refresh token with hint access_token: %d %v", status, m)
		}
		status, _, m = e.postForm(t, "/introspect", url.Values{"token": {ts.Access}, "token_type_hint": {"refresh_token"}}, rs)
		if status != http.StatusOK || m["active"] != true || m["token_type"] != "Bearer" {
			t.Errorf("access token with hint refresh_token: %d %v", status, m)
		}
	})

	t.Run("REV-06_BadClientCredentials", func(t *testing.T) {
		conf := e.registerClient(t, map[string]any{"client_name": "conf", "redirect_uris": []string{"https://client.test/cb"}})
		status, hdr, m := e.postForm(t, "/revoke", url.Values{"token": {"x"}}, http.Header{"Authorization": {"Basic " + basicAuth(conf.ID, conf.Secret+"x")}})
		if status != http.StatusUnauthorized || m["error"] != "invalid_client" || !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("revoke with a wrong Basic secret: %d %v %q", status, m, hdr.Get("WWW-Authenticate"))
		}
	})

	t.Run("DCR-05_InconsistentMetadata", func(t *testing.T) {
		for name, body := range map[string]string{
			"authorization_code without code": `{"token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb"],"grant_types":["authorization_code"],"response_types":[]}`,
			"jwks and jwks_uri":               `{"token_endpoint_auth_method":"none","redirect_uris":["https://a.test/cb"],"jwks":{"keys":[]},"jwks_uri":"https://a.test/jwks"}`,
		} {
			status, hdr, m := e.register(t, body, nil)
			if status != http.StatusBadRequest || m["error"] != "invalid_client_metadata" || !strings.HasPrefix(hdr.Get("Content-Type"), "application/json") {
				t.Errorf("%s: %d %v, want 400 invalid_client_metadata", name, status, m)
			}
		}
	})

	noFraming := func(t *testing.T, what string, hdr http.Header) {
		t.Helper()
		if hdr.Get("X-Frame-Options") != "DENY" || !strings.Contains(hdr.Get("Content-Security-Policy"), "frame-ancestors 'none'") {
			t.Errorf("%s can be framed: X-Frame-Options %q, CSP %q", what, hdr.Get("X-Frame-Options"), hdr.Get("Content-Security-Policy"))
		}
	}

	t.Run("AZ-20_PagesCannotBeFramed", func(t *testing.T) {
		q := authParams(c, newPKCE())
		q.Set("client_id", "no-such-client")
		status, hdr, body := get(t, e.http, authorizeURL(q), nil)
		assertErrorPage(t, "unknown client", status, hdr, body, http.StatusBadRequest)
		noFraming(t, "the error page", hdr)

		b := aliceBrowser(t)
		form := consentForm(t, b, authParams(c, newPKCE()))
		form.Set("decision", "approve")
		status, hdr, _ = postConsent(t, b, form)
		if status != http.StatusSeeOther {
			t.Fatalf("approve: %d", status)
		}
		status, hdr, body = get(t, b.client, hdr.Get("Location"), nil)
		if status != http.StatusOK || !strings.Contains(string(body), `name="password"`) {
			t.Fatalf("login page: %d %.200s", status, body)
		}
		noFraming(t, "the login page", hdr)
	})

	t.Run("FED-02_ConsentShowsTheRequest", func(t *testing.T) {
		status, hdr, body := get(t, e.http, authorizeURL(authParams(c, newPKCE())), nil)
		page := string(body)
		if status != http.StatusOK {
			t.Fatalf("%d %.300s", status, page)
		}
		noFraming(t, "the consent page", hdr)
		for _, want := range []string{"AS test client", "not verified", "127.0.0.1:33418", "<li>mcp:tools</li>", "<li>mcp:admin</li>", canonicalResource()} {
			if !strings.Contains(page, want) {
				t.Errorf("consent page lacks %q", want)
			}
		}
	})

	t.Run("CIMD-11_ConsentShowsHostsAndLocalhostWarning", func(t *testing.T) {
		const warning = "on this device (localhost)"
		cimd := testClient{ID: srv.URL + "/local.json", Redirects: []string{clientRedirect}}
		_, _, body := get(t, e.http, authorizeURL(authParams(cimd, newPKCE())), nil)
		page := string(body)
		for _, want := range []string{`metadata document at <span class="host">` + strings.TrimPrefix(srv.URL, "https://") + `</span>`,
			`<span class="host">127.0.0.1:33418</span>`, warning} {
			if !strings.Contains(page, want) {
				t.Errorf("consent page for a CIMD client with a loopback redirect lacks %q: %s", want, page)
			}
		}
		web := e.publicClient(t, "https://client.test/cb")
		if _, _, body := get(t, e.http, authorizeURL(authParams(web, newPKCE())), nil); strings.Contains(string(body), warning) || !strings.Contains(string(body), "client.test") {
			t.Errorf("consent page for an https redirect: %s", body)
		}
	})

	t.Run("CIMD-02_InvalidURLNeverFetched", func(t *testing.T) {
		before := hits.Load()
		host := strings.TrimPrefix(srv.URL, "https://")
		for _, id := range []string{
			"http://" + host + "/local.json",
			"https://" + host,
			"https://" + host + "/",
			"https://u:p@" + host + "/local.json",
			"https://" + host + "/a/../local.json",
			"https://" + host + "/a/%2e%2e/local.json",
			"https://" + host + "/local.json#f",
		} {
			q := authParams(testClient{ID: id, Redirects: []string{clientRedirect}}, newPKCE())
			status, hdr, body := get(t, e.http, authorizeURL(q), nil)
			assertErrorPage(t, id, status, hdr, body, http.StatusBadRequest)
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("invalid client_id URLs caused %d fetches", n)
		}
	})
}

func TestSpec_RT08_IdleExpiry(t *testing.T) {
	e := usersAS(t, "refresh_token_idle 1s")
	c := e.publicClient(t)
	first := e.login(t, c, nil)
	next := e.mustRefresh(t, c, first.Refresh, nil) // within the idle time
	time.Sleep(1100 * time.Millisecond)
	if status, m := e.refresh(t, c, next.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("refresh token idle past refresh_token_idle: %d %v, want 400 invalid_grant", status, m)
	}
}
