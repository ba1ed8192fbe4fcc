package mcpauth

import (
	"crypto/rand"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
)

// Attacks on the operation of the server: its metrics, reloads, keys and
// stored state.

// endpointLabels returns the endpoint label values of the duration
// histogram that Caddy's metrics endpoint serves.
func endpointLabels(t *testing.T) []string {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var labels []string
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, `caddy_mcp_auth_endpoint_duration_seconds_count{endpoint="`); ok {
			labels = append(labels, rest[:strings.IndexByte(rest, '"')])
		}
	}
	return labels
}

func TestAttackRandomDiscoveryPathsGrowMetrics(t *testing.T) {
	e := usersAS(t, "")
	// Every endpoint once, so that the series an honest client creates exist.
	for _, p := range []string{"/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/mcp",
		"/.well-known/oauth-protected-resource/nothing", "/jwks", "/token", "/register", "/authorize"} {
		get(t, e.http, siteAddr()+p, nil)
	}
	before := endpointLabels(t)

	var paths []string
	for _, prefix := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		for range 40 {
			paths = append(paths, prefix+"/"+rand.Text())
		}
		// Other spellings of the same documents: suffixes, case, encoding,
		// doubled separators and dot segments.
		paths = append(paths, prefix+"x", prefix+".json", strings.ToUpper(prefix), prefix+"/%2e%2e/mcp",
			"/"+prefix, prefix+"//mcp", prefix+"/mcp/../"+rand.Text(), prefix+"%2Fmcp", prefix+"/MCP")
	}
	for _, p := range paths {
		status, _, _ := get(t, e.http, siteAddr()+p, nil)
		if status == http.StatusInternalServerError {
			t.Errorf("GET %s: 500", p)
		}
	}
	after := endpointLabels(t)
	if !slices.Equal(after, before) {
		t.Errorf("%d requests to made-up paths changed the duration series from %q to %q", len(paths), before, after)
	}
	known := []string{"metadata", "resource_metadata", "jwks", "register", "authorize", "consent", "login",
		"callback", "token", "revoke", "introspect", "userinfo", "not_found"}
	for _, l := range after {
		if !slices.Contains(known, l) {
			t.Errorf("endpoint label %q is not an endpoint name", l)
		}
	}
}
