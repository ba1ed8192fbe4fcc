package mcpauth

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Black-box tests for rows of the acceptance list (spec-requirements.md)
// that no other test covers, named after the row IDs: the authorization
// server metadata, here and under a path issuer.

// fetchJSON GETs a JSON document and decodes it, failing unless it is 200.
func fetchJSON(t *testing.T, c *http.Client, u string, header http.Header) (http.Header, []byte, map[string]any) {
	t.Helper()
	status, hdr, body := oauthtest.Get(t, c, u, header)
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

// hs256Assertion is a client_secret_jwt assertion (RFC 7523 with an HMAC
// of the client secret), a method the server does not advertise.
func hs256Assertion(t *testing.T, clientID, secret, aud string) string {
	t.Helper()
	now := time.Now()
	payload, _ := json.Marshal(map[string]any{"iss": clientID, "sub": clientID, "aud": aud, "jti": oauthtest.NewPKCE().Verifier,
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
	hdr, plain, asm := fetchJSON(t, e.HTTP, asmURL, nil)

	t.Run("ASM-01_JSONAtWellKnown", func(t *testing.T) {
		if ct := hdr.Get("Content-Type"); ct != "application/json" {
			t.Errorf("Content-Type %q, want application/json", ct)
		}
	})

	t.Run("GEN-04_NotFromForwardedHeaders", func(t *testing.T) {
		forged := http.Header{"X-Forwarded-Host": {"evil.test"}, "X-Forwarded-Proto": {"http"}, "X-Forwarded-Port": {"80"}, "Forwarded": {"host=evil.test;proto=http"}}
		for _, path := range []string{"/.well-known/oauth-authorization-server", "/.well-known/openid-configuration", "/.well-known/oauth-protected-resource/mcp"} {
			_, want, _ := fetchJSON(t, e.HTTP, siteAddr()+path, nil)
			_, got, _ := fetchJSON(t, e.HTTP, siteAddr()+path, forged)
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
		conf := e.RegisterClient(t, map[string]any{"client_name": "conf", "redirect_uris": []string{"https://client.test/cb"}})
		pub := e.publicClient(t)
		for name, c := range map[string]oauthtest.Client{"confidential": conf, "public": pub} {
			secret := c.Secret
			if secret == "" {
				secret = strings.Repeat("k", 32)
			}
			form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {oauthtest.NewPKCE().Verifier}, "client_id": {c.ID},
				"client_assertion_type": {clients.ClientAssertionType}, "client_assertion": {hs256Assertion(t, c.ID, secret, asm["token_endpoint"].(string))}}
			if status, _, m := e.Token(t, form, nil); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
				t.Errorf("client_secret_jwt from a %s client: %d %v, want 401 invalid_client", name, status, m)
			}
		}
	})

	t.Run("DCR-03_RegisteredMethodEnforced", func(t *testing.T) {
		// Registered without token_endpoint_auth_method: client_secret_basic.
		status, _, m := e.Register(t, `{"client_name":"default method","redirect_uris":["https://client.test/cb"]}`, nil)
		if status != http.StatusCreated || m["token_endpoint_auth_method"] != "client_secret_basic" || m["client_secret"] == nil {
			t.Fatalf("registration without a method: %d %v", status, m)
		}
		id, secret := m["client_id"].(string), m["client_secret"].(string)
		// Presenting no credential (method none) is refused.
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {oauthtest.NewPKCE().Verifier}, "client_id": {id}}
		if status, _, m := e.Token(t, form, nil); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
			t.Errorf("client_secret_basic client without credentials: %d %v, want 401 invalid_client", status, m)
		}
		// With Basic it authenticates (the bogus code then fails).
		form.Del("client_id")
		if status, _, m := e.Token(t, form, http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(id, secret)}}); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
			t.Errorf("client_secret_basic: %d %v, want the client authenticated (invalid_grant)", status, m)
		}
	})

	t.Run("ASM-09_RegistrationEndpointWorks", func(t *testing.T) {
		reg, _ := asm["registration_endpoint"].(string)
		if reg == "" || asm["client_id_metadata_document_supported"] != true {
			t.Fatalf("registration_endpoint %q, client_id_metadata_document_supported %v", reg, asm["client_id_metadata_document_supported"])
		}
		status, _, body := oauthtest.Do(t, e.HTTP, http.MethodPost, reg, http.Header{"Content-Type": {"application/json"}},
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
			_, body, _ := fetchJSON(t, e.HTTP, siteAddr()+path, nil)
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

	_, _, asm := fetchJSON(t, e.HTTP, siteAddr()+"/.well-known/oauth-authorization-server/t1", nil)
	t.Run("ASM-03_PathInsertion", func(t *testing.T) {
		if asm["issuer"] != iss {
			t.Errorf("issuer %v, want %s", asm["issuer"], iss)
		}
		for _, k := range []string{"authorization_endpoint", "token_endpoint", "registration_endpoint", "revocation_endpoint", "jwks_uri"} {
			if s, _ := asm[k].(string); !strings.HasPrefix(s, iss+"/") {
				t.Errorf("%s = %v is not below the issuer", k, asm[k])
			}
		}
		status, _, body := oauthtest.Get(t, e.HTTP, siteAddr()+"/.well-known/oauth-authorization-server", nil)
		if status != http.StatusNotFound || strings.Contains(string(body), `"issuer"`) {
			t.Errorf("root AS metadata with a path issuer: %d %s, want 404", status, body)
		}
	})

	t.Run("ASM-04_OIDCDiscoveryForPathIssuer", func(t *testing.T) {
		for _, path := range []string{"/.well-known/openid-configuration/t1", "/t1/.well-known/openid-configuration"} {
			_, _, doc := fetchJSON(t, e.HTTP, siteAddr()+path, nil)
			if doc["issuer"] != iss || !slices.Contains(strs(doc["code_challenge_methods_supported"]), "S256") || doc["jwks_uri"] == nil ||
				len(strs(doc["subject_types_supported"])) == 0 || len(strs(doc["id_token_signing_alg_values_supported"])) == 0 {
				t.Errorf("%s: %v", path, doc)
			}
		}
	})

	t.Run("ASM-02_IssuerIdenticalEverywhere", func(t *testing.T) {
		_, _, prm := fetchJSON(t, e.HTTP, siteAddr()+"/.well-known/oauth-protected-resource/mcp", nil)
		if as := strs(prm["authorization_servers"]); len(as) != 1 || as[0] != iss {
			t.Errorf("PRM authorization_servers %v, want [%s]", prm["authorization_servers"], iss)
		}
		status, _, m := oauthtest.Do(t, e.HTTP, http.MethodPost, asm["registration_endpoint"].(string), http.Header{"Content-Type": {"application/json"}},
			[]byte(`{"client_name":"path","redirect_uris":["`+clientRedirect+`"],"token_endpoint_auth_method":"none"}`))
		var reg map[string]any
		if status != http.StatusCreated || json.Unmarshal(m, &reg) != nil {
			t.Fatalf("register at the advertised endpoint: %d %s", status, m)
		}
		c := oauthtest.Client{ID: reg["client_id"].(string), Redirects: []string{clientRedirect}}
		p := oauthtest.NewPKCE()
		q := authParams(c, p)

		// The flow under the issuer's path, as a browser runs it.
		b := aliceBrowser(t)
		status, _, page := oauthtest.Get(t, b.client, asm["authorization_endpoint"].(string)+"?"+q.Encode(), nil)
		if status != http.StatusOK || !strings.Contains(string(page), `action="`+iss+`/authorize/consent"`) {
			t.Fatalf("consent page: %d %.300s", status, page)
		}
		form := formFields(string(page))
		form.Set("decision", "approve")
		status, hdr, _ := oauthtest.SubmitForm(t, b.client, iss+"/authorize/consent", siteAddr(), form)
		if status != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), iss+"/authorize/login?") {
			t.Fatalf("consent: %d %q", status, hdr.Get("Location"))
		}
		_, _, page = oauthtest.Get(t, b.client, hdr.Get("Location"), nil)
		form = formFields(string(page))
		form.Set("username", "alice")
		form.Set("password", "correct horse")
		status, hdr, _ = oauthtest.SubmitForm(t, b.client, iss+"/authorize/login", siteAddr(), form)
		loc, _ := url.Parse(hdr.Get("Location"))
		if status != http.StatusSeeOther || loc == nil || loc.Query().Get("code") == "" {
			t.Fatalf("login: %d %q", status, hdr.Get("Location"))
		}
		if got := loc.Query()["iss"]; len(got) != 1 || got[0] != iss {
			t.Errorf("iss response parameter %q, want %s", got, iss)
		}
		status, _, tok := e.PostForm(t, strings.TrimPrefix(asm["token_endpoint"].(string), siteAddr()), codeForm(c, loc.Query().Get("code"), p), nil)
		at, _ := tok["access_token"].(string)
		if status != http.StatusOK || at == "" {
			t.Fatalf("token: %d %v", status, tok)
		}
		if _, claims := oauthtest.DecodeJWT(t, at); claims["iss"] != iss || claims["aud"] != canonicalResource() {
			t.Errorf("access token iss %v aud %v, want %s and %s", claims["iss"], claims["aud"], iss, canonicalResource())
		}
		if status := e.mcpStatus(t, at); status != http.StatusOK {
			t.Errorf("access token from the path issuer at /mcp: %d", status)
		}
	})
}
