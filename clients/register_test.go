package clients

import (
	"encoding/json"
	"errors"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

var testNow = time.Unix(1_800_000_000, 0)

// Registration bodies as real MCP clients send them (client-quirks.md §5,
// and the clients' source where it is public).
var realClientBodies = []struct {
	name       string
	body       string
	wantMethod string
	wantGrants []string
}{
	{
		// Hosted backend (python-httpx); asks for client_secret_post
		// (anthropics/claude-ai-mcp#1043).
		name: "Claude.ai",
		body: `{"client_name":"Claude","redirect_uris":["https://claude.ai/api/mcp/auth_callback"],
			"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
			"token_endpoint_auth_method":"client_secret_post"}`,
		wantMethod: AuthMethodClientSecretPost,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		name: "Claude.com callback",
		body: `{"client_name":"Claude","redirect_uris":["https://claude.com/api/mcp/auth_callback"],
			"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
			"token_endpoint_auth_method":"client_secret_post","scope":" offline_access"}`,
		wantMethod: AuthMethodClientSecretPost,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		name: "Claude Code",
		body: `{"client_name":"Claude Code (my-server)","redirect_uris":["http://localhost:53682/callback"],
			"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
			"token_endpoint_auth_method":"none"}`,
		wantMethod: AuthMethodNone,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		// ChatGPT registers once per connector and authenticates with
		// Basic (spec-requirements CG-09); it relies on the RFC default.
		name: "ChatGPT",
		body: `{"client_name":"ChatGPT","redirect_uris":["https://chatgpt.com/connector_platform_oauth_redirect",
			"https://chatgpt.com/connector/oauth/abc123"],"grant_types":["authorization_code","refresh_token"],
			"response_types":["code"]}`,
		wantMethod: AuthMethodClientSecretBasic,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		name: "ChatGPT explicit basic",
		body: `{"client_name":"ChatGPT","redirect_uris":["https://chatgpt.com/connector/oauth/abc123"],
			"token_endpoint_auth_method":"client_secret_basic","scope":"openid email profile"}`,
		wantMethod: AuthMethodClientSecretBasic,
		wantGrants: []string{"authorization_code"},
	},
	{
		// microsoft/vscode src/vs/base/common/oauth.ts fetchDynamicRegistration.
		name: "VS Code",
		body: `{"client_name":"Visual Studio Code","client_uri":"https://code.visualstudio.com",
			"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
			"redirect_uris":["https://insiders.vscode.dev/redirect","https://vscode.dev/redirect",
			"http://127.0.0.1/","http://127.0.0.1:33418/"],
			"token_endpoint_auth_method":"none","application_type":"native"}`,
		wantMethod: AuthMethodNone,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		// Older VS Code builds add the device grant and localhost URIs
		// whatever the server advertises.
		name: "VS Code (older)",
		body: `{"client_name":"Visual Studio Code","client_uri":"https://code.visualstudio.com",
			"grant_types":["authorization_code","refresh_token","urn:ietf:params:oauth:grant-type:device_code"],
			"response_types":["code"],"redirect_uris":["https://insiders.vscode.dev/redirect",
			"https://vscode.dev/redirect","http://localhost/","http://127.0.0.1/",
			"http://localhost:33418/","http://127.0.0.1:33418/"],"token_endpoint_auth_method":"none"}`,
		wantMethod: AuthMethodNone,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		// Three redirects in one body; rejecting one rejects all
		// (erp-mafia/accounted PR #2225).
		name: "Cursor",
		body: `{"client_name":"Cursor","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback",
			"https://www.cursor.com/agents/mcp/oauth/callback","http://localhost:8787/callback"],
			"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
			"token_endpoint_auth_method":"none"}`,
		wantMethod: AuthMethodNone,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		name: "MCP Inspector",
		body: `{"client_name":"MCP Inspector","client_uri":"https://github.com/modelcontextprotocol/inspector",
			"redirect_uris":["http://localhost:6274/oauth/callback","http://localhost:6274/oauth/callback/debug"],
			"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
			"token_endpoint_auth_method":"none","scope":"openid offline_access"}`,
		wantMethod: AuthMethodNone,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		// Historic Inspector/SDK: no method, then client_secret_post at
		// the token endpoint (inspector#726). Gets a secret, works either way.
		name: "MCP Inspector (historic, no method)",
		body: `{"client_name":"MCP Inspector","redirect_uris":["http://localhost:6274/oauth/callback"],
			"grant_types":["authorization_code","refresh_token"],"response_types":["code"]}`,
		wantMethod: AuthMethodClientSecretBasic,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		name: "mcp-remote",
		body: `{"redirect_uris":["http://127.0.0.1:3334/oauth/callback"],"token_endpoint_auth_method":"none",
			"grant_types":["authorization_code","refresh_token"],"response_types":["code"],
			"client_name":"MCP CLI Proxy","client_uri":"https://github.com/modelcontextprotocol/mcp-cli",
			"software_id":"2e6dc280-f3c3-4e01-99a7-8181dbd1d23d","software_version":"0.1.29"}`,
		wantMethod: AuthMethodNone,
		wantGrants: []string{"authorization_code", "refresh_token"},
	},
	{
		name:       "minimal public (spec PUB)",
		body:       `{"redirect_uris":["http://127.0.0.1:5555/cb"],"token_endpoint_auth_method":"none"}`,
		wantMethod: AuthMethodNone,
		wantGrants: []string{"authorization_code"},
	},
	{
		name: "unknown members ignored",
		body: `{"redirect_uris":["https://client.test/cb"],"foo":"bar","application_type":"native",
			"contacts":["a@b.test"],"x_vendor":{"nested":[1,2]},"client_name":null}`,
		wantMethod: AuthMethodClientSecretBasic,
		wantGrants: []string{"authorization_code"},
	},
}

func TestNewRegistrationRealClients(t *testing.T) {
	idRE := regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)
	for _, tc := range realClientBodies {
		t.Run(tc.name, func(t *testing.T) {
			c, secret, err := NewRegistration([]byte(tc.body), testNow, 0)
			if err != nil {
				t.Fatalf("NewRegistration: %v", err)
			}
			if c.TokenEndpointAuthMethod != tc.wantMethod {
				t.Errorf("method = %q, want %q", c.TokenEndpointAuthMethod, tc.wantMethod)
			}
			if !slices.Equal(c.GrantTypes, tc.wantGrants) {
				t.Errorf("grant_types = %q, want %q", c.GrantTypes, tc.wantGrants)
			}
			if c.AllowsGrant(GrantRefreshToken) != slices.Contains(tc.wantGrants, GrantRefreshToken) || !c.AllowsGrant(GrantAuthorizationCode) {
				t.Errorf("AllowsGrant disagrees with grant_types %q", c.GrantTypes)
			}
			if !slices.Equal(c.ResponseTypes, []string{"code"}) {
				t.Errorf("response_types = %q", c.ResponseTypes)
			}
			if !idRE.MatchString(c.ClientID) {
				t.Errorf("client_id %q is not 128-bit base64url", c.ClientID)
			}
			if c.IssuedAt != testNow.Unix() || c.Metadata {
				t.Errorf("IssuedAt = %d, Metadata = %v", c.IssuedAt, c.Metadata)
			}
			if tc.wantMethod == AuthMethodNone {
				if secret != "" || c.SecretHash != "" || c.SecretExpiresAt != 0 {
					t.Errorf("public client got a secret (%q, hash %q, exp %d)", secret, c.SecretHash, c.SecretExpiresAt)
				}
			} else {
				if len(secret) != 43 || c.SecretHash != HashSecret(secret) {
					t.Errorf("secret %q / hash %q: want a 256-bit secret stored as its hash", secret, c.SecretHash)
				}
				if !c.CheckSecret(secret) {
					t.Error("CheckSecret(issued secret) = false")
				}
			}
			// Every redirect URI the client sent must be registered and
			// usable, or the client fails later with "invalid redirect".
			var sent struct {
				RedirectURIs []string `json:"redirect_uris"`
			}
			if err := json.Unmarshal([]byte(tc.body), &sent); err != nil {
				t.Fatal(err)
			}
			for _, u := range sent.RedirectURIs {
				if got, ok := MatchRedirectURI(c.RedirectURIs, u); !ok || got != u {
					t.Errorf("sent redirect %q does not match the registration", u)
				}
			}
		})
	}
}

func TestNewRegistrationMetadata(t *testing.T) {
	body := `{"client_name":"  Example  ","client_uri":"https://client.test","logo_uri":"http://client.test/logo.png",
		"tos_uri":"https://client.test/tos","policy_uri":"javascript:alert(1)","scope":"  read   write read ",
		"software_id":"sw","software_version":"1.2","redirect_uris":["https://client.test/cb","https://client.test/cb"],
		"grant_types":["authorization_code","authorization_code"]}`
	c, _, err := NewRegistration([]byte(body), testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := &Client{
		ClientID: c.ClientID, SecretHash: c.SecretHash,
		ClientName: "Example", ClientURI: "https://client.test", TOSURI: "https://client.test/tos",
		RedirectURIs: []string{"https://client.test/cb"}, GrantTypes: []string{"authorization_code"},
		ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: AuthMethodClientSecretBasic, ApplicationType: ApplicationWeb,
		Scope: "read write", SoftwareID: "sw", SoftwareVersion: "1.2", IssuedAt: testNow.Unix(),
	}
	gotJSON, _ := json.Marshal(c)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("client =\n%s\nwant\n%s", gotJSON, wantJSON)
	}
}

func TestNewRegistrationErrors(t *testing.T) {
	const ru = `"redirect_uris":["https://client.test/cb"]`
	tests := []struct {
		name, body string
		code       oauth.ErrorCode
	}{
		{"not JSON", `redirect_uris=x`, oauth.InvalidClientMetadata},
		{"array", `[{"redirect_uris":["https://client.test/cb"]}]`, oauth.InvalidClientMetadata},
		{"string", `"hello"`, oauth.InvalidClientMetadata},
		{"null", `null`, oauth.InvalidClientMetadata},
		{"empty", ``, oauth.InvalidClientMetadata},
		{"truncated", `{"redirect_uris":["https://client.test/cb"]`, oauth.InvalidClientMetadata},
		{"trailing garbage", `{` + ru + `} {}`, oauth.InvalidClientMetadata},
		{"too large", `{` + ru + `,"x":"` + strings.Repeat("a", MaxRegistrationBytes) + `"}`, oauth.InvalidClientMetadata},

		{"no redirect_uris", `{"client_name":"x"}`, oauth.InvalidRedirectURI},
		{"empty redirect_uris", `{"redirect_uris":[]}`, oauth.InvalidRedirectURI},
		{"redirect_uris string", `{"redirect_uris":"https://client.test/cb"}`, oauth.InvalidRedirectURI},
		{"redirect_uris numbers", `{"redirect_uris":[1]}`, oauth.InvalidRedirectURI},
		{"null redirect", `{"redirect_uris":[null]}`, oauth.InvalidRedirectURI},
		{"http non-loopback", `{"redirect_uris":["http://evil.test/cb"]}`, oauth.InvalidRedirectURI},
		{"fragment", `{"redirect_uris":["https://a/cb#x"]}`, oauth.InvalidRedirectURI},
		{"javascript", `{"redirect_uris":["javascript:alert(1)"]}`, oauth.InvalidRedirectURI},
		{"data", `{"redirect_uris":["data:text/html,x"]}`, oauth.InvalidRedirectURI},
		{"file", `{"redirect_uris":["file:///etc/passwd"]}`, oauth.InvalidRedirectURI},
		{"wildcard", `{"redirect_uris":["https://*.a/cb"]}`, oauth.InvalidRedirectURI},
		{"one bad among good", `{"redirect_uris":["https://client.test/cb","http://evil.test/cb"]}`, oauth.InvalidRedirectURI},
		{"too many", `{"redirect_uris":[` + strings.Repeat(`"https://client.test/cb",`, maxRedirectURIs) + `"https://client.test/x"]}`, oauth.InvalidRedirectURI},
		{"too long together", `{"redirect_uris":["https://client.test/` + strings.Repeat("a", 1500) + `","https://client.test/` + strings.Repeat("b", 1500) +
			`","https://client.test/` + strings.Repeat("c", 1500) + `"]}`, oauth.InvalidRedirectURI},
		{"record too large", `{` + ru + `,"client_uri":"https://client.test/` + strings.Repeat("a", 1900) + `","logo_uri":"https://client.test/` + strings.Repeat("b", 1900) +
			`","tos_uri":"https://client.test/` + strings.Repeat("c", 1900) + `","policy_uri":"https://client.test/` + strings.Repeat("d", 1900) +
			`","client_name":"` + strings.Repeat("一", maxNameLength) + `"}`, oauth.InvalidClientMetadata},

		{"implicit", `{` + ru + `,"grant_types":["implicit"]}`, oauth.InvalidClientMetadata},
		{"password", `{` + ru + `,"grant_types":["authorization_code","password"]}`, oauth.InvalidClientMetadata},
		{"client_credentials", `{` + ru + `,"grant_types":["client_credentials"]}`, oauth.InvalidClientMetadata},
		{"jwt-bearer", `{` + ru + `,"grant_types":["authorization_code","urn:ietf:params:oauth:grant-type:jwt-bearer"]}`, oauth.InvalidClientMetadata},
		{"refresh only", `{` + ru + `,"grant_types":["refresh_token"]}`, oauth.InvalidClientMetadata},
		{"device only", `{` + ru + `,"grant_types":["urn:ietf:params:oauth:grant-type:device_code"]}`, oauth.InvalidClientMetadata},
		{"empty grant_types", `{` + ru + `,"grant_types":[]}`, oauth.InvalidClientMetadata},
		{"grant_types string", `{` + ru + `,"grant_types":"authorization_code"}`, oauth.InvalidClientMetadata},
		{"response token", `{` + ru + `,"response_types":["token"]}`, oauth.InvalidClientMetadata},
		{"response id_token token", `{` + ru + `,"response_types":["code","id_token token"]}`, oauth.InvalidClientMetadata},
		{"empty response_types", `{` + ru + `,"response_types":[]}`, oauth.InvalidClientMetadata},
		{"method private_key_jwt", `{` + ru + `,"token_endpoint_auth_method":"private_key_jwt","jwks_uri":"https://client.test/jwks"}`, oauth.InvalidClientMetadata},
		{"method client_secret_jwt", `{` + ru + `,"token_endpoint_auth_method":"client_secret_jwt"}`, oauth.InvalidClientMetadata},
		{"method unknown", `{` + ru + `,"token_endpoint_auth_method":"tls_client_auth"}`, oauth.InvalidClientMetadata},
		{"method number", `{` + ru + `,"token_endpoint_auth_method":1}`, oauth.InvalidClientMetadata},
		{"jwks and jwks_uri", `{` + ru + `,"jwks_uri":"https://client.test/jwks","jwks":{"keys":[]}}`, oauth.InvalidClientMetadata},
		{"name too long", `{` + ru + `,"client_name":"` + strings.Repeat("n", maxNameLength+1) + `"}`, oauth.InvalidClientMetadata},
		{"name control char", `{` + ru + `,"client_name":"Good\u0000App"}`, oauth.InvalidClientMetadata},
		{"name newline", `{` + ru + `,"client_name":"Good\nApp"}`, oauth.InvalidClientMetadata},
		{"name bidi override", `{` + ru + `,"client_name":"\u202emoc.elgoog"}`, oauth.InvalidClientMetadata},
		{"name not string", `{` + ru + `,"client_name":["x"]}`, oauth.InvalidClientMetadata},
		{"client_uri not string", `{` + ru + `,"client_uri":5}`, oauth.InvalidClientMetadata},
		{"scope bad char", `{` + ru + `,"scope":"read \"write\""}`, oauth.InvalidClientMetadata},
		{"scope non-ASCII", `{` + ru + `,"scope":"lecture écriture"}`, oauth.InvalidClientMetadata},
		{"scope backslash", `{` + ru + `,"scope":"a\\b"}`, oauth.InvalidClientMetadata},
		{"scope not string", `{` + ru + `,"scope":["read"]}`, oauth.InvalidClientMetadata},
		{"scope too long", `{` + ru + `,"scope":"` + strings.Repeat("s", maxScopeLength+1) + `"}`, oauth.InvalidClientMetadata},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, secret, err := NewRegistration([]byte(tc.body), testNow, 0)
			var re *oauth.Error
			if !errors.As(err, &re) {
				t.Fatalf("NewRegistration = %+v, %q, %v; want a *oauth.Error", c, secret, err)
			}
			if re.Code != tc.code {
				t.Errorf("code = %q (%s), want %q", re.Code, re.Description, tc.code)
			}
			if re.Error() != string(re.Code)+": "+re.Description {
				t.Errorf("Error() = %q", re.Error())
			}
			if re.Description == "" || len(re.Description) > 200 {
				t.Errorf("description %q: want a short explanation", re.Description)
			}
			if strings.Contains(re.Description, "evil.test") || strings.Contains(re.Description, "javascript") {
				t.Errorf("description %q echoes input", re.Description)
			}
		})
	}
}

func TestNewRegistrationSecretLifetime(t *testing.T) {
	body := []byte(`{"redirect_uris":["https://client.test/cb"],"token_endpoint_auth_method":"client_secret_post"}`)
	c, secret, err := NewRegistration(body, testNow, 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if want := testNow.Add(30 * 24 * time.Hour).Unix(); c.SecretExpiresAt != want {
		t.Errorf("SecretExpiresAt = %d, want %d", c.SecretExpiresAt, want)
	}
	if c.SecretExpired(testNow) || !c.SecretExpired(testNow.Add(31*24*time.Hour)) {
		t.Error("SecretExpired disagrees with SecretExpiresAt")
	}
	if !c.CheckSecret(secret) {
		t.Error("CheckSecret(secret) = false")
	}

	pub, _, err := NewRegistration([]byte(`{"redirect_uris":["https://client.test/cb"],"token_endpoint_auth_method":"none"}`), testNow, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if pub.SecretExpiresAt != 0 || pub.SecretExpired(testNow.Add(1000*time.Hour)) {
		t.Errorf("public client SecretExpiresAt = %d, want 0", pub.SecretExpiresAt)
	}

	never, _, err := NewRegistration(body, testNow, 0)
	if err != nil {
		t.Fatal(err)
	}
	if never.SecretExpiresAt != 0 || never.SecretExpired(testNow.Add(100*365*24*time.Hour)) {
		t.Errorf("SecretExpiresAt = %d with lifetime 0, want 0 (never)", never.SecretExpiresAt)
	}
}

func TestNewRegistrationUnique(t *testing.T) {
	body := []byte(`{"redirect_uris":["https://client.test/cb"]}`)
	ids, secrets := map[string]bool{}, map[string]bool{}
	for range 100 {
		c, s, err := NewRegistration(body, testNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		if ids[c.ClientID] || secrets[s] {
			t.Fatal("client_id or secret repeated")
		}
		ids[c.ClientID], secrets[s] = true, true
	}
}

func TestCheckSecret(t *testing.T) {
	const secret = "s3cr3t+%:/with-odd-chars"
	c := &Client{SecretHash: HashSecret(secret)}
	if got := HashSecret(secret); len(got) != 64 || strings.ToLower(got) != got {
		t.Fatalf("HashSecret = %q, want 64 lower-case hex digits", got)
	}
	if HashSecret("abc") != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Error("HashSecret is not hex SHA-256")
	}
	for _, tc := range []struct {
		c      *Client
		secret string
		want   bool
	}{
		{c, secret, true},
		{c, secret + "x", false},
		{c, strings.ToUpper(secret), false},
		{c, "", false},
		{c, c.SecretHash, false}, // the hash is not the secret
		{&Client{}, "", false},   // public clients have no secret
		{&Client{}, secret, false},
	} {
		if got := tc.c.CheckSecret(tc.secret); got != tc.want {
			t.Errorf("CheckSecret(%q) = %v, want %v", tc.secret, got, tc.want)
		}
	}
}

func TestRegistrationResponse(t *testing.T) {
	t.Run("confidential", func(t *testing.T) {
		body := []byte(`{"client_name":"Claude","redirect_uris":["https://claude.ai/api/mcp/auth_callback"],
			"grant_types":["authorization_code","refresh_token"],"token_endpoint_auth_method":"client_secret_post"}`)
		c, secret, err := NewRegistration(body, testNow, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := json.Marshal(RegistrationResponse(c, secret))
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{
			"client_id":                  c.ClientID,
			"client_secret":              secret,
			"client_id_issued_at":        float64(testNow.Unix()),
			"client_secret_expires_at":   float64(testNow.Add(time.Hour).Unix()),
			"redirect_uris":              []any{"https://claude.ai/api/mcp/auth_callback"},
			"grant_types":                []any{"authorization_code", "refresh_token"},
			"response_types":             []any{"code"},
			"token_endpoint_auth_method": "client_secret_post",
			"application_type":           "web",
			"client_name":                "Claude",
		}
		gotJSON, _ := json.Marshal(got)
		wantJSON, _ := json.Marshal(want)
		if string(gotJSON) != string(wantJSON) {
			t.Errorf("response =\n%s\nwant\n%s", gotJSON, wantJSON)
		}
		if strings.Contains(string(raw), c.SecretHash) || strings.Contains(string(raw), "secret_hash") {
			t.Error("response leaks the secret hash")
		}
	})
	t.Run("confidential never expiring", func(t *testing.T) {
		c, secret, err := NewRegistration([]byte(`{"redirect_uris":["https://client.test/cb"]}`), testNow, 0)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(RegistrationResponse(c, secret))
		// client_secret_expires_at is REQUIRED with a secret, 0 = never.
		if !strings.Contains(string(raw), `"client_secret_expires_at":0`) ||
			!strings.Contains(string(raw), `"token_endpoint_auth_method":"client_secret_basic"`) {
			t.Errorf("response %s lacks client_secret_expires_at:0 or the defaulted method", raw)
		}
	})
	t.Run("public", func(t *testing.T) {
		c, secret, err := NewRegistration([]byte(`{"redirect_uris":["http://127.0.0.1:5555/cb"],"token_endpoint_auth_method":"none"}`), testNow, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(RegistrationResponse(c, secret))
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatal(err)
		}
		for _, k := range []string{"client_secret", "client_secret_expires_at"} {
			if _, ok := got[k]; ok {
				t.Errorf("public client response has %s: %s", k, raw)
			}
		}
		for _, k := range []string{"client_id", "client_id_issued_at", "redirect_uris", "grant_types", "response_types", "token_endpoint_auth_method"} {
			if _, ok := got[k]; !ok {
				t.Errorf("response lacks %s: %s", k, raw)
			}
		}
	})
}

// application_type (MCP SEP-837): "web" needs https redirect URIs,
// "native" takes loopback, private-use and claimed https ones, and a
// client that leaves it out is "web" held only to the general rules, as
// the MCP clients that leave it out register loopback redirects.
func TestNewRegistrationApplicationType(t *testing.T) {
	for _, tc := range []struct {
		name, body, want string
		code             oauth.ErrorCode
	}{
		{"omitted, loopback (Claude Code)", `{"redirect_uris":["http://localhost:53177/callback"]}`, "web", ""},
		{"omitted, mixed (Cursor)", `{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","https://www.cursor.com/agents/mcp/oauth/callback","http://localhost:8787/callback"]}`, "web", ""},
		{"native, loopback", `{"application_type":"native","redirect_uris":["http://127.0.0.1:9/cb"]}`, "native", ""},
		{"native, mixed", `{"application_type":"native","redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback","https://www.cursor.com/agents/mcp/oauth/callback","http://localhost:8787/callback"]}`, "native", ""},
		{"web, https", `{"application_type":"web","redirect_uris":["https://claude.ai/api/mcp/auth_callback"]}`, "web", ""},
		{"web, loopback", `{"application_type":"web","redirect_uris":["https://client.test/cb","http://127.0.0.1:9/cb"]}`, "", oauth.InvalidRedirectURI},
		{"web, private-use", `{"application_type":"web","redirect_uris":["cursor://x/cb"]}`, "", oauth.InvalidRedirectURI},
		{"unknown type", `{"application_type":"spa","redirect_uris":["https://client.test/cb"]}`, "", oauth.InvalidClientMetadata},
		{"not a string", `{"application_type":1,"redirect_uris":["https://client.test/cb"]}`, "", oauth.InvalidClientMetadata},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, secret, err := NewRegistration([]byte(tc.body), testNow, 0)
			if tc.code != "" {
				var oerr *oauth.Error
				if !errors.As(err, &oerr) || oerr.Code != tc.code {
					t.Fatalf("err = %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.ApplicationType != tc.want || RegistrationResponse(c, secret).ApplicationType != tc.want {
				t.Errorf("application_type stored %q, echoed %q, want %q", c.ApplicationType, RegistrationResponse(c, secret).ApplicationType, tc.want)
			}
		})
	}
}

// A grant type the server offers besides the code and refresh grants may
// be registered where it is offered, and only there; spelled exactly.
func TestNewRegistrationOfferedGrants(t *testing.T) {
	const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	body := []byte(`{"redirect_uris":["https://client.test/cb"],"grant_types":["authorization_code","` + jwtBearer + `"]}`)
	if _, _, err := NewRegistration(body, testNow, 0); err == nil {
		t.Error("a grant not offered was registered")
	}
	c, _, err := NewRegistration(body, testNow, 0, jwtBearer)
	if err != nil || !c.AllowsGrant(jwtBearer) || !c.AllowsGrant(GrantAuthorizationCode) {
		t.Errorf("offered grant: %v %v", c, err)
	}
	upper := []byte(`{"redirect_uris":["https://client.test/cb"],"grant_types":["authorization_code","` + strings.ToUpper(jwtBearer) + `"]}`)
	if _, _, err := NewRegistration(upper, testNow, 0, jwtBearer); err == nil {
		t.Error("the grant in another case was registered")
	}
}
