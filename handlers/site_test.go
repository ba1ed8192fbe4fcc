package handlers

import (
	"net/http"
	"net/url"
	"strings"
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

func TestResourceFor(t *testing.T) {
	s, err := NewSite(SiteConfig{
		Issuer:    "https://h.example",
		Resources: []ResourceConfig{{Path: "/a/mcp"}, {Path: "/b/mcp/"}, {Path: "/b/mcp/admin"}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/a/mcp":             "https://h.example/a/mcp",
		"/a/mcp/x":           "https://h.example/a/mcp",
		"/b/mcp":             "https://h.example/b/mcp",
		"/b/mcp/admin":       "https://h.example/b/mcp/admin",
		"/b/mcp/admin/tools": "https://h.example/b/mcp/admin",
		"/b/mcpx":            "https://h.example/b/mcp", // as `handle /b/mcp*` routes it
		"/B/MCP/Admin":       "https://h.example/b/mcp/admin",
		"/a/mcp/b/mcp":       "https://h.example/a/mcp",
		"/":                  "https://h.example/a/mcp",
		"/other":             "https://h.example/a/mcp",
		"/a":                 "https://h.example/a/mcp",
		"/a/sse":             "https://h.example/a/mcp",
		"/A/Messages":        "https://h.example/a/mcp",
		"/ax/mcp":            "https://h.example/a/mcp", // no shared segment: the default
		"/bx/mcp":            "https://h.example/a/mcp",
		"/b/mcpx/admin":      "https://h.example/b/mcp",
		"/b/":                "https://h.example/b/mcp", // /b/mcp leads to /b/mcp/admin
		"/B/sse":             "https://h.example/b/mcp",
	} {
		p, err := gatePath(&url.URL{Path: path})
		if err != nil {
			t.Fatalf("gatePath(%q): %v", path, err)
		}
		got := ""
		if res := s.ResourceFor(p); res != nil {
			got = res.URL
		}
		if got != want {
			t.Errorf("ResourceFor(%q) = %q, want %q", path, got, want)
		}
	}
	// A path as close to two resources, neither leading to the other,
	// belongs to neither.
	forked, err := NewSite(SiteConfig{Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "/notes/mcp"}, {Path: "/notes/admin/mcp"}, {Path: "/todos/mcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]*Resource{
		"/notes/sse": nil, "/notes/": nil, "/notes/admin/sse": forked.Resources[1], "/notes/mcp/x": forked.Resources[0],
		"/todos/sse": forked.Resources[2], "/other": forked.Resources[0],
	} {
		if res := forked.ResourceFor(path); res != want {
			t.Errorf("ResourceFor(%q) = %v, want %v", path, res, want)
		}
	}
	// One resource guards every path, as it always has.
	single, err := NewSite(SiteConfig{Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "/a/mcp"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/", "/a", "/b/mcp", "/a/sse"} {
		if res := single.ResourceFor(path); res != single.Resources[0] {
			t.Errorf("single resource: ResourceFor(%q) = %v", path, res)
		}
	}
	if got := s.Resources[1].MetadataURL; got != "https://h.example/.well-known/oauth-protected-resource/b/mcp" {
		t.Errorf("metadata URL %q", got)
	}
}

func TestNewSiteRejects(t *testing.T) {
	for name, cfg := range map[string]SiteConfig{
		"duplicate resource": {Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "/mcp"}, {Path: "/mcp/"}}},
		"resource by case":   {Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "/mcp"}, {Path: "/MCP"}}},
		"encoded resource":   {Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "/a%2Fmcp"}}},
		"dot segment":        {Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "/a/../mcp"}}},
		"empty segment":      {Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "/a//mcp"}}},
		"glob scope rule":    {Issuer: "https://h.example", ScopeRules: []ScopeRule{{Pattern: "/a/*/admin", Scopes: []string{"x"}}}},
		"encoded scope rule": {Issuer: "https://h.example", ScopeRules: []ScopeRule{{Pattern: "/a%2fadmin*", Scopes: []string{"x"}}}},
		"dotted scope rule":  {Issuer: "https://h.example", ScopeRules: []ScopeRule{{Pattern: "/mcp/../admin", Scopes: []string{"x"}}}},
		"relative rule":      {Issuer: "https://h.example", ScopeRules: []ScopeRule{{Pattern: "admin*", Scopes: []string{"x"}}}},
		"relative path":      {Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "mcp"}}},
		"wildcard path":      {Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "/mcp*"}}},
		"well-known path":    {Issuer: "https://h.example", Resources: []ResourceConfig{{Path: "/.well-known/x"}}},
		"bad issuer":         {Issuer: "http://h.example"},
	} {
		if _, err := NewSite(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestIsToken68(t *testing.T) {
	for s, want := range map[string]bool{
		"abc.DEF-_~+/": true, "abc==": true, "abc=d": false, "a b": false, "": false, "===": false,
		"a\"b": false, strings.Repeat("a", 9000): false,
	} {
		if got := isToken68(s); got != want {
			t.Errorf("isToken68(%.20q) = %v, want %v", s, got, want)
		}
	}
}

func TestSessionID(t *testing.T) {
	for name, tc := range map[string]struct {
		values []string
		want   string
		ok     bool
	}{
		"none":         {nil, "", true},
		"one":          {[]string{"3f2a-Z~!"}, "3f2a-Z~!", true},
		"empty":        {[]string{""}, "", true},
		"512 bytes":    {[]string{strings.Repeat("a", 512)}, strings.Repeat("a", 512), true},
		"513 bytes":    {[]string{strings.Repeat("a", 513)}, "", false},
		"two":          {[]string{"", "x"}, "", false},
		"space":        {[]string{"a b"}, "", false},
		"non-ASCII":    {[]string{"caf\u00e9"}, "", false},
		"control byte": {[]string{"a\x7f"}, "", false},
	} {
		h := http.Header{}
		for _, v := range tc.values {
			h.Add("Mcp-Session-Id", v)
		}
		got, err := sessionID(h)
		if got != tc.want || (err == nil) != tc.ok {
			t.Errorf("%s: %q, %v", name, got, err)
		}
		if tc.ok && tc.want == "" && len(h.Values("Mcp-Session-Id")) != 0 {
			t.Errorf("%s: an empty header is left for the backend", name)
		}
	}
}
