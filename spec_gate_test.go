package mcpauth

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v3/jwa"
	"github.com/lestrrat-go/jwx/v3/jws"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Black-box tests for rows of the acceptance list (spec-requirements.md),
// named after the row IDs: the bearer gate and CORS.

// challengeParam returns a parameter of a Bearer challenge.
func challengeParam(challenge, name string) string {
	m := regexp.MustCompile(`(?:^|[ ,])` + name + `="([^"]*)"`).FindStringSubmatch(challenge)
	if m == nil {
		return ""
	}
	return m[1]
}

func TestSpec_Gate(t *testing.T) {
	client, ring, _ := startGate(t, "")
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
		status, hdr, _ := oauthtest.Get(t, client, iss+"/other", oauthtest.Bearer(string(tok)))
		ch := hdr.Get("WWW-Authenticate")
		if status != http.StatusUnauthorized || !strings.Contains(ch, `error="invalid_token"`) || challengeParam(ch, "resource_metadata") == "" {
			t.Errorf("unknown kid: %d %q, want 401 invalid_token with resource_metadata", status, ch)
		}
	})

	t.Run("RS-14_EverySessionRequestAuthenticated", func(t *testing.T) {
		token := mint(t, ring, nil)
		h := oauthtest.MCPHeader(token)
		status, hdr, body := oauthtest.Do(t, client, http.MethodPost, iss+"/mcp", h,
			[]byte(oauthtest.MCPInitialize))
		session := hdr.Get("Mcp-Session-Id")
		if status != http.StatusOK || session == "" {
			t.Fatalf("initialize: %d session %q %.200s", status, session, body)
		}
		noToken := http.Header{"Mcp-Session-Id": {session}, "Mcp-Protocol-Version": {"2025-06-18"},
			"Content-Type": {"application/json"}, "Accept": {"application/json, text/event-stream"}}
		for _, method := range []string{http.MethodPost, http.MethodDelete} {
			status, hdr, _ := oauthtest.Do(t, client, method, iss+"/mcp", noToken, []byte(`{"jsonrpc":"2.0","id":2,"method":"tools/list"}`))
			if status != http.StatusUnauthorized || challengeParam(hdr.Get("WWW-Authenticate"), "resource_metadata") == "" {
				t.Errorf("%s with a session and no token: %d %q, want 401", method, status, hdr.Get("WWW-Authenticate"))
			}
		}
		withToken := noToken.Clone()
		withToken.Set("Authorization", "Bearer "+token)
		if status, _, body := oauthtest.Do(t, client, http.MethodPost, iss+"/mcp", withToken, []byte(`{"jsonrpc":"2.0","id":3,"method":"tools/list"}`)); status != http.StatusOK {
			t.Errorf("the session with its token: %d %.200s", status, body)
		}
	})

	preflight := func(t *testing.T, path string) http.Header {
		t.Helper()
		status, hdr, _ := oauthtest.Do(t, client, http.MethodOptions, iss+path, http.Header{
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
		status, hdr, _ := oauthtest.Do(t, client, http.MethodPost, iss+"/token", http.Header{"Origin": {"http://localhost:6274"},
			"Content-Type": {"application/x-www-form-urlencoded"}}, []byte("grant_type=password&client_id=x"))
		if status == http.StatusForbidden || hdr.Get("Access-Control-Allow-Origin") != "http://localhost:6274" || hdr.Get("Set-Cookie") != "" {
			t.Errorf("POST /token from a browser origin: %d %v", status, hdr)
		}
	})
}
