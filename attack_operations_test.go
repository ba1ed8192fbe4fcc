package mcpauth

import (
	"crypto/rand"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
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

func TestAttackFailedReloadDisablesAdminAPI(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	site := asSite(t, storagePath, logDir, usersUpstream())
	startCaddy(t, site)
	client := mustTLSClient(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	for _, bad := range []struct{ name, caddyfile string }{
		// A handler after mcp_auth fails to provision: the new App was
		// provisioned, then cleaned up, and never ran.
		{"handler fails to provision", strings.Replace(site, "header_up X-MCP-User {http.auth.user.id}",
			"header_up X-MCP-User {http.auth.user.id}\n\t\ttransport http {\n\t\t\ttls_client_auth /nonexistent/cert.pem /nonexistent/key.pem\n\t\t}", 1)},
		// Another app fails to start: the new App may have started, and
		// stops again.
		{"server fails to start", site + "\nhttp://127.0.0.1:" + strconv.Itoa(busy.Addr().(*net.TCPAddr).Port) + " {\n\trespond ok\n}\n"},
	} {
		if status, body := postConfig(t, bad.caddyfile); status == http.StatusOK {
			t.Fatalf("%s: the config loaded: %s", bad.name, body)
		}
		if status, body := adminRequest(t, http.MethodGet, "/mcp_auth/clients"); status != http.StatusOK {
			t.Errorf("%s: the admin API stopped working: %d %s", bad.name, status, body)
		}
		if status, _, _ := get(t, client, siteAddr()+"/.well-known/oauth-protected-resource", nil); status != http.StatusOK {
			t.Errorf("%s: the old config stopped serving: %d", bad.name, status)
		}
	}
	// A good reload still moves the admin API to the new config, and
	// stopping Caddy leaves it with none.
	reloadCaddy(t, strings.Replace(site, "scopes mcp:tools mcp:admin", "scopes mcp:tools", 1))
	if status, body := adminRequest(t, http.MethodPost, "/mcp_auth/keys/rotate"); status != http.StatusOK {
		t.Errorf("after a good reload: %d %s", status, body)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if app := currentApp(); app != nil {
		t.Errorf("after stopping, the admin API still acts on an App")
	}
}
