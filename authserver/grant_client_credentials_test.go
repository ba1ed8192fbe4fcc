package authserver

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage/storagetest"
)

// machineServer serves testConfig with a second resource, /files (scope
// files:read), and the machine clients list, as rules adjusts it.
func machineServer(t *testing.T, list []MachineClient, rules func(*Config)) *oauthtest.Server {
	t.Helper()
	cfg := testConfig(t, storagetest.Badger(t))
	resources, err := gate.NewResources(testIssuer, []gate.ResourceConfig{
		{Path: "/mcp", Scopes: []string{"mcp:read", "mcp:write"}}, {Path: "/files", Scopes: []string{"files:read"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Resources, cfg.MachineClients = resources, list
	if rules != nil {
		rules(&cfg)
	}
	return serve(t, newServer(t, cfg))
}

// The grant issues what the client may have: the requested scopes it may
// have (all of them when it asks for none), for the indicated resource (its
// first, or the site's default), with its sub and client_id, and nothing
// else.
func TestClientCredentialsGrant(t *testing.T) {
	as := machineServer(t, []MachineClient{
		{ID: "reader", SecretHash: clients.HashSecret("reader-secret"), Scopes: []string{"mcp:read", "files:read"}, AccessTokenLifetime: 5 * time.Minute},
		{ID: "files.only", SecretHash: clients.HashSecret("files-secret"), Resources: []string{"/files"}},
	}, nil)
	reader := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("reader", "reader-secret")}}
	files := http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth("files.only", "files-secret")}}
	for _, tc := range []struct {
		name            string
		header          http.Header
		form            url.Values
		status          int
		code            oauth.ErrorCode
		aud, scope, sub string
	}{
		{name: "all it may have", header: reader, form: url.Values{}, status: 200, aud: testResource, scope: "mcp:read", sub: "reader"},
		{name: "secret in the body", form: url.Values{"client_id": {"reader"}, "client_secret": {"reader-secret"}}, status: 200, aud: testResource, scope: "mcp:read", sub: "reader"},
		{name: "requested and others dropped", header: reader, form: url.Values{"scope": {"mcp:write mcp:read unknown"}}, status: 200, aud: testResource, scope: "mcp:read", sub: "reader"},
		// offline_access asks for a refresh token, which this grant never
		// gives: dropped, as at /authorize, not refused.
		{name: "offline_access alone", header: reader, form: url.Values{"scope": {"offline_access"}}, status: 200, aud: testResource, scope: "mcp:read", sub: "reader"},
		{name: "offline_access with a scope", header: reader, form: url.Values{"scope": {"offline_access mcp:read"}}, status: 200, aud: testResource, scope: "mcp:read", sub: "reader"},
		{name: "another resource", header: reader, form: url.Values{"resource": {testIssuer + "/files"}}, status: 200, aud: testIssuer + "/files", scope: "files:read", sub: "reader"},
		{name: "the client's default resource", header: files, form: url.Values{}, status: 200, aud: testIssuer + "/files", scope: "files:read", sub: "files.only"},
		{name: "a resource it may not use", header: files, form: url.Values{"resource": {testResource}}, status: 400, code: oauth.InvalidTarget},
		{name: "a resource of no one", header: reader, form: url.Values{"resource": {"https://other.example/mcp"}}, status: 400, code: oauth.InvalidTarget},
		{name: "only scopes it may not have", header: reader, form: url.Values{"scope": {"mcp:write"}}, status: 400, code: oauth.InvalidScope},
		{name: "scope of the other resource", header: reader, form: url.Values{"scope": {"files:read"}}, status: 400, code: oauth.InvalidScope},
		{name: "secret in the body and in Basic", header: reader, form: url.Values{"client_secret": {"reader-secret"}}, status: 400, code: oauth.InvalidRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.form.Set("grant_type", "client_credentials")
			status, hdr, m := as.Token(t, tc.form, tc.header)
			if status != tc.status || (tc.code != "" && m["error"] != string(tc.code)) {
				t.Fatalf("%d %v, want %d %s", status, m, tc.status, tc.code)
			}
			if hdr.Get("Cache-Control") != "no-store" {
				t.Error("no Cache-Control: no-store")
			}
			if tc.code != "" {
				return
			}
			if m["refresh_token"] != nil || m["id_token"] != nil || m["token_type"] != "Bearer" || m["scope"] != tc.scope {
				t.Errorf("response %v", m)
			}
			_, claims := oauthtest.DecodeJWT(t, m["access_token"].(string))
			if claims["sub"] != tc.sub || claims["client_id"] != tc.sub || claims["aud"] != tc.aud || claims["scope"] != tc.scope {
				t.Errorf("claims %v", claims)
			}
			if want := map[string]float64{"reader": 300, "files.only": 3600}[tc.sub]; m["expires_in"] != want {
				t.Errorf("expires_in %v, want %v", m["expires_in"], want)
			}
		})
	}

	t.Run("registered clients may not use it", func(t *testing.T) {
		c := confidentialClient(t, as)
		status, _, m := as.Token(t, url.Values{"grant_type": {"client_credentials"}}, basic(c))
		if status != 400 || m["error"] != string(oauth.UnauthorizedClient) {
			t.Errorf("%d %v", status, m)
		}
	})
}

// Without machine clients the grant does not exist.
func TestClientCredentialsGrantOff(t *testing.T) {
	as := serve(t, newServer(t, testConfig(t, storagetest.Badger(t))))
	c := confidentialClient(t, as)
	if status, _, m := as.Token(t, url.Values{"grant_type": {"client_credentials"}}, basic(c)); status != 400 || m["error"] != string(oauth.UnsupportedGrantType) {
		t.Errorf("%d %v", status, m)
	}
}

// allow and grant_scope entries for clients admit clients only, and rules
// about users never admit a client.
func TestClientCredentialsPolicy(t *testing.T) {
	list := []MachineClient{
		{ID: "a.1", SecretHash: clients.HashSecret("a-secret")},
		{ID: "b.1", SecretHash: clients.HashSecret("b-secret")},
	}
	for _, tc := range []struct {
		name  string
		rules func(*Config)
		// want is each client's scope, or its error.
		want map[string]string
	}{
		{"no rules", nil, map[string]string{"a.1": "mcp:read mcp:write", "b.1": "mcp:read mcp:write"}},
		{"allow names one client", func(c *Config) { c.Allow.Clients = []string{"a.1"} },
			map[string]string{"a.1": "mcp:read mcp:write", "b.1": "unauthorized_client"}},
		{"everyone is users", func(c *Config) {
			c.Allow = AllowList{Everyone: true, Subjects: []string{"a.1"}, Clients: []string{"b.1"}}
		}, map[string]string{"a.1": "unauthorized_client", "b.1": "mcp:read mcp:write"}},
		{"grants to users and to a client", func(c *Config) {
			c.ScopeGrants = []ScopeGrant{
				{Scopes: []string{"mcp:read"}, To: AllowList{Everyone: true, Subjects: []string{"b.1"}}},
				{Scopes: []string{"mcp:write"}, To: AllowList{Clients: []string{"b.1"}}},
			}
		}, map[string]string{"a.1": "", "b.1": "mcp:write"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			as := machineServer(t, list, tc.rules)
			for id, want := range tc.want {
				secret := strings.TrimSuffix(id, ".1") + "-secret"
				status, _, m := as.Token(t, url.Values{"grant_type": {"client_credentials"}},
					http.Header{"Authorization": {"Basic " + oauthtest.BasicAuth(id, secret)}})
				got, _ := m["scope"].(string)
				if status != 200 {
					got, _ = m["error"].(string)
				}
				if got != want {
					t.Errorf("%s: %d %v, want %q", id, status, m, want)
				}
			}
		})
	}
}

// A configuration that could not work is refused when the server is built.
func TestMachineClientsRefused(t *testing.T) {
	hash := clients.HashSecret("s")
	for _, tc := range []struct {
		name string
		list []MachineClient
		want string
	}{
		{"no credentials", []MachineClient{{ID: "a.1"}}, "exactly one of"},
		{"two credentials", []MachineClient{{ID: "a.1", SecretHash: hash, JWKSURI: "https://a.example/jwks"}}, "exactly one of"},
		{"plain secret", []MachineClient{{ID: "a.1", SecretHash: "hunter2"}}, "hex SHA-256"},
		{"upper-case hash", []MachineClient{{ID: "a.1", SecretHash: strings.ToUpper(hash)}}, "hex SHA-256"},
		{"http jwks_uri", []MachineClient{{ID: "a.1", JWKSURI: "http://a.example/jwks"}}, "https URL"},
		{"jwks with a private key", []MachineClient{{ID: "a.1", JWKS: []byte(`{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}`)}}, "public keys only"},
		{"URL id", []MachineClient{{ID: "https://a.example/c", SecretHash: hash}}, "may only hold"},
		{"user-like id", []MachineClient{{ID: "github:1", SecretHash: hash}}, "may only hold"},
		{"registered-like id", []MachineClient{{ID: "AAAAAAAAAAAAAAAAAAAAAA", SecretHash: hash}}, "dynamically registered"},
		{"twice", []MachineClient{{ID: "a.1", SecretHash: hash}, {ID: "a.1", SecretHash: hash}}, "configured twice"},
		{"unknown resource", []MachineClient{{ID: "a.1", SecretHash: hash, Resources: []string{"/nope"}}}, "not a resource"},
		{"scope of no usable resource", []MachineClient{{ID: "a.1", SecretHash: hash, Resources: []string{"/files"}, Scopes: []string{"mcp:read"}}}, "not a scope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t, storagetest.Badger(t))
			cfg.Resources = append(cfg.Resources, &gate.Resource{URL: testIssuer + "/files", Path: "/files", Scopes: []string{"files:read"}})
			cfg.MachineClients = tc.list
			if _, err := New(cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one about %q", err, tc.want)
			}
		})
	}
}

// A machine client that proves a DPoP key gets a DPoP token bound to it,
// as with every grant (RFC 9449 section 5).
func TestClientCredentialsWithProof(t *testing.T) {
	as := machineServer(t, []MachineClient{{ID: "a.1", SecretHash: clients.HashSecret("a-secret")}}, nil)
	key := oauthtest.NewDPoPKey(t)
	header := tokenProof(t, key, "")
	header.Set("Authorization", "Basic "+oauthtest.BasicAuth("a.1", "a-secret"))
	ts := as.Exchange(t, url.Values{"grant_type": {"client_credentials"}}, header)
	if ts.TokenType != "DPoP" || boundTo(t, ts.Access) != key.JKT || ts.Refresh != "" {
		t.Fatalf("token_type %q bound to %q (refresh %q), want DPoP bound to %q", ts.TokenType, boundTo(t, ts.Access), ts.Refresh, key.JKT)
	}
}
