package gate

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// FuzzDiscovery checks the names Discovery gives request paths, which
// label the endpoint metrics, against a reference table of the resources'
// metadata paths: a path the table names gets that name, another under a
// discovery prefix is not_found, and every other path is no document. So
// no request path, however spelled, makes a name of its own.
func FuzzDiscovery(f *testing.F) {
	rs, err := NewResources("https://auth.example.com", []ResourceConfig{{Path: "/mcp"}, {Path: "/notes/mcp"}})
	if err != nil {
		f.Fatal(err)
	}
	g, err := newGate(Config{Resources: rs})
	if err != nil {
		f.Fatal(err)
	}
	reference := map[string]string{
		"/.well-known/oauth-protected-resource":           "resource_metadata",
		"/.well-known/oauth-protected-resource/mcp":       "resource_metadata",
		"/.well-known/oauth-protected-resource/notes/mcp": "resource_metadata",
	}
	for path := range reference {
		f.Add(path)
	}
	for _, seed := range []string{"/.well-known/oauth-protected-resource/" + strings.Repeat("x", 64), "/.well-known/OAUTH-protected-resource",
		"/.well-known/oauth-authorization-server", "/.well-known/openid-configurationx", "/mcp"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, path string) {
		name, serve := g.Discovery(path)
		if (name == "") != (serve == nil) {
			t.Fatalf("Discovery(%q) = %q with handler %v", path, name, serve != nil)
		}
		want, ok := reference[path]
		if !ok {
			for _, prefix := range discoveryPrefixes {
				if strings.HasPrefix(path, prefix) {
					want = "not_found"
				}
			}
		}
		if name != want {
			t.Fatalf("Discovery(%q) = %q, want %q", path, name, want)
		}
	})
}

// A resource's metadata names the authorization server and the resource's
// scopes; the root document describes the default resource.
func TestDiscoveryServesResourceMetadata(t *testing.T) {
	rs, err := NewResources("https://h.example", []ResourceConfig{{Path: "/mcp", Scopes: []string{"read"}}, {Path: "/b"}})
	if err != nil {
		t.Fatal(err)
	}
	g, err := newGate(Config{Resources: rs, AuthorizationServer: "https://as.example"})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"/.well-known/oauth-protected-resource":     "https://h.example/mcp",
		"/.well-known/oauth-protected-resource/mcp": "https://h.example/mcp",
		"/.well-known/oauth-protected-resource/b":   "https://h.example/b",
	} {
		_, serve := g.Discovery(path)
		w := httptest.NewRecorder()
		serve(w, httptest.NewRequest(http.MethodGet, path, nil))
		var doc ResourceMetadata
		if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil || w.Code != http.StatusOK {
			t.Fatalf("%s: %d %q", path, w.Code, w.Body)
		}
		if doc.Resource != want || len(doc.AuthorizationServers) != 1 || doc.AuthorizationServers[0] != "https://as.example" {
			t.Errorf("%s: %+v", path, doc)
		}
	}
	w := httptest.NewRecorder()
	_, serve := g.Discovery("/.well-known/oauth-protected-resource/mcp")
	serve(w, httptest.NewRequest(http.MethodPost, "/.well-known/oauth-protected-resource/mcp", nil))
	if w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
		t.Errorf("POST: %d, Allow %q", w.Code, w.Header().Get("Allow"))
	}
}
