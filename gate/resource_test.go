package gate

import (
	"net/url"
	"testing"
)

// mustResources returns the resources of https://h.example at paths; none
// is the whole origin.
func mustResources(t testing.TB, paths ...string) Resources {
	t.Helper()
	var declared []ResourceConfig
	for _, p := range paths {
		declared = append(declared, ResourceConfig{Path: p})
	}
	rs, err := NewResources("https://h.example", declared)
	if err != nil {
		t.Fatal(err)
	}
	return rs
}

func TestResourceFor(t *testing.T) {
	rs := mustResources(t, "/a/mcp", "/b/mcp/", "/b/mcp/admin")
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
		if res := rs.For(p); res != nil {
			got = res.URL
		}
		if got != want {
			t.Errorf("For(%q) = %q, want %q", path, got, want)
		}
	}
	// A path as close to two resources, neither leading to the other,
	// belongs to neither.
	forked := mustResources(t, "/notes/mcp", "/notes/admin/mcp", "/todos/mcp")
	for path, want := range map[string]*Resource{
		"/notes/sse": nil, "/notes/": nil, "/notes/admin/sse": forked[1], "/notes/mcp/x": forked[0],
		"/todos/sse": forked[2], "/other": forked[0],
	} {
		if res := forked.For(path); res != want {
			t.Errorf("For(%q) = %v, want %v", path, res, want)
		}
	}
	// One resource guards every path, as it always has.
	single := mustResources(t, "/a/mcp")
	for _, path := range []string{"/", "/a", "/b/mcp", "/a/sse"} {
		if res := single.For(path); res != single[0] {
			t.Errorf("single resource: For(%q) = %v", path, res)
		}
	}
	if got := rs[1].MetadataURL; got != "https://h.example/.well-known/oauth-protected-resource/b/mcp" {
		t.Errorf("metadata URL %q", got)
	}
}

func TestNewResourcesRejects(t *testing.T) {
	for name, declared := range map[string][]ResourceConfig{
		"duplicate resource": {{Path: "/mcp"}, {Path: "/mcp/"}},
		"resource by case":   {{Path: "/mcp"}, {Path: "/MCP"}},
		"encoded resource":   {{Path: "/a%2Fmcp"}},
		"dot segment":        {{Path: "/a/../mcp"}},
		"empty segment":      {{Path: "/a//mcp"}},
		"relative path":      {{Path: "mcp"}},
		"wildcard path":      {{Path: "/mcp*"}},
		"well-known path":    {{Path: "/.well-known/x"}},
	} {
		if _, err := NewResources("https://h.example", declared); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestNewRejectsScopeRules(t *testing.T) {
	for name, rule := range map[string]ScopeRule{
		"glob scope rule":    {Pattern: "/a/*/admin", Scopes: []string{"x"}},
		"encoded scope rule": {Pattern: "/a%2fadmin*", Scopes: []string{"x"}},
		"dotted scope rule":  {Pattern: "/mcp/../admin", Scopes: []string{"x"}},
		"relative rule":      {Pattern: "admin*", Scopes: []string{"x"}},
	} {
		if _, err := newGate(Config{ScopeRules: []ScopeRule{rule}}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestResourceCovers(t *testing.T) {
	res := mustResources(t, "/notes/mcp")[0]
	for p, want := range map[string]bool{
		"/notes/mcp": true, "/notes/mcp/x": true, "/notes/mcpx": false, "/Notes/mcp": false, "/notes": false,
	} {
		if got := res.Covers(p); got != want {
			t.Errorf("Covers(%q) = %v, want %v", p, got, want)
		}
	}
	if whole := mustResources(t)[0]; !whole.Covers("/anything") {
		t.Error("the whole origin does not cover /anything")
	}
}
