package clients

import (
	"strings"
	"testing"
)

func TestValidateRedirectURI(t *testing.T) {
	good := []struct{ name, uri string }{
		{"ChatGPT legacy", "https://chatgpt.com/connector_platform_oauth_redirect"},
		{"ChatGPT per-app", "https://chatgpt.com/connector/oauth/abc"},
		{"Claude.ai", "https://claude.ai/api/mcp/auth_callback"},
		{"Claude.com", "https://claude.com/api/mcp/auth_callback"},
		{"Claude Code", "http://localhost:53682/callback"},
		{"VS Code loopback", "http://127.0.0.1:33418/"},
		{"VS Code loopback no port", "http://127.0.0.1/"},
		{"VS Code old localhost no path", "http://localhost"},
		{"VS Code web", "https://vscode.dev/redirect"},
		{"VS Code insiders", "https://insiders.vscode.dev/redirect"},
		{"Cursor app", "cursor://anysphere.cursor-mcp/oauth/callback"},
		{"Cursor web", "https://www.cursor.com/agents/mcp/oauth/callback"},
		{"Cursor loopback", "http://localhost:8787/callback"},
		{"MCP Inspector", "http://localhost:6274/oauth/callback"},
		{"MCP Inspector debug", "http://localhost:6274/oauth/callback/debug"},
		{"mcp-remote", "http://127.0.0.1:3334/oauth/callback"},
		{"IPv6 loopback", "http://[::1]:8080/cb"},
		{"other 127/8", "http://127.0.0.2:80/cb"},
		{"vscode scheme", "vscode://vscode.github-authentication/did-authenticate"},
		{"reverse-domain scheme", "com.example.app:/oauth2redirect/example-provider"},
		{"https with query", "https://client.test/cb?tenant=1"},
		{"https with port", "https://client.test:8443/cb"},
	}
	for _, tc := range good {
		t.Run("ok/"+tc.name, func(t *testing.T) {
			if err := ValidateRedirectURI(tc.uri); err != nil {
				t.Errorf("ValidateRedirectURI(%q) = %v, want nil", tc.uri, err)
			}
		})
	}

	huge := "https://client.test/" + strings.Repeat("a", MaxRedirectURILength)
	bad := []struct{ name, uri string }{
		{"empty", ""},
		{"relative path", "/callback"},
		{"relative", "callback"},
		{"scheme-relative", "//client.test/cb"},
		{"javascript", "javascript:alert(1)"},
		{"javascript upper", "JavaScript://x/%0aalert(1)"},
		{"vbscript", "vbscript:msgbox(1)"},
		{"data", "data:text/html,<script>alert(1)</script>"},
		{"data no html", "data:text/plain;base64,SGVsbG8="},
		{"file", "file:///etc/passwd"},
		{"about", "about:blank"},
		{"blob", "blob:https://client.test/uuid"},
		{"ws", "ws://localhost:9000/cb"},
		{"wss", "wss://client.test/cb"},
		{"http non-loopback", "http://evil.com/cb"},
		{"http private IP", "http://192.168.1.10/cb"},
		{"http mapped loopback", "http://[::ffff:127.0.0.1]/cb"},
		{"http localhost trailing dot", "http://localhost./cb"},
		{"http short loopback", "http://127.1/cb"},
		{"http localhost lookalike", "http://localhost.evil.com/cb"},
		{"fragment", "https://a/cb#frag"},
		{"empty fragment", "https://a/cb#"},
		{"wildcard host", "https://*.example.com/cb"},
		{"wildcard path", "https://client.test/*"},
		{"userinfo", "https://user:pass@client.test/cb"},
		{"userinfo loopback", "http://evil.com@127.0.0.1/cb"},
		{"https no host", "https:///cb"},
		{"https opaque", "https:client.test/cb"},
		{"space", "https://client.test/c b"},
		{"backslash", "https://client.test\\@evil.com/cb"},
		{"angle brackets", "https://client.test/<x>"},
		{"non-ASCII", "https://clïent.test/cb"},
		{"control char", "https://client.test/cb\n"},
		{"bad escape", "https://client.test/%zz"},
		{"oob urn", "urn:ietf:wg:oauth:2.0:oob"},
		{"private scheme no path", "myapp:"},
		{"mailto", "mailto:someone@example.com"},
		{"huge", huge},
	}
	for _, tc := range bad {
		t.Run("bad/"+tc.name, func(t *testing.T) {
			err := ValidateRedirectURI(tc.uri)
			if err == nil {
				t.Fatalf("ValidateRedirectURI(%q) = nil, want an error", tc.uri)
			}
			// The message goes back to the client: it must not echo input.
			if tc.uri != "" && len(tc.uri) > 8 && strings.Contains(err.Error(), tc.uri) {
				t.Errorf("error %q echoes the URI", err)
			}
		})
	}
}

func TestMatchRedirectURI(t *testing.T) {
	tests := []struct {
		name       string
		registered []string
		requested  string
		want       string
		ok         bool
	}{
		{"exact https", []string{"https://client.test/cb"}, "https://client.test/cb", "https://client.test/cb", true},
		{"exact among several", []string{"https://a.test/cb", "https://client.test/cb"}, "https://client.test/cb", "https://client.test/cb", true},
		{"trailing slash", []string{"https://client.test/cb"}, "https://client.test/cb/", "", false},
		{"case", []string{"https://client.test/cb"}, "https://client.test/CB", "", false},
		{"host case", []string{"https://client.test/cb"}, "https://CLIENT.test/cb", "", false},
		{"extra query", []string{"https://client.test/cb"}, "https://client.test/cb?x=1", "", false},
		{"fragment", []string{"https://client.test/cb"}, "https://client.test/cb#f", "", false},
		{"http downgrade", []string{"https://client.test/cb"}, "http://client.test/cb", "", false},
		{"https port added", []string{"https://client.test/cb"}, "https://client.test:444/cb", "", false},
		{"suffix host", []string{"https://client.test/cb"}, "https://client.test.evil/cb", "", false},
		{"prefix path", []string{"https://chatgpt.com/connector/oauth/abc"}, "https://chatgpt.com/connector/oauth/abc/x", "", false},
		{"https no port flex", []string{"https://client.test:8443/cb"}, "https://client.test:9443/cb", "", false},

		{"loopback other port", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1:43210/cb", "http://127.0.0.1:43210/cb", true},
		{"loopback port added", []string{"http://127.0.0.1/cb"}, "http://127.0.0.1:61234/cb", "http://127.0.0.1:61234/cb", true},
		{"loopback port removed", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1/cb", "http://127.0.0.1/cb", true},
		{"loopback other path", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1:43210/cb2", "", false},
		{"loopback path prefix", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1:43210/cb/x", "", false},
		{"loopback query", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1:43210/cb?x=1", "", false},
		{"loopback keeps query", []string{"http://127.0.0.1:5555/cb?a=1"}, "http://127.0.0.1:1/cb?a=1", "http://127.0.0.1:1/cb?a=1", true},
		{"loopback fragment", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1:43210/cb#x", "", false},
		{"loopback to localhost", []string{"http://127.0.0.1:5555/cb"}, "http://localhost:43210/cb", "", false},
		{"localhost to loopback", []string{"http://localhost:5555/cb"}, "http://127.0.0.1:43210/cb", "", false},
		{"loopback https", []string{"http://127.0.0.1:5555/cb"}, "https://127.0.0.1:43210/cb", "", false},
		{"loopback other IP", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.2:43210/cb", "", false},
		{"localhost port", []string{"http://localhost:6274/oauth/callback"}, "http://localhost:7000/oauth/callback", "http://localhost:7000/oauth/callback", true},
		{"ipv6 port", []string{"http://[::1]:5555/cb"}, "http://[::1]:6666/cb", "http://[::1]:6666/cb", true},
		{"ipv6 no port", []string{"http://[::1]/cb"}, "http://[::1]:6666/cb", "http://[::1]:6666/cb", true},
		{"VS Code busy port", []string{"http://127.0.0.1/", "http://127.0.0.1:33418/"}, "http://127.0.0.1:50123/", "http://127.0.0.1:50123/", true},
		{"port zero", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1:0/cb", "", false},
		{"port too big", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1:65536/cb", "", false},
		{"port not numeric", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1:8o/cb", "", false},
		{"port empty", []string{"http://127.0.0.1:5555/cb"}, "http://127.0.0.1:/cb", "", false},
		{"userinfo", []string{"http://127.0.0.1:5555/cb"}, "http://x@127.0.0.1:5555/cb", "", false},
		{"non-loopback http no flex", []string{"http://localhost.evil/cb"}, "http://localhost.evil:1/cb", "", false},
		{"custom scheme exact", []string{"cursor://anysphere.cursor-mcp/oauth/callback"}, "cursor://anysphere.cursor-mcp/oauth/callback", "cursor://anysphere.cursor-mcp/oauth/callback", true},

		{"omitted, one registered", []string{"https://client.test/cb"}, "", "https://client.test/cb", true},
		{"omitted, two registered", []string{"https://a.test/cb", "https://b.test/cb"}, "", "", false},
		{"omitted, none registered", nil, "", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, ok := MatchRedirectURI(tc.registered, tc.requested)
			if got != tc.want || ok != tc.ok {
				t.Errorf("MatchRedirectURI(%q, %q) = %q, %v; want %q, %v", tc.registered, tc.requested, got, ok, tc.want, tc.ok)
			}
		})
	}
}
