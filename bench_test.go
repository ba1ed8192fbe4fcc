package mcpauth

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// BenchmarkGateVsReverseProxy measures the same requests to the same
// backend through plain reverse_proxy and through mcp_auth +
// reverse_proxy, in one Caddy, so the figures are directly comparable,
// with the state in Badger and in Redis. The token is the same on every
// request, as with a connected MCP client, and the requests are what such
// a client sends: a JSON-RPC request not yet in a session, then one in its
// session (Mcp-Session-Id), then a tools/call of a tool with a tool_scope
// in its session. Plain
// reverse_proxy passes the same requests on.
func BenchmarkGateVsReverseProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	b.Cleanup(backend.Close)
	b.Run("badger", func(b *testing.B) {
		storagePath := b.TempDir()
		benchGateVsReverseProxy(b, backend.Listener.Addr().String(), globalOptions(storagePath, filepath.Join(b.TempDir(), "caddy.log")),
			func() *tokens.KeyRing { return testRing(b, storagePath) })
	})
	b.Run("redis", func(b *testing.B) {
		url := redistest.Start(b)
		benchGateVsReverseProxy(b, backend.Listener.Addr().String(), redisGlobalOptions(url, "", filepath.Join(b.TempDir(), "caddy.log")),
			func() *tokens.KeyRing {
				store, err := storage.OpenRedis(b.Context(), url, "", nil)
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { _ = store.Close() })
				ring, err := tokens.NewKeyRing(b.Context(), store, tokens.KeyRingConfig{RotationPeriod: 30 * 24 * time.Hour, RetainPeriod: 30 * 24 * time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				return ring
			})
	})
}

// benchGateVsReverseProxy runs the requests against a Caddy with the
// global options global; ring opens the key ring that Caddy signs with.
func benchGateVsReverseProxy(b *testing.B, backend, global string, ring func() *tokens.KeyRing) {
	plain, gated := freeport.One(), freeport.One()
	gatedAddr := fmt.Sprintf("http://localhost:%d", gated)
	startCaddy(b, global+fmt.Sprintf(`
http://localhost:%d {
	reverse_proxy %s
}
%s {
	mcp_auth {
		resource /mcp {
			scopes mcp:tools
		}
		tool_scope search mcp:search
		%s
	}
	reverse_proxy %s
}
`, plain, backend, gatedAddr, usersUpstream(), backend))

	token, err := ring().MintAccessToken(tokens.AccessClaims{
		Issuer: gatedAddr, Subject: "user-alice", Audience: tokens.Audience{gatedAddr + "/mcp"},
		ClientID: "client-1", Scope: "mcp:tools mcp:search",
	}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	ping := []byte(`{"jsonrpc":"2.0","id":2,"method":"ping"}`)
	toolsCall := []byte(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search","arguments":{"query":"caddy mcp auth","limit":10}}}`)

	run := func(b *testing.B, url, session string, body []byte) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+token)
				req.Header.Set("Content-Type", "application/json")
				if session != "" {
					req.Header.Set("Mcp-Session-Id", session)
				}
				resp, err := client.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
		})
	}
	const session = "4f1d2c9e-6b7a-4d3e-9a8b-0c1d2e3f4a5b"
	for _, tc := range []struct {
		name    string
		session string
		body    []byte
	}{
		{"no_session", "", ping},
		{"session", session, ping},
		{"tools_call", session, toolsCall},
	} {
		b.Run(tc.name+"/reverse_proxy", func(b *testing.B) {
			run(b, fmt.Sprintf("http://localhost:%d/mcp", plain), tc.session, tc.body)
		})
		b.Run(tc.name+"/mcp_auth+reverse_proxy", func(b *testing.B) {
			run(b, gatedAddr+"/mcp", tc.session, tc.body)
		})
	}
}
