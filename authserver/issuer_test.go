package authserver

import (
	"testing"
)

func TestCanonicalIssuer(t *testing.T) {
	for in, want := range map[string]string{
		"https://mcp.example.com":       "https://mcp.example.com",
		"https://MCP.Example.com/":      "https://mcp.example.com",
		"HTTPS://mcp.example.com:443":   "https://mcp.example.com",
		"https://mcp.example.com:8443":  "https://mcp.example.com:8443",
		"https://mcp.example.com/t1/":   "https://mcp.example.com/t1",
		"http://localhost:9080":         "http://localhost:9080",
		"http://127.0.0.1:80":           "http://127.0.0.1",
		"http://[::1]:8080":             "http://[::1]:8080",
		"http://app.localhost":          "http://app.localhost",
		"https://[2001:db8::1]:443/x/y": "https://[2001:db8::1]/x/y",
	} {
		if got, err := CanonicalIssuer(in); err != nil || got != want {
			t.Errorf("CanonicalIssuer(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{
		"", "mcp.example.com", "/path", "http://mcp.example.com", "ftp://mcp.example.com",
		"https://mcp.example.com?x=1", "https://mcp.example.com#f", "https://user@mcp.example.com",
		"http://10.0.0.1", "https://", "mailto:a@b.c",
	} {
		if got, err := CanonicalIssuer(bad); err == nil {
			t.Errorf("CanonicalIssuer(%q) = %q, want an error", bad, got)
		}
	}
}

// New refuses an issuer that CanonicalIssuer refuses.
func TestNewRefusesABadIssuer(t *testing.T) {
	if _, err := New(Config{Issuer: "http://h.example"}); err == nil {
		t.Error("accepted")
	}
}
