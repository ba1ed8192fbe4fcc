package clients

import (
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// loopbackPort matches the port of an http URI on any host, the one part
// the loopback rule lets differ; written independently of splitLoopback.
var loopbackPort = regexp.MustCompile(`^(http://(?:\[[^\]/?#]*\]|[^\[\]/?#:@]*))(?::[0-9]*)?`)

// FuzzMatchRedirectURI checks that a redirect URI accepted for a registered
// one is that URI byte for byte, or differs only in the port of a loopback
// http URI; that it is itself a URI registration would accept; and that the
// authorization response built on it starts with it byte for byte and
// carries the response parameters.
func FuzzMatchRedirectURI(f *testing.F) {
	for _, seed := range [][2]string{
		{"https://client.test/cb?b=2&a=1", "https://client.test/cb?b=2&a=1"},
		{"https://client.test/cb?tenant=a%2Fb+c", "https://client.test/cb?tenant=a/b c"},
		{"http://127.0.0.1:5555/cb", "http://127.0.0.1:61234/cb"},
		{"http://127.0.0.1/cb", "http://127.0.0.1:80/cb?x"},
		{"http://[::1]:8080/cb", "http://[::1]:9/cb"},
		{"http://localhost/cb", "http://localhost:1@evil.test/cb"},
		{"cursor://anysphere.cursor-mcp/oauth/callback", "CURSOR://anysphere.cursor-mcp/oauth/callback"},
		{"com.example.app:/cb", "com.example.app:/cb#x"},
		{"https://client.test/cb?", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, registered, requested string) {
		if ValidateRedirectURI(registered) != nil {
			return // only validated URIs are ever registered
		}
		got, ok := MatchRedirectURI([]string{registered}, requested)
		if !ok {
			return
		}
		if got != registered {
			if got != requested {
				t.Fatalf("accepted %q for %q but answered with %q", requested, registered, got)
			}
			r, g := loopbackPort.FindStringSubmatch(registered), loopbackPort.FindStringSubmatch(got)
			if r == nil || g == nil || r[1] != g[1] || registered[len(r[0]):] != got[len(g[0]):] {
				t.Fatalf("accepted %q for %q: they differ in more than the port", got, registered)
			}
			host, _ := url.Parse(got)
			if host == nil || !isLoopbackHost(host.Hostname()) {
				t.Fatalf("accepted %q for %q: another port on a host that is not loopback", got, registered)
			}
		}
		if err := ValidateRedirectURI(got); err != nil {
			t.Fatalf("accepted %q for %q, which registration refuses: %v", got, registered, err)
		}

		params := url.Values{"code": {"c?&=#"}, "state": {requested}, "iss": {"https://as.test"}}
		resp := ResponseURL(got, params)
		if !strings.HasPrefix(resp, got) {
			t.Fatalf("response %q does not start with the redirect URI %q", resp, got)
		}
		u, err := url.Parse(resp)
		if err != nil || u.Fragment != "" {
			t.Fatalf("response %q does not parse without a fragment: %v", resp, err)
		}
		q := u.Query()
		for k, vs := range params {
			if !slices.Contains(q[k], vs[0]) {
				t.Fatalf("response %q lost %s=%q (has %q)", resp, k, vs[0], q[k])
			}
		}
	})
}
