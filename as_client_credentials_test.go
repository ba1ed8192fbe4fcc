package mcpauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Machine clients (the MCP extension
// io.modelcontextprotocol/oauth-client-credentials): pre-registered
// programs get tokens for themselves with grant_type=client_credentials,
// authenticating with a secret or a private_key_jwt assertion, and use
// them at the gate like any other token.

// ccEnv is a site with three machine clients: agent-1 with a secret
// (mcp:tools only, 10-minute tokens), signer.uri with its keys at a
// jwks_uri, and signer.inline with its keys in the config.
type ccEnv struct {
	*asEnv
	secret string
	// byURI and inline are the private_key_jwt clients.
	byURI, inline *pclient
}

// startMachineClients starts the site of ccEnv with extra mcp_auth lines.
func startMachineClients(t *testing.T, extra string) *ccEnv {
	t.Helper()
	secret := randomHex(t)
	uriKey, inlineKey := rsaKey(t), rsaKey(t)
	keys, _ := metadataServer(t, map[string]func(string) any{
		"/jwks.json": func(string) any { return publicJWKS(t, uriKey, "uri-1") },
	})
	inlineJWKS, err := json.Marshal(publicJWKS(t, inlineKey, "inline-1"))
	if err != nil {
		t.Fatal(err)
	}
	e := usersAS(t, fmt.Sprintf(`client agent-1 {
			secret_hash %s
			scopes mcp:tools
			access_token_lifetime 10m
		}
		client signer.uri {
			jwks_uri %s/jwks.json
		}
		client signer.inline {
			jwks `+"`%s`"+`
		}
		%s`, clients.HashSecret(secret), keys.URL, inlineJWKS, extra))
	signer := func(id string, key *rsa.PrivateKey, kid string) *pclient {
		return &pclient{Client: oauthtest.Client{ID: id}, method: clients.AuthMethodPrivateKeyJWT, key: key, kid: kid, aud: siteAddr() + "/token"}
	}
	return &ccEnv{asEnv: e, secret: secret, byURI: signer("signer.uri", uriKey, "uri-1"), inline: signer("signer.inline", inlineKey, "inline-1")}
}

func randomHex(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

func rsaKey(t *testing.T) *rsa.PrivateKey {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// clientCredentials is a token request of grant_type client_credentials
// with the extra parameters kv.
func clientCredentials(kv ...string) url.Values {
	form := url.Values{"grant_type": {"client_credentials"}}
	for i := 0; i < len(kv); i += 2 {
		form.Add(kv[i], kv[i+1])
	}
	return form
}

// sdkCredentials is the x/oauth2 client credentials flow of agent-1,
// sending its secret as style says, talking to the test site.
func (e *ccEnv) sdkCredentials(t *testing.T, style oauth2.AuthStyle, scopes ...string) (context.Context, *clientcredentials.Config) {
	ctx := context.WithValue(t.Context(), oauth2.HTTPClient, e.HTTP)
	return ctx, &clientcredentials.Config{
		ClientID: "agent-1", ClientSecret: e.secret, TokenURL: siteAddr() + "/token", Scopes: scopes, AuthStyle: style,
		EndpointParams: url.Values{"resource": {canonicalResource()}},
	}
}

func TestClientCredentialsWithGoOAuth2(t *testing.T) {
	e := startMachineClients(t, "")
	for name, style := range map[string]oauth2.AuthStyle{"basic": oauth2.AuthStyleInHeader, "post": oauth2.AuthStyleInParams} {
		t.Run(name, func(t *testing.T) {
			ctx, cfg := e.sdkCredentials(t, style)
			tok, err := cfg.Token(ctx)
			if err != nil {
				t.Fatalf("token: %v", err)
			}
			if tok.RefreshToken != "" || tok.Extra("id_token") != nil {
				t.Errorf("client credentials gave a refresh or ID token: %q %v", tok.RefreshToken, tok.Extra("id_token"))
			}
			_, claims := oauthtest.DecodeJWT(t, tok.AccessToken)
			if claims["sub"] != "agent-1" || claims["client_id"] != "agent-1" || claims["aud"] != canonicalResource() || claims["scope"] != "mcp:tools" {
				t.Errorf("claims %v", claims)
			}
			if life := claims["exp"].(float64) - claims["iat"].(float64); life != 600 {
				t.Errorf("token lives %vs, want the client's 10m", life)
			}
			if _, ok := claims["email"]; ok {
				t.Errorf("a machine token has an email: %v", claims)
			}

			// The SDK's client attaches the token; the MCP SDK calls a tool
			// through the gate with it.
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "agent", Version: "0"}, nil).Connect(t.Context(),
				&mcp.StreamableClientTransport{Endpoint: canonicalResource(), HTTPClient: cfg.Client(ctx)}, nil)
			if err != nil {
				t.Fatalf("connect: %v", err)
			}
			defer cs.Close()
			res, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}})
			if err != nil || res.IsError {
				t.Fatalf("whoami: %v %v", err, res)
			}
			raw, _ := json.Marshal(res.StructuredContent)
			var who demomcp.Identity
			if err := json.Unmarshal(raw, &who); err != nil {
				t.Fatal(err)
			}
			if who.User != "agent-1" || who.Client != "agent-1" || who.Email != "" || who.Scopes != "mcp:tools" || who.AuthorizationHeaderPresent {
				t.Errorf("the backend saw %+v", who)
			}
		})
	}

	t.Run("a scope it may not have", func(t *testing.T) {
		ctx, cfg := e.sdkCredentials(t, oauth2.AuthStyleInHeader, "mcp:admin")
		_, err := cfg.Token(ctx)
		var rerr *oauth2.RetrieveError
		if !errors.As(err, &rerr) || rerr.ErrorCode != "invalid_scope" {
			t.Fatalf("want invalid_scope, got %v", err)
		}
	})
	if found := logContains(t, e.logDir, e.secret, oauthtest.BasicAuth("agent-1", e.secret)); len(found) > 0 {
		t.Errorf("secrets in the logs: %v", found)
	}
}

func TestClientCredentialsMetadata(t *testing.T) {
	e := startMachineClients(t, "")
	status, _, body := oauthtest.Get(t, e.HTTP, siteAddr()+"/.well-known/oauth-authorization-server", nil)
	var m struct {
		Grants  []string `json:"grant_types_supported"`
		Methods []string `json:"token_endpoint_auth_methods_supported"`
		Algs    []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	}
	if status != http.StatusOK || json.Unmarshal(body, &m) != nil {
		t.Fatalf("%d %s", status, body)
	}
	// The extension: client_secret_basic and/or private_key_jwt, with the
	// algorithms of the latter.
	if !slices.Contains(m.Grants, "client_credentials") || !slices.Contains(m.Methods, "client_secret_basic") ||
		!slices.Contains(m.Methods, "private_key_jwt") || !slices.Contains(m.Algs, "RS256") || !slices.Contains(m.Algs, "ES256") {
		t.Errorf("metadata %s", body)
	}
}

func TestClientCredentialsRefusals(t *testing.T) {
	e := startMachineClients(t, "")
	basicAuth := func(id, secret string) http.Header {
		return http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(id, secret)}}
	}
	agent := basicAuth("agent-1", e.secret)
	dcr := e.RegisterClient(t, map[string]any{"client_name": "registered", "redirect_uris": []string{clientRedirect}})
	public := e.publicClient(t)
	for _, tc := range []struct {
		name   string
		form   url.Values
		header http.Header
		status int
		code   string
	}{
		{"wrong secret", clientCredentials(), basicAuth("agent-1", e.secret+"x"), 401, "invalid_client"},
		{"secret of another case", clientCredentials(), basicAuth("agent-1", strings.ToUpper(e.secret)), 401, "invalid_client"},
		{"no secret", clientCredentials("client_id", "agent-1"), nil, 401, "invalid_client"},
		{"unknown client", clientCredentials(), basicAuth("agent-2", e.secret), 401, "invalid_client"},
		{"client id of another case", clientCredentials(), basicAuth("Agent-1", e.secret), 401, "invalid_client"},
		{"registered client", clientCredentials(), basicAuth(dcr.ID, dcr.Secret), 400, "unauthorized_client"},
		{"public client (TOK-12)", clientCredentials("client_id", public.ID), nil, 400, "unauthorized_client"},
		{"machine client at the code grant", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}}, agent, 400, "unauthorized_client"},
		{"machine client refreshing", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}, agent, 400, "unauthorized_client"},
		{"only scopes it may not have", clientCredentials("scope", "mcp:admin other"), agent, 400, "invalid_scope"},
		{"resource of another site", clientCredentials("resource", "https://elsewhere.example/mcp"), agent, 400, "invalid_target"},
		{"two resources", clientCredentials("resource", canonicalResource(), "resource", "https://elsewhere.example/mcp"), agent, 400, "invalid_target"},
		{"assertion without a key", clientCredentials("client_id", "agent-1", "client_assertion_type", clients.ClientAssertionType,
			"client_assertion", unsignedAssertion(&pclient{Client: oauthtest.Client{ID: "agent-1"}})), nil, 401, "invalid_client"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, m := e.Token(t, tc.form, tc.header)
			if status != tc.status || m["error"] != tc.code {
				t.Errorf("%d %v, want %d %s", status, m, tc.status, tc.code)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Error("error without Cache-Control: no-store")
			}
		})
	}

	t.Run("scopes it may have are kept, others dropped", func(t *testing.T) {
		status, hdr, m := e.Token(t, clientCredentials("scope", "mcp:admin mcp:tools openid"), agent)
		if status != 200 || m["scope"] != "mcp:tools" || m["refresh_token"] != nil || hdr.Get("Cache-Control") != "no-store" {
			t.Errorf("%d %v", status, m)
		}
	})

	t.Run("failed secrets are throttled", func(t *testing.T) {
		wrong := basicAuth("agent-1", "guess")
		last := 0
		for range 12 {
			last, _, _ = e.Token(t, clientCredentials(), wrong)
		}
		if last != http.StatusTooManyRequests {
			t.Errorf("after 12 wrong secrets: %d, want 429", last)
		}
	})
}

func TestClientCredentialsPrivateKeyJWT(t *testing.T) {
	e := startMachineClients(t, "")
	for _, c := range []*pclient{e.byURI, e.inline} {
		t.Run(c.ID, func(t *testing.T) {
			form := clientCredentials("resource", canonicalResource())
			hdr := c.credentials(t, form)
			// RFC 7523 section 3, as the extension shows it: the assertion
			// names the client, client_id may be left out.
			form.Del("client_id")
			status, _, m := e.Token(t, form, hdr)
			if status != 200 || m["access_token"] == nil || m["refresh_token"] != nil {
				t.Fatalf("%d %v", status, m)
			}
			at := m["access_token"].(string)
			if _, claims := oauthtest.DecodeJWT(t, at); claims["sub"] != c.ID || claims["scope"] != allScopes {
				t.Errorf("claims %v", claims)
			}
			if got := e.mcpStatus(t, at); got != 200 {
				t.Errorf("MCP with the token: %d", got)
			}

			replayed, _, m := e.Token(t, form, hdr)
			if replayed != 401 || m["error"] != "invalid_client" {
				t.Errorf("replayed assertion: %d %v", replayed, m)
			}
			other := e.byURI
			if c == e.byURI {
				other = e.inline
			}
			forged := clientCredentials()
			hdr = c.withKey(other.key).credentials(t, forged)
			if status, _, m := e.Token(t, forged, hdr); status != 401 || m["error"] != "invalid_client" {
				t.Errorf("assertion signed with another client's key: %d %v", status, m)
			}
			if status, _, m := e.Token(t, clientCredentials("client_id", c.ID, "client_secret", "x"), nil); status != 401 || m["error"] != "invalid_client" {
				t.Errorf("a key client sending a secret: %d %v", status, m)
			}
		})
	}
}

func TestClientCredentialsTokenLifecycle(t *testing.T) {
	e := startMachineClients(t, "")
	agent := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("agent-1", e.secret)}}
	_, _, m := e.Token(t, clientCredentials(), agent)
	at, _ := m["access_token"].(string)
	if at == "" || e.mcpStatus(t, at) != 200 {
		t.Fatalf("no working token: %v", m)
	}
	post := func(path string, form url.Values, header http.Header) (int, map[string]any) {
		status, _, m := e.PostForm(t, path, form, header)
		return status, m
	}
	status, intro := post("/introspect", url.Values{"token": {at}}, agent)
	if status != 200 || intro["active"] != true || intro["sub"] != "agent-1" || intro["client_id"] != "agent-1" || intro["aud"] != canonicalResource() {
		t.Errorf("introspection: %d %v", status, intro)
	}
	// Another client may not see or revoke it.
	inline := clientCredentials()
	hdr := e.inline.credentials(t, inline)
	inline.Set("token", at)
	inline.Del("grant_type")
	if status, intro := post("/introspect", inline, hdr); status != 200 || intro["active"] != false {
		t.Errorf("another client's introspection: %d %v", status, intro)
	}
	if status, _ := post("/revoke", url.Values{"token": {at}}, agent); status != 200 {
		t.Fatalf("revoke: %d", status)
	}
	if got := e.mcpStatus(t, at); got != 401 {
		t.Errorf("revoked token at the gate: %d", got)
	}
	if status, intro := post("/introspect", url.Values{"token": {at}}, agent); status != 200 || intro["active"] != false {
		t.Errorf("revoked token introspected: %d %v", status, intro)
	}
	// A new request gets a new token.
	if _, _, m := e.Token(t, clientCredentials(), agent); m["access_token"] == nil || e.mcpStatus(t, m["access_token"].(string)) != 200 {
		t.Errorf("after revocation: %v", m)
	}
}

// allow and grant_scope rules name machine clients apart from users:
// rules about users, everyone included, never admit a client, nor
// rules about clients a user.
func TestClientCredentialsRules(t *testing.T) {
	e := startMachineClients(t, `allow users alice
		allow clients signer.inline agent-1
		grant_scope mcp:admin to clients signer.inline
		grant_scope mcp:tools to everyone`)
	agent := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("agent-1", e.secret)}}
	token := func(c *pclient) (int, map[string]any) {
		form := clientCredentials()
		hdr := c.credentials(t, form)
		status, _, m := e.Token(t, form, hdr)
		return status, m
	}
	if status, m := token(e.byURI); status != 400 || m["error"] != "unauthorized_client" {
		t.Errorf("a client no allow rule names: %d %v", status, m)
	}
	// grant_scope … to everyone is about users: the client gets only
	// mcp:admin, granted to it by name.
	if status, m := token(e.inline); status != 200 || m["scope"] != "mcp:admin" {
		t.Errorf("signer.inline: %d %v", status, m)
	}
	// agent-1 may have mcp:tools by its block, but no rule grants it.
	if status, _, m := e.Token(t, clientCredentials(), agent); status != 200 || m["scope"] != "" {
		t.Errorf("agent-1 without scope: %d %v", status, m)
	}
	if status, _, m := e.Token(t, clientCredentials("scope", "mcp:tools"), agent); status != 400 || m["error"] != "invalid_scope" {
		t.Errorf("agent-1 asking for mcp:tools: %d %v", status, m)
	}
	// alice is still let in, and gets mcp:tools but not the client's mcp:admin.
	ts := e.login(t, e.publicClient(t), url.Values{"scope": {allScopes}})
	if _, claims := oauthtest.DecodeJWT(t, ts.Access); claims["scope"] != "mcp:tools" {
		t.Errorf("alice's scope %v", claims["scope"])
	}
}

func TestClientCredentialsConfigRefused(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	hash := clients.HashSecret("x")
	for name, tc := range map[string]struct {
		config string
		want   []string
	}{
		"external mode": {"authorization_server https://idp.example\n\t\tclient a.1 {\n\t\t\tsecret_hash " + hash + "\n\t\t}",
			[]string{"with an external authorization server", " client"}},
		"resource not declared": {"client a.1 {\n\t\t\tsecret_hash " + hash + "\n\t\t\tresources /other\n\t\t}", []string{"client a.1", `"/other" is not a resource`}},
		"scope of no resource":  {"client a.1 {\n\t\t\tsecret_hash " + hash + "\n\t\t\tscopes mcp:delete\n\t\t}", []string{"client a.1", `"mcp:delete"`}},
		"allow an unknown client": {"client a.1 {\n\t\t\tsecret_hash " + hash + "\n\t\t}\n\t\tallow clients a.2",
			[]string{`"a.2": no client with this id is configured`}},
		"grant to an unknown client": {"grant_scope mcp:tools to clients a.2", []string{`"a.2": no client with this id is configured`}},
		"lifetime beyond key rotation": {"client a.1 {\n\t\t\tsecret_hash " + hash + "\n\t\t\taccess_token_lifetime 1000d\n\t\t}",
			[]string{"client a.1: access_token_lifetime"}},
	} {
		t.Run(name, func(t *testing.T) {
			config := tc.config
			if !strings.HasPrefix(config, "authorization_server") {
				config = usersUpstream() + "\n\t\t" + config
			}
			assertConfigLoads(t, asSite(t, storagePath, logDir, config), tc.want)
		})
	}
}

func TestClientCredentialsListedByAdmin(t *testing.T) {
	e := startMachineClients(t, "")
	resp, err := http.Get("http://" + adminAddr + "/mcp_auth/clients")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var list []map[string]any
	if err := json.Unmarshal(body, &list); err != nil {
		t.Fatalf("%s", body)
	}
	methods := map[string]string{}
	for _, c := range list {
		if c["configured"] == true {
			methods[c["client_id"].(string)] = c["token_endpoint_auth_method"].(string)
			if c["client_id"] == "agent-1" && fmt.Sprint(c["scopes"]) != "[mcp:tools]" {
				t.Errorf("agent-1 listed with scopes %v", c["scopes"])
			}
		}
	}
	want := map[string]string{"agent-1": "client_secret_basic", "signer.uri": "private_key_jwt", "signer.inline": "private_key_jwt"}
	if fmt.Sprint(methods) != fmt.Sprint(want) {
		t.Errorf("configured clients %v, want %v", methods, want)
	}
	if strings.Contains(string(body), clients.HashSecret(e.secret)) || strings.Contains(string(body), "secret_hash") {
		t.Errorf("the listing shows a secret or its hash: %s", body)
	}
}

// An operator ends a machine client's tokens as a user's: by its id as
// the subject, or by deleting the client.
func TestClientCredentialsRevokedByOperator(t *testing.T) {
	e := startMachineClients(t, "")
	agent := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("agent-1", e.secret)}}
	newToken := func() string {
		_, _, m := e.Token(t, clientCredentials(), agent)
		at, _ := m["access_token"].(string)
		if at == "" || e.mcpStatus(t, at) != 200 {
			t.Fatalf("no working token: %v", m)
		}
		return at
	}
	for _, path := range []string{"/mcp_auth/grants?sub=agent-1", "/mcp_auth/clients/agent-1"} {
		at := newToken()
		req, _ := http.NewRequest(http.MethodDelete, "http://"+adminAddr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !regexp.MustCompile(`"revoked":[1-9]`).Match(body) {
			t.Errorf("DELETE %s: %d %s", path, resp.StatusCode, body)
		}
		if got := e.mcpStatus(t, at); got != 401 {
			t.Errorf("after DELETE %s the token gets %d", path, got)
		}
	}
}

// README's Caddyfile for an agent adapts, its secret_hash included.
func TestClientCredentialsReadmeCaddyfile(t *testing.T) {
	h := adaptHandlerConfig(t, adaptMustAdapt(t, readmeCaddyfile(t, "## An agent without a user (client credentials)")))
	if len(h.Clients) != 2 || h.Clients[0].SecretHash == "" || h.Clients[1].JWKSURI == "" {
		t.Errorf("clients %+v", h.Clients)
	}
}
