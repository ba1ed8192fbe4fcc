package mcpauth

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// metricValue returns the value of one sample of Caddy's /metrics.
func metricValue(t *testing.T, sample string) string {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if name, value, ok := strings.Cut(line, " "); ok && name == sample {
			return value
		}
	}
	return ""
}

func TestMetricsAndAuditLog(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	ts := e.login(t, c, nil)
	e.Exchange(t, refreshForm(c, ts.Refresh), nil)
	e.mcpStatus(t, ts.Access)
	e.mcpStatus(t, "")
	e.PostForm(t, "/revoke", map[string][]string{"token": {ts.Refresh}, "client_id": {c.ID}}, nil)

	for sample, want := range map[string]string{
		`caddy_mcp_auth_client_registrations_total`:                           "",
		`caddy_mcp_auth_logins_total{outcome="success",upstream="users"}`:     "",
		`caddy_mcp_auth_tokens_issued_total{grant_type="authorization_code"}`: "",
		`caddy_mcp_auth_tokens_issued_total{grant_type="refresh_token"}`:      "",
		`caddy_mcp_auth_gate_decisions_total{outcome="allowed"}`:              "",
		`caddy_mcp_auth_gate_decisions_total{outcome="no_token"}`:             "",
		`caddy_mcp_auth_endpoint_duration_seconds_count{endpoint="token"}`:    "",
	} {
		got := metricValue(t, sample)
		if got == "" || got == "0" || (want != "" && got != want) {
			t.Errorf("%s = %q", sample, got)
		}
	}

	// Audit entries name the event, client, user and request, in the
	// server log under http.handlers.mcp_auth.audit.
	f, err := os.Open(filepath.Join(e.logDir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	events := map[string]map[string]any{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var entry map[string]any
		if json.Unmarshal(sc.Bytes(), &entry) == nil && entry["logger"] == "http.handlers.mcp_auth.audit" {
			events[entry["msg"].(string)] = entry
		}
	}
	for event, fields := range map[string][]string{
		"client registered": {"client_id", "request_id"},
		"consent given":     {"client_id", "request_id", "resource"},
		"user logged in":    {"client_id", "sub", "upstream", "request_id"},
		"grant revoked":     {"client_id", "sub", "request_id"},
	} {
		entry, ok := events[event]
		if !ok {
			t.Errorf("no audit entry %q (have %v)", event, keys(events))
			continue
		}
		for _, f := range fields {
			if entry[f] == nil || entry[f] == "" {
				t.Errorf("audit entry %q lacks %s: %v", event, f, entry)
			}
		}
	}
	assertNoSecretsLogged(t, e.logDir, ts.Access, ts.Refresh)
}

func keys(m map[string]map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
