package mcpauth

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Attacks on client authentication at /token, /revoke and /introspect,
// each run against a real Caddy: a client must authenticate with the
// method it registered, a grant can never be used with less than the
// authentication it was made with, and guessing a secret from one address
// never locks the client out at another.

// signedClients starts an authorization server with the options config
// returns for the base URL of a metadata server, which serves two Client
// ID Metadata Documents declaring private_key_jwt with the same inline key:
// /signed.json and /other.json. It returns the environment and the two
// clients, signing their assertions correctly.
func signedClients(t *testing.T, config func(base string) string) (*penv, *pclient, *pclient) {
	t.Helper()
	key := fakeidp.NewRSAKey(t)
	jwks := publicJWKS(t, key, "k1")
	doc := func(path string) func(string) any {
		return cimdDoc(path, func(d map[string]any) {
			d["token_endpoint_auth_method"] = "private_key_jwt"
			d["jwks"] = jwks
		})
	}
	srv, _ := metadataServer(t, map[string]func(string) any{"/signed.json": doc("/signed.json"), "/other.json": doc("/other.json")})
	pe := newPenv(t, usersAS(t, config(srv.URL)), "users:alice")
	c := &pclient{
		Client: oauthtest.Client{ID: srv.URL + "/signed.json", Redirects: []string{clientRedirect}},
		method: "private_key_jwt", key: key, kid: "k1", aud: siteAddr() + "/token",
	}
	return pe, c, c.withID(srv.URL + "/other.json")
}

// credVariant is one way of presenting (or not) a client's credentials.
type credVariant struct {
	name string
	// add puts the credentials into form and returns the headers to send.
	add    func(t *testing.T, form url.Values) http.Header
	status int
	code   string
}

// basicHeader is an HTTP Basic Authorization header for id and secret.
func basicHeader(id, secret string) http.Header {
	return http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(id, secret)}}
}

// withParams adds the client_id of c and kv (name, value, …) to the form.
func withParams(c *pclient, kv ...string) func(*testing.T, url.Values) http.Header {
	return func(_ *testing.T, form url.Values) http.Header {
		form.Set("client_id", c.ID)
		for i := 0; i+1 < len(kv); i += 2 {
			form.Set(kv[i], kv[i+1])
		}
		return nil
	}
}

// unsignedAssertion is an assertion for c with "alg": "none".
func unsignedAssertion(c *pclient) string {
	now := time.Now()
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
	payload, _ := json.Marshal(map[string]any{"iss": c.ID, "sub": c.ID, "aud": c.aud, "jti": oauthtest.NewPKCE().Verifier,
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	return header + "." + base64.RawURLEncoding.EncodeToString(payload) + "."
}

// withoutKey are the ways a caller without c's private key may try to
// pass as c, a private_key_jwt client; other is another client with a
// document of its own.
func withoutKey(t *testing.T, c, other *pclient) []credVariant {
	wrongKey := c.withKey(fakeidp.NewRSAKey(t))
	return []credVariant{
		{"client_id alone", withParams(c), 401, "invalid_client"},
		{"Basic with an empty secret", func(*testing.T, url.Values) http.Header { return basicHeader(c.ID, "") }, 401, "invalid_client"},
		{"Basic with a made-up secret", func(*testing.T, url.Values) http.Header { return basicHeader(c.ID, "guess") }, 401, "invalid_client"},
		{"client_secret in the body", withParams(c, "client_secret", "guess"), 401, "invalid_client"},
		{"assertion type without an assertion", withParams(c, "client_assertion_type", clients.ClientAssertionType), 400, "invalid_request"},
		{"assertion of another type", withParams(c, "client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:saml2-bearer", "client_assertion", "x"), 400, "invalid_request"},
		{"assertion signed with another key", wrongKey.credentials, 401, "invalid_client"},
		{"unsigned assertion", withParams(c, "client_assertion_type", clients.ClientAssertionType, "client_assertion", unsignedAssertion(c)), 401, "invalid_client"},
		{"assertion of another client", func(t *testing.T, form url.Values) http.Header {
			h := other.credentials(t, form)
			form.Set("client_id", c.ID)
			return h
		}, 401, "invalid_client"},
		{"assertion repeated after an empty one", func(t *testing.T, form url.Values) http.Header {
			h := c.credentials(t, form)
			form["client_assertion"] = []string{"", form.Get("client_assertion")}
			return h
		}, 400, "invalid_request"},
		{"assertion plus a Basic header", func(t *testing.T, form url.Values) http.Header {
			c.credentials(t, form)
			return basicHeader(c.ID, "")
		}, 400, "invalid_request"},
	}
}

// tryCredentials posts form to path once per variant and checks each
// answer.
func tryCredentials(t *testing.T, pe *penv, path string, form func() url.Values, variants []credVariant) {
	t.Helper()
	for _, v := range variants {
		f := form()
		h := v.add(t, f)
		status, hdr, m := pe.PostForm(t, path, f, h)
		if got, _ := m["error"].(string); status != v.status || got != v.code {
			t.Errorf("%s at %s: %d %v, want %d %s", v.name, path, status, m, v.status, v.code)
		}
		if status == 401 && h.Get("Authorization") != "" && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("%s at %s: 401 without a Basic challenge", v.name, path)
		}
	}
}

// introspect asks /introspect about token as c.
func (pe *penv) introspect(t *testing.T, c *pclient, token string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"token": {token}}
	status, _, m := pe.PostForm(t, "/introspect", form, c.credentials(t, form))
	return status, m
}

func TestAttackPrivateKeyJWTClientWithoutItsKey(t *testing.T) {
	pe, c, other := signedClients(t, func(string) string { return "" })
	f := pflow{wantScope: allScopes}
	variants := withoutKey(t, c, other)

	t.Run("code exchange", func(t *testing.T) {
		code, p, _ := pe.authorize(t, c, f)
		tryCredentials(t, pe, "/token", func() url.Values { return f.codeForm(c, code, p) }, variants)
		// None of that used the code up.
		pe.redeem(t, c, f, code, p)
	})

	ts := pe.login(t, c, f)
	t.Run("refresh", func(t *testing.T) {
		tryCredentials(t, pe, "/token", func() url.Values { return f.refreshForm(ts.Refresh) }, variants)
		ts = pe.mustRefresh(t, c, f, ts.Refresh)
	})
	t.Run("revoke", func(t *testing.T) {
		tryCredentials(t, pe, "/revoke", func() url.Values { return url.Values{"token": {ts.Refresh}} }, variants)
		tryCredentials(t, pe, "/revoke", func() url.Values { return url.Values{"token": {ts.Access}} }, variants)
		// The grant and its access token survived.
		pe.callTool(t, c, ts)
		ts = pe.mustRefresh(t, c, f, ts.Refresh)
	})
	t.Run("introspect", func(t *testing.T) {
		tryCredentials(t, pe, "/introspect", func() url.Values { return url.Values{"token": {ts.Access}} }, variants)
		if status, m := pe.introspect(t, c, ts.Access); status != 200 || m["active"] != true {
			t.Errorf("introspecting its own token with an assertion: %d %v", status, m)
		}
	})
}

func TestAttackGrantDowngradedFromAssertionToNone(t *testing.T) {
	// This one document may leave out its assertion; the other may not.
	pe, c, other := signedClients(t, func(base string) string { return "assertion_optional " + base + "/signed.json" })
	f := pflow{wantScope: allScopes}
	unsigned := c.withMethod("none")
	emptyBasic := func(*testing.T, url.Values) http.Header { return basicHeader(c.ID, "") }

	t.Run("a grant made with an assertion", func(t *testing.T) {
		ts := pe.login(t, c, f)
		downgrades := []credVariant{
			{"client_id alone", withParams(c), 400, "invalid_grant"},
			{"Basic with an empty secret", emptyBasic, 400, "invalid_grant"},
		}
		tryCredentials(t, pe, "/token", func() url.Values { return f.refreshForm(ts.Refresh) }, downgrades)
		// Revoking without the key is answered like any token the caller
		// does not own, and changes nothing.
		for _, v := range []credVariant{{"client_id alone", withParams(c), 200, ""}, {"Basic with an empty secret", emptyBasic, 200, ""}} {
			tryCredentials(t, pe, "/revoke", func() url.Values { return url.Values{"token": {ts.Refresh}} }, []credVariant{v})
		}
		if status, m := pe.introspect(t, unsigned, ts.Access); status != 401 || m["error"] != "invalid_client" {
			t.Errorf("introspecting without the assertion: %d %v, want 401 invalid_client", status, m)
		}
		ts = pe.mustRefresh(t, c, f, ts.Refresh)
		pe.callTool(t, c, ts)
	})

	t.Run("a grant made without an assertion", func(t *testing.T) {
		ts := pe.login(t, unsigned, f)
		if status, m := pe.introspect(t, unsigned, ts.Access); status != 401 || m["error"] != "invalid_client" {
			t.Errorf("a client that proved nothing introspects: %d %v, want 401 invalid_client", status, m)
		}
		ts = pe.mustRefresh(t, unsigned, f, ts.Refresh)
		// Doing better than the grant needs is fine.
		ts = pe.mustRefresh(t, c, f, ts.Refresh)
		pe.callTool(t, c, ts)
	})

	t.Run("the exception names one document only", func(t *testing.T) {
		code, p, _ := pe.authorize(t, other, f)
		tryCredentials(t, pe, "/token", func() url.Values { return f.codeForm(other, code, p) }, withoutKey(t, other, c)[:1])
		pe.redeem(t, other, f, code, p)
	})
}

func TestAttackSecretClientUsesTheOtherMethod(t *testing.T) {
	e := usersAS(t, "")
	pe := newPenv(t, e, "users:alice")
	register := func(method string) *pclient {
		return pe.dcr(t, `{"client_name":"`+method+`","redirect_uris":["`+clientRedirect+`"],"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"`+method+`"}`, nil, method)
	}
	basic, post, public := register("client_secret_basic"), register("client_secret_post"), register("none")
	f := pflow{wantScope: allScopes}

	// otherWays are how a client registered for method might present a
	// secret it knows in a way it did not register, or two ways at once.
	otherWays := func(c *pclient) []credVariant {
		inBody := withParams(c, "client_secret", c.Secret)
		inHeader := func(*testing.T, url.Values) http.Header { return basicHeader(c.ID, c.Secret) }
		out := []credVariant{
			{"Basic and client_secret", func(t *testing.T, form url.Values) http.Header {
				inBody(t, form)
				return inHeader(t, form)
			}, 400, "invalid_request"},
			{"client_secret and an assertion", withParams(c, "client_secret", c.Secret, "client_assertion_type", clients.ClientAssertionType, "client_assertion", "x.y.z"), 400, "invalid_request"},
			{"Basic and an assertion", func(t *testing.T, form url.Values) http.Header {
				withParams(c, "client_assertion_type", clients.ClientAssertionType, "client_assertion", "x.y.z")(t, form)
				return inHeader(t, form)
			}, 400, "invalid_request"},
			{"client_secret repeated", func(t *testing.T, form url.Values) http.Header {
				inBody(t, form)
				form["client_secret"] = []string{c.Secret, c.Secret}
				return nil
			}, 400, "invalid_request"},
			{"client_secret repeated after an empty one", func(t *testing.T, form url.Values) http.Header {
				inBody(t, form)
				form["client_secret"] = []string{"", c.Secret}
				return nil
			}, 400, "invalid_request"},
			{"client_secret under another case", withParams(c, "Client_Secret", c.Secret), 401, "invalid_client"},
		}
		switch c.method {
		case "client_secret_basic":
			out = append(out, credVariant{"client_secret in the body", inBody, 401, "invalid_client"})
		case "client_secret_post":
			out = append(out, credVariant{"Basic", inHeader, 401, "invalid_client"})
		}
		return out
	}

	for _, c := range []*pclient{basic, post} {
		t.Run(c.method, func(t *testing.T) {
			code, p, _ := pe.authorize(t, c, f)
			tryCredentials(t, pe, "/token", func() url.Values { return f.codeForm(c, code, p) }, otherWays(c))
			ts := pe.redeem(t, c, f, code, p)
			tryCredentials(t, pe, "/token", func() url.Values { return f.refreshForm(ts.Refresh) }, otherWays(c))
			ts = pe.mustRefresh(t, c, f, ts.Refresh)
			tryCredentials(t, pe, "/introspect", func() url.Values { return url.Values{"token": {ts.Access}} }, otherWays(c))
			tryCredentials(t, pe, "/revoke", func() url.Values { return url.Values{"token": {ts.Refresh}} }, otherWays(c))
			ts = pe.mustRefresh(t, c, f, ts.Refresh)
			if status, m := pe.introspect(t, c, ts.Access); status != 200 || m["active"] != true {
				t.Errorf("introspecting its own token: %d %v", status, m)
			}
			pe.revoke(t, c, ts.Refresh)
		})
	}

	t.Run("public client with a secret", func(t *testing.T) {
		code, p, _ := pe.authorize(t, public, f)
		tryCredentials(t, pe, "/token", func() url.Values { return f.codeForm(public, code, p) }, []credVariant{
			{"client_secret", withParams(public, "client_secret", basic.Secret), 401, "invalid_client"},
			{"Basic with a secret", func(*testing.T, url.Values) http.Header { return basicHeader(public.ID, basic.Secret) }, 401, "invalid_client"},
		})
		ts := pe.redeem(t, public, f, code, p)
		if status, m := pe.introspect(t, public, ts.Access); status != 401 || m["error"] != "invalid_client" {
			t.Errorf("a public client introspects: %d %v, want 401 invalid_client", status, m)
		}
	})

	t.Run("parameters in the URL", func(t *testing.T) {
		for _, path := range []string{"/token", "/revoke", "/introspect"} {
			q := url.Values{"client_id": {post.ID}, "client_secret": {post.Secret}}
			status, _, body := oauthtest.Do(t, e.HTTP, http.MethodPost, siteAddr()+path+"?"+q.Encode(),
				http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte("grant_type=refresh_token&refresh_token=x&token=x"))
			if status != 400 || !strings.Contains(string(body), `"invalid_request"`) {
				t.Errorf("%s with credentials in the query: %d %s", path, status, body)
			}
		}
	})
}

func TestAttackSecretGuessingLocksOutAnotherAddress(t *testing.T) {
	e := usersAS(t, "")
	pe := newPenv(t, e, "users:alice")
	victim := pe.dcr(t, `{"client_name":"victim","redirect_uris":["`+clientRedirect+`"],"grant_types":["authorization_code","refresh_token"]}`, nil, "client_secret_basic")
	bystander := pe.dcr(t, `{"client_name":"bystander","redirect_uris":["`+clientRedirect+`"]}`, nil, "client_secret_basic")
	attacker, elsewhere := clientFrom(t, "127.0.0.2"), clientFrom(t, "127.0.0.3")
	bogus := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {oauthtest.NewPKCE().Verifier}}
	post := func(c *http.Client, id, secret string) int {
		status, _, _ := oauthtest.Do(t, c, http.MethodPost, siteAddr()+"/token", http.Header{
			"Content-Type": {"application/x-www-form-urlencoded"}, "Authorization": {"Basic " + oauthtest.BasicAuth(id, secret)},
		}, []byte(bogus.Encode()))
		return status
	}
	// An authenticated client gets invalid_grant for the bogus code.
	const authenticated = http.StatusBadRequest

	statuses := map[int]int{}
	for range 15 {
		statuses[post(attacker, victim.ID, "guess")]++
	}
	if statuses[http.StatusUnauthorized] != 10 || statuses[http.StatusTooManyRequests] != 5 {
		t.Errorf("15 wrong secrets from one address: %v, want 10×401 then 429", statuses)
	}
	// The guesser stays stopped, and learns nothing even from the right secret.
	if status := post(attacker, victim.ID, victim.Secret); status != http.StatusTooManyRequests {
		t.Errorf("the guesser with the right secret: %d, want 429", status)
	}
	// The real client, at its own addresses, is not locked out.
	for name, c := range map[string]*http.Client{"the test's usual address": pe.HTTP, "127.0.0.3": elsewhere} {
		if status := post(c, victim.ID, victim.Secret); status != authenticated {
			t.Errorf("the real client from %s: %d, want it authenticated", name, status)
		}
	}
	// Nor is another client at the guesser's address.
	if status := post(attacker, bystander.ID, bystander.Secret); status != authenticated {
		t.Errorf("another client from the guesser's address: %d, want it authenticated", status)
	}
	// And a whole flow of the real client still works.
	ts := pe.login(t, victim, pflow{wantScope: allScopes})
	pe.mustRefresh(t, victim, pflow{wantScope: allScopes}, ts.Refresh)
}

// A private_key_jwt assertion names its audience: this server's issuer,
// its token endpoint, or the endpoint it is posted to (libraries differ),
// each spelt exactly. An assertion for another server, for another
// endpoint of this one, or for a look-alike URL authenticates nobody.
func TestAttackAssertionAudienceOfAnotherEndpoint(t *testing.T) {
	pe, c, _ := signedClients(t, func(string) string { return "" })
	f := pflow{wantScope: allScopes}
	ts := pe.login(t, c, f)
	for_ := func(aud string) *pclient { out := *c; out.aud = aud; return &out }
	base := siteAddr()
	lookAlikes := []string{base + "/", base + "//token", base + "/token/", base + "/TOKEN", strings.ToUpper(base), "https://evil.example/token", "https://evil.example"}

	for _, aud := range []string{base, base + "/token", base + "/introspect"} {
		if status, m := pe.introspect(t, for_(aud), ts.Access); status != 200 || m["active"] != true {
			t.Errorf("introspect with aud %s: %d %v", aud, status, m)
		}
	}
	for _, aud := range append(lookAlikes, base+"/revoke", base+"/introspect/") {
		if status, m := pe.introspect(t, for_(aud), ts.Access); status != 401 || m["error"] != "invalid_client" {
			t.Errorf("introspect with aud %s: %d %v", aud, status, m)
		}
	}
	for _, aud := range append(lookAlikes, base+"/revoke", base+"/introspect") {
		if status, m := pe.token(t, for_(aud), f.refreshForm(ts.Refresh)); status != 401 || m["error"] != "invalid_client" {
			t.Errorf("refresh with aud %s: %d %v", aud, status, m)
		}
	}
	ts = pe.mustRefresh(t, for_(base), f, ts.Refresh)
	for _, aud := range append(lookAlikes, base+"/introspect") {
		form := url.Values{"token": {ts.Refresh}}
		if status, _, m := pe.PostForm(t, "/revoke", form, for_(aud).credentials(t, form)); status != 401 || m["error"] != "invalid_client" {
			t.Errorf("revoke with aud %s: %d %v", aud, status, m)
		}
	}
	pe.revoke(t, for_(base+"/revoke"), ts.Refresh)
	if status, m := pe.token(t, c, f.refreshForm(ts.Refresh)); status != 400 || m["error"] != "invalid_grant" {
		t.Errorf("refresh after revocation with aud /revoke: %d %v", status, m)
	}
}
