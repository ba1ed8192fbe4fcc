package mcpauth

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// BenchmarkGateVsReverseProxy measures the same request to the same backend
// through plain reverse_proxy and through mcp_auth + reverse_proxy, in one
// Caddy, so the two figures are directly comparable. The token is the same
// on every request, as with a connected MCP client, and both requests carry
// it: plain reverse_proxy simply passes it on.
func BenchmarkGateVsReverseProxy(b *testing.B) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	}))
	b.Cleanup(backend.Close)
	storagePath := b.TempDir()
	plain, gated := freePort(), freePort()
	gatedAddr := fmt.Sprintf("http://localhost:%d", gated)
	startCaddy(b, globalOptions(storagePath, filepath.Join(b.TempDir(), "caddy.log"))+fmt.Sprintf(`
http://localhost:%d {
	reverse_proxy %s
}
%s {
	mcp_auth {
		resource /mcp
		%s
	}
	reverse_proxy %s
}
`, plain, backend.Listener.Addr(), gatedAddr, usersUpstream(), backend.Listener.Addr()))

	ring := testRing(b, storagePath)
	token, err := ring.MintAccessToken(tokens.AccessClaims{
		Issuer: gatedAddr, Subject: "user-alice", Audience: tokens.Audience{gatedAddr + "/mcp"},
		ClientID: "client-1", Scope: "mcp:tools",
	}, time.Hour)
	if err != nil {
		b.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

	run := func(b *testing.B, url, authorization string) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				req, _ := http.NewRequest(http.MethodPost, url, nil)
				req.Header.Set("Authorization", authorization)
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
	b.Run("reverse_proxy", func(b *testing.B) {
		run(b, fmt.Sprintf("http://localhost:%d/mcp", plain), "Bearer "+token)
	})
	b.Run("mcp_auth+reverse_proxy", func(b *testing.B) {
		run(b, gatedAddr+"/mcp", "Bearer "+token)
	})
}
