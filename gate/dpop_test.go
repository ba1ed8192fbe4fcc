package gate

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"testing"
)

// The URL a proof's htu is compared with is the one the client used: the
// scheme of its connection (or what Caddy trusts a proxy to say), the Host
// it sent, and the path exactly as sent, neither cleaned nor decoded.
func TestRequestURLIsWhatTheClientUsed(t *testing.T) {
	g := &Gate{}
	behindProxy := &Gate{cfg: Config{RequestScheme: func(*http.Request) string { return "https" }}}
	for _, tc := range []struct {
		name      string
		g         *Gate
		tls       bool
		host, uri string
		want      string
	}{
		{"https", g, true, "mcp.example.com", "/mcp?x=1", "https://mcp.example.com/mcp"},
		{"plain http", g, false, "127.0.0.1:8080", "/mcp", "http://127.0.0.1:8080/mcp"},
		{"scheme from a trusted proxy", behindProxy, false, "mcp.example.com", "/mcp", "https://mcp.example.com/mcp"},
		{"path as sent", g, true, "mcp.example.com", "/a/../MCP/%6d", "https://mcp.example.com/a/../MCP/%6d"},
		{"absolute-form target", g, true, "mcp.example.com", "https://mcp.example.com/mcp?q", "https://mcp.example.com/mcp"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, err := url.ParseRequestURI(tc.uri)
			if err != nil {
				t.Fatal(err)
			}
			r := &http.Request{Method: http.MethodPost, Host: tc.host, RequestURI: tc.uri, URL: u}
			if tc.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := tc.g.requestURL(r); got != tc.want {
				t.Fatalf("requestURL = %q, want %q", got, tc.want)
			}
		})
	}
}
