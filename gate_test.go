package mcpauth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwk"
	"github.com/lestrrat-go/jwx/v3/jws"
	"github.com/modelcontextprotocol/go-sdk/mcp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
	"golang.org/x/oauth2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/demomcp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// echoBackend answers with the request headers it received, as JSON.
func echoBackend(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(r.Header)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// gatedSite is a Caddyfile with the MCP demo backend at /mcp and an echo
// backend for everything else, both behind one top-level mcp_auth.
func gatedSite(t *testing.T, storagePath, logDir, extra string) string {
	mcpBackend := httptest.NewServer(demomcp.Handler())
	t.Cleanup(mcpBackend.Close)
	echo := echoBackend(t)
	return globalOptions(storagePath, filepath.Join(logDir, "caddy.log")) + fmt.Sprintf(`
%s {
	log {
		output file %s
	}
	mcp_auth {
		resource /mcp {
			scopes mcp:tools
		}
		require_scope /admin/* admin
		%s
		%s
	}
	handle /mcp* {
		reverse_proxy %s {
			header_up X-MCP-User {http.auth.user.id}
			header_up X-MCP-Email {http.auth.user.email}
			header_up X-MCP-Client {http.auth.client_id}
			header_up X-MCP-Scopes {http.auth.scopes}
		}
	}
	handle {
		reverse_proxy %s {
			header_up X-MCP-User {http.auth.user.id}
		}
	}
}
`, siteAddr(), filepath.Join(logDir, "access.log"), usersUpstream(), extra, mcpBackend.Listener.Addr(), echo.Listener.Addr())
}

// startGate starts gatedSite with extra inside its mcp_auth block and
// returns a client for it, a key ring that signs tokens it trusts and the
// folder of its logs.
func startGate(t *testing.T, extra string) (client *http.Client, ring *tokens.KeyRing, logDir string) {
	t.Helper()
	storagePath := t.TempDir()
	logDir = t.TempDir()
	startCaddy(t, gatedSite(t, storagePath, logDir, extra))
	return mustTLSClient(t), testRing(t, storagePath), logDir
}

// mint signs an access token with the running Caddy's keys.
func mint(t *testing.T, ring *tokens.KeyRing, mutate func(*tokens.AccessClaims)) string {
	t.Helper()
	c := tokens.AccessClaims{
		Issuer:   siteAddr(),
		Subject:  "user-alice",
		Audience: tokens.Audience{siteAddr() + "/mcp"},
		ClientID: "client-1",
		Scope:    "mcp:tools",
		Email:    "alice@example.com",
	}
	if mutate != nil {
		mutate(&c)
	}
	tok, err := ring.MintAccessToken(c, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// discoveringHandler is the OAuth side of a real MCP client: on a 401 it
// follows the challenge to the resource metadata and the authorization
// server metadata, checks them as the SDK does, and then obtains a token
// for the advertised resource (minted with the server's keys, standing in
// for the authorization-code flow).
type discoveringHandler struct {
	t         *testing.T
	http      *http.Client
	ring      *tokens.KeyRing
	token     string
	authorize atomic.Int32
}

func (h *discoveringHandler) TokenSource(context.Context) (oauth2.TokenSource, error) {
	if h.token == "" {
		return nil, nil
	}
	return oauth2.StaticTokenSource(&oauth2.Token{AccessToken: h.token, TokenType: "Bearer"}), nil
}

func (h *discoveringHandler) Authorize(ctx context.Context, req *http.Request, resp *http.Response) error {
	defer resp.Body.Close()
	h.authorize.Add(1)
	if resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("unexpected %s", resp.Status)
	}
	challenges, err := oauthex.ParseWWWAuthenticate(resp.Header.Values("WWW-Authenticate"))
	if err != nil || len(challenges) != 1 {
		return fmt.Errorf("challenge %q: %v", resp.Header.Values("WWW-Authenticate"), err)
	}
	ch := challenges[0]
	if _, hasError := ch.Params["error"]; hasError {
		return fmt.Errorf("a request without a token must not get an error code: %v", ch.Params)
	}
	prm, err := oauthex.GetProtectedResourceMetadata(ctx, ch.Params["resource_metadata"], req.URL.String(), h.http)
	if err != nil {
		return err
	}
	if len(prm.AuthorizationServers) != 1 {
		return fmt.Errorf("authorization_servers = %v", prm.AuthorizationServers)
	}
	issuer := prm.AuthorizationServers[0]
	var asm struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	status, _, body := oauthtest.Get(h.t, h.http, issuer+"/.well-known/oauth-authorization-server", nil)
	if status != http.StatusOK || json.Unmarshal(body, &asm) != nil || asm.Issuer != issuer {
		return fmt.Errorf("authorization server metadata: %d %s", status, body)
	}
	h.token = mint(h.t, h.ring, func(c *tokens.AccessClaims) {
		c.Issuer = issuer
		c.Audience = tokens.Audience{prm.Resource}
		c.Scope = ch.Params["scope"]
	})
	return nil
}

func TestGateWithRealMCPClient(t *testing.T) {
	client, ring, logDir := startGate(t, "")

	oauth := &discoveringHandler{t: t, http: client, ring: ring}
	mcpClient := mcp.NewClient(&mcp.Implementation{Name: "gate-test", Version: "0"}, nil)
	cs, err := mcpClient.Connect(t.Context(), &mcp.StreamableClientTransport{
		Endpoint:     siteAddr() + "/mcp",
		HTTPClient:   client,
		OAuthHandler: oauth,
	}, nil)
	if err != nil {
		t.Fatalf("connecting through the gate: %v", err)
	}
	defer cs.Close()
	if n := oauth.authorize.Load(); n != 1 {
		t.Errorf("client ran discovery %d times, want once", n)
	}

	var names []string
	for tool, err := range cs.Tools(t.Context(), nil) {
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, tool.Name)
	}
	if !slices.Contains(names, "whoami") {
		t.Fatalf("tools = %v", names)
	}
	id := callWhoami(t, cs)
	want := demomcp.Identity{User: "user-alice", Email: "alice@example.com", Client: "client-1", Scopes: "mcp:tools"}
	if id != want {
		t.Errorf("backend saw identity %+v, want %+v", id, want)
	}
	sum, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "add", Arguments: map[string]any{"a": 2, "b": 40}})
	if err != nil || sum.IsError || !strings.Contains(fmt.Sprint(sum.StructuredContent), "42") {
		t.Errorf("add: %v %v", err, sum)
	}

	// Every request needs the token, even one in an established session.
	status, hdr, _ := oauthtest.Do(t, client, http.MethodGet, siteAddr()+"/mcp", http.Header{"Mcp-Session-Id": {cs.ID()}, "Accept": {"text/event-stream"}}, nil)
	if status != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") == "" {
		t.Errorf("session without token: %d %v", status, hdr)
	}
	assertNoSecretsLogged(t, logDir, oauth.token)
}

func TestGateDiscoveryDocuments(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	startCaddy(t, gatedSite(t, storagePath, logDir, ""))
	client := mustTLSClient(t)
	iss := siteAddr()

	status, hdr, _ := oauthtest.Do(t, client, http.MethodPost, iss+"/mcp", nil, []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
	wantChallenge := `Bearer realm="mcp", resource_metadata="` + iss + `/.well-known/oauth-protected-resource/mcp", scope="mcp:tools"`
	if status != http.StatusUnauthorized || hdr.Get("WWW-Authenticate") != wantChallenge {
		t.Fatalf("no token: %d %q, want 401 %q", status, hdr.Get("WWW-Authenticate"), wantChallenge)
	}

	for _, path := range []string{"/.well-known/oauth-protected-resource/mcp", "/.well-known/oauth-protected-resource"} {
		status, hdr, body := oauthtest.Get(t, client, iss+path, http.Header{"X-Forwarded-Host": {"evil.test"}, "X-Forwarded-Proto": {"http"}, "Origin": {"http://localhost:6274"}})
		var prm map[string]any
		if status != http.StatusOK || hdr.Get("Content-Type") != "application/json" || json.Unmarshal(body, &prm) != nil {
			t.Fatalf("%s: %d %s", path, status, body)
		}
		want := map[string]any{
			"resource":                 iss + "/mcp",
			"authorization_servers":    []any{iss},
			"scopes_supported":         []any{"mcp:tools"},
			"bearer_methods_supported": []any{"header"},
			// RFC 9728 section 2: DPoP-bound tokens are accepted too.
			"dpop_signing_alg_values_supported": []any{"ES256", "ES384", "EdDSA", "RS256", "PS256"},
		}
		if fmt.Sprint(prm) != fmt.Sprint(want) {
			t.Errorf("%s = %v, want %v", path, prm, want)
		}
		if hdr.Get("Access-Control-Allow-Origin") != "http://localhost:6274" {
			t.Errorf("%s: no CORS for browser clients: %v", path, hdr)
		}
	}

	var asm, oidc map[string]any
	for path, doc := range map[string]*map[string]any{"/.well-known/oauth-authorization-server": &asm, "/.well-known/openid-configuration": &oidc} {
		status, _, body := oauthtest.Get(t, client, iss+path, http.Header{"Host": {"evil.test"}})
		if status != http.StatusOK || json.Unmarshal(body, doc) != nil {
			t.Fatalf("%s: %d %s", path, status, body)
		}
	}
	if asm["issuer"] != iss || asm["jwks_uri"] != iss+"/jwks" || fmt.Sprint(asm) != fmt.Sprint(oidc) {
		t.Errorf("AS metadata %v, OIDC discovery %v", asm, oidc)
	}
	for k, v := range asm {
		if s, ok := v.(string); ok && strings.HasPrefix(s, "http") && !strings.HasPrefix(s, iss) {
			t.Errorf("%s = %q is not on the issuer's origin", k, s)
		}
	}

	status, hdr, body := oauthtest.Get(t, client, iss+"/jwks", nil)
	var jwks struct{ Keys []map[string]any }
	if status != http.StatusOK || json.Unmarshal(body, &jwks) != nil || len(jwks.Keys) < 2 {
		t.Fatalf("jwks: %d %s", status, body)
	}
	if ct := hdr.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("jwks content type %q", ct)
	}
	for _, k := range jwks.Keys {
		for _, private := range []string{"d", "p", "q", "dp", "dq", "qi", "k"} {
			if _, ok := k[private]; ok {
				t.Errorf("JWKS publishes private member %q", private)
			}
		}
		if k["kid"] == "" || k["alg"] != "ES256" || k["use"] != "sig" || k["kty"] != "EC" {
			t.Errorf("JWKS key %v", k)
		}
	}

	status, hdr, body = oauthtest.Do(t, client, http.MethodHead, iss+"/.well-known/oauth-authorization-server", nil, nil)
	if status != http.StatusOK || len(body) != 0 || hdr.Get("Content-Length") == "0" {
		t.Errorf("HEAD metadata: %d %v %q", status, hdr, body)
	}
	status, _, body = oauthtest.Do(t, client, http.MethodPost, iss+"/.well-known/oauth-protected-resource/mcp", nil, nil)
	if status != http.StatusMethodNotAllowed || !strings.Contains(string(body), `"error"`) {
		t.Errorf("POST metadata: %d %s", status, body)
	}

	status, hdr, _ = oauthtest.Do(t, client, http.MethodOptions, iss+"/mcp", http.Header{
		"Origin": {"http://localhost:6274"}, "Access-Control-Request-Method": {"POST"},
		"Access-Control-Request-Headers": {"authorization, content-type, mcp-protocol-version"},
	}, nil)
	if status != http.StatusNoContent || hdr.Get("Access-Control-Allow-Origin") != "http://localhost:6274" ||
		!strings.Contains(hdr.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Errorf("preflight: %d %v", status, hdr)
	}
	status, hdr, _ = oauthtest.Do(t, client, http.MethodPost, iss+"/mcp", http.Header{"Origin": {"http://localhost:6274"}}, nil)
	if status != http.StatusUnauthorized || !strings.Contains(hdr.Get("Access-Control-Expose-Headers"), "WWW-Authenticate") ||
		!strings.Contains(hdr.Get("Access-Control-Expose-Headers"), "Mcp-Session-Id") {
		t.Errorf("browser 401 must expose WWW-Authenticate: %d %v", status, hdr)
	}
}

func TestGateDecisions(t *testing.T) {
	client, ring, logDir := startGate(t, "")
	iss := siteAddr()
	prm := `resource_metadata="` + iss + `/.well-known/oauth-protected-resource/mcp"`

	valid := mint(t, ring, nil)
	admin := mint(t, ring, func(c *tokens.AccessClaims) { c.Scope = "mcp:tools admin" })
	idToken, _ := ring.Sign("JWT", tokens.AccessClaims{Issuer: iss, Subject: "user-alice", Audience: tokens.Audience{iss + "/mcp"},
		ClientID: "client-1", JWTID: "x", IssuedAt: time.Now().Unix(), Expiry: time.Now().Add(time.Hour).Unix()})
	expired, _ := ring.Sign(tokens.AccessTokenType, tokens.AccessClaims{Issuer: iss, Subject: "user-alice", Audience: tokens.Audience{iss + "/mcp"},
		ClientID: "client-1", JWTID: "y", IssuedAt: time.Now().Add(-2 * time.Hour).Unix(), Expiry: time.Now().Add(-time.Hour).Unix()})
	parts := strings.Split(valid, ".")
	sig := []byte(parts[2])
	sig[0] ^= 1 // still base64url: flips one bit of the signature
	flipped := parts[0] + "." + parts[1] + "." + string(sig)
	// A token a client wrongly puts in the URL ends up in Caddy's access
	// log with the request URI, like any request line; README documents
	// the log filter that removes it. It is kept apart from the tokens the
	// no-secrets check below looks for.
	inQuery := mint(t, ring, nil)
	noneHeader := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"at+jwt"}`))
	algNone := noneHeader + "." + parts[1] + "."

	cases := []struct {
		name      string
		path      string
		header    http.Header
		status    int
		challenge string // substring of WWW-Authenticate
	}{
		{"valid token", "/other", oauthtest.Bearer(valid), 200, ""},
		{"scheme is case-insensitive", "/other", http.Header{"Authorization": {"bEaReR " + valid}}, 200, ""},
		{"no token", "/other", nil, 401, prm},
		{"basic credentials", "/other", http.Header{"Authorization": {"Basic YWxpY2U6c2VjcmV0"}}, 401, prm},
		{"token in query is ignored", "/other?access_token=" + inQuery, nil, 401, prm},
		{"token in query and header", "/other?access_token=" + inQuery, oauthtest.Bearer(inQuery), 400, `error="invalid_request"`},
		{"two Authorization headers", "/other", http.Header{"Authorization": {"Bearer " + valid, "Bearer " + valid}}, 400, `error="invalid_request"`},
		{"garbage", "/other", oauthtest.Bearer("garbage"), 401, `error="invalid_token"`},
		{"not token68", "/other", oauthtest.Bearer("a.b.c d"), 401, `error="invalid_token"`},
		{"empty bearer", "/other", http.Header{"Authorization": {"Bearer "}}, 401, prm},
		{"oversized token", "/other", oauthtest.Bearer(strings.Repeat("a", 20000)), 401, `error="invalid_token"`},
		{"tampered signature", "/other", oauthtest.Bearer(flipped), 401, `error="invalid_token"`},
		{"alg none", "/other", oauthtest.Bearer(algNone), 401, `error="invalid_token"`},
		{"ID token (typ JWT)", "/other", oauthtest.Bearer(idToken), 401, `error="invalid_token"`},
		{"expired", "/other", oauthtest.Bearer(expired), 401, `error_description="token has expired"`},
		{"wrong audience", "/other", oauthtest.Bearer(mint(t, ring, func(c *tokens.AccessClaims) { c.Audience = tokens.Audience{iss + "/other"} })), 401, `error="invalid_token"`},
		{"origin as audience", "/mcp", oauthtest.Bearer(mint(t, ring, func(c *tokens.AccessClaims) { c.Audience = tokens.Audience{iss} })), 401, `error="invalid_token"`},
		{"wrong issuer", "/other", oauthtest.Bearer(mint(t, ring, func(c *tokens.AccessClaims) { c.Issuer = "https://evil.test" })), 401, `error="invalid_token"`},
		{"missing scope", "/admin/users", oauthtest.Bearer(valid), 403, `error="insufficient_scope"`},
		{"required scope present", "/admin/users", oauthtest.Bearer(admin), 200, ""},
		{"path traversal to admin", "/mcp/../admin/users", oauthtest.Bearer(valid), 400, `error="invalid_request"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := oauthtest.Get(t, client, iss+tc.path, tc.header)
			if status != tc.status {
				t.Fatalf("status %d, want %d (%s)", status, tc.status, body)
			}
			if got := hdr.Get("WWW-Authenticate"); !strings.Contains(got, tc.challenge) {
				t.Errorf("WWW-Authenticate %q lacks %q", got, tc.challenge)
			}
			if tc.status == 401 && !strings.Contains(hdr.Get("WWW-Authenticate"), prm) {
				t.Errorf("401 without resource_metadata: %q", hdr.Get("WWW-Authenticate"))
			}
		})
	}

	t.Run("insufficient scope names the needed scope", func(t *testing.T) {
		_, hdr, _ := oauthtest.Get(t, client, iss+"/admin/users", oauthtest.Bearer(valid))
		want := `Bearer realm="mcp", error="insufficient_scope", error_description="token lacks a required scope", resource_metadata="` + iss + `/.well-known/oauth-protected-resource/mcp", scope="admin"`
		if got := hdr.Get("WWW-Authenticate"); got != want {
			t.Errorf("got %q\nwant %q", got, want)
		}
	})

	t.Run("backend gets identity, not the token or spoofed headers", func(t *testing.T) {
		h := oauthtest.Bearer(valid)
		h.Set("X-MCP-User", "admin")
		h.Set("X-Forwarded-User", "admin")
		h.Set("X-Remote-User", "admin")
		status, _, body := oauthtest.Get(t, client, iss+"/other", h)
		var seen http.Header
		if status != 200 || json.Unmarshal(body, &seen) != nil {
			t.Fatalf("%d %s", status, body)
		}
		if seen.Get("Authorization") != "" || strings.Contains(string(body), valid) {
			t.Errorf("token passed through to the backend: %s", body)
		}
		if seen.Values("X-Mcp-User")[0] != "user-alice" || len(seen.Values("X-Mcp-User")) != 1 {
			t.Errorf("X-MCP-User = %v", seen.Values("X-Mcp-User"))
		}
		if seen.Get("X-Forwarded-User") != "" || seen.Get("X-Remote-User") != "" {
			t.Errorf("spoofed identity headers reached the backend: %s", body)
		}
	})

	t.Run("oversized header", func(t *testing.T) {
		status, _, _ := oauthtest.Get(t, client, iss+"/other", http.Header{"Authorization": {"Bearer " + strings.Repeat("a", 2<<20)}})
		if status < 400 || status >= 500 {
			t.Errorf("status %d, want a 4xx", status)
		}
	})
	assertNoSecretsLogged(t, logDir, valid, admin, flipped)
}

// assertNoSecretsLogged checks every log line Caddy wrote (debug level and
// access logs) for tokens and Authorization values.
func assertNoSecretsLogged(t *testing.T, logDir string, secrets ...string) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(logDir, "*.log"))
	if len(files) < 2 {
		t.Fatalf("expected the server and access logs in %s, found %v", logDir, files)
	}
	lines := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines += strings.Count(string(b), "\n")
		for _, s := range secrets {
			// A JWT's signature part alone identifies it.
			sig := s[strings.LastIndex(s, ".")+1:]
			if strings.Contains(string(b), sig) {
				t.Errorf("%s contains a token", filepath.Base(f))
			}
		}
		if strings.Contains(strings.ToLower(string(b)), "bearer ey") {
			t.Errorf("%s contains an Authorization value", filepath.Base(f))
		}
	}
	if lines == 0 {
		t.Errorf("no log lines written; the check proves nothing")
	}
}

func TestIdentityTokenForBackend(t *testing.T) {
	client, ring, _ := startGate(t, "identity_audience https://backend.internal")
	token := mint(t, ring, nil)

	h := oauthtest.Bearer(token)
	h.Set("X-MCP-Identity", "forged")
	status, _, body := oauthtest.Get(t, client, siteAddr()+"/other", h)
	var seen http.Header
	if status != 200 || json.Unmarshal(body, &seen) != nil {
		t.Fatalf("%d %s", status, body)
	}
	identity := seen.Get("X-Mcp-Identity")
	if identity == "" || identity == "forged" || len(seen.Values("X-Mcp-Identity")) != 1 {
		t.Fatalf("X-MCP-Identity = %v", seen.Values("X-Mcp-Identity"))
	}
	// The backend verifies it with the published keys.
	_, _, jwks := oauthtest.Get(t, client, siteAddr()+"/jwks", nil)
	set, err := jwk.Parse(jwks)
	if err != nil {
		t.Fatal(err)
	}
	payload, err := jws.Verify([]byte(identity), jws.WithKeySet(set))
	if err != nil {
		t.Fatalf("identity token does not verify with /jwks: %v", err)
	}
	msg, _ := jws.Parse([]byte(identity))
	if typ, _ := msg.Signatures()[0].ProtectedHeaders().Type(); typ != "identity+jwt" {
		t.Errorf("typ %q", typ)
	}
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	if claims["aud"] != "https://backend.internal" || claims["sub"] != "user-alice" || claims["iss"] != siteAddr() || claims["email"] != "alice@example.com" {
		t.Errorf("identity claims %v", claims)
	}
	if exp, iat := claims["exp"].(float64), claims["iat"].(float64); exp-iat > 300 {
		t.Errorf("identity token lives %vs", exp-iat)
	}
	// It is no access token.
	if status, _, _ := oauthtest.Get(t, client, siteAddr()+"/other", oauthtest.Bearer(identity)); status != http.StatusUnauthorized {
		t.Errorf("identity token accepted as an access token: %d", status)
	}
}

// An MCP session belongs to the user who started it: a leaked session id
// is useless with another user's token (session hijacking).
func TestSessionsAreBoundToTheirUser(t *testing.T) {
	client, ring, _ := startGate(t, "")
	alice := mint(t, ring, nil)
	bob := mint(t, ring, func(c *tokens.AccessClaims) { c.Subject = "user-bob" })

	cs, err := mcp.NewClient(&mcp.Implementation{Name: "session-test", Version: "0"}, nil).Connect(t.Context(),
		&mcp.StreamableClientTransport{Endpoint: siteAddr() + "/mcp", HTTPClient: client, OAuthHandler: staticToken(alice)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	session := cs.ID()
	if session == "" {
		t.Fatal("the backend started no session")
	}
	list := []byte(`{"jsonrpc":"2.0","id":7,"method":"tools/list"}`)
	header := func(token string) http.Header {
		h := oauthtest.Bearer(token)
		h.Set("Mcp-Session-Id", session)
		h.Set("Mcp-Protocol-Version", cs.InitializeResult().ProtocolVersion)
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "application/json, text/event-stream")
		return h
	}
	if status, _, body := oauthtest.Do(t, client, http.MethodPost, siteAddr()+"/mcp", header(bob), list); status != http.StatusNotFound {
		t.Errorf("bob with alice's session: %d %s, want 404", status, body)
	}
	if status, _, body := oauthtest.Do(t, client, http.MethodPost, siteAddr()+"/mcp", header(alice), list); status != http.StatusOK {
		t.Errorf("alice with her session: %d %s", status, body)
	}
	if _, err := cs.CallTool(t.Context(), &mcp.CallToolParams{Name: "whoami", Arguments: map[string]any{}}); err != nil {
		t.Errorf("alice's client: %v", err)
	}
}
