package authserver

import (
	"net/url"
	"strings"
	"testing"
)

// FuzzParseAuthorizationQuery checks the authorization request parser
// against a reference reading of the same query by net/url: a query with a
// repeated parameter is never accepted, an accepted one has exactly the
// values the reference reads, and what would be stored and sent back
// (state, nonce) stays within the caps.
func FuzzParseAuthorizationQuery(f *testing.F) {
	for _, seed := range []string{
		"response_type=code&client_id=c1&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcb&state=xyz&code_challenge=abc&code_challenge_method=S256&resource=https%3A%2F%2Fa.test%2Fmcp",
		"client_id=c1&client_id=c2",
		"client_id=c1&state=a&state=b",
		"client_id=c1&state=&state=b",
		"client_id=c1&STATE=a&state=b",
		"client_id=c1&resource=a&resource=b",
		"client_id=c1&state=" + strings.Repeat("s", maxStateLength+1),
		"client_id=c1&nonce=" + strings.Repeat("n", maxNonceLength+1),
		"client_id=c1&state=%zz",
		"client_id=c1;state=x",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, problem := parseAuthorizationQuery(raw)
		ref, err := url.ParseQuery(raw)
		if err != nil || len(ref["client_id"]) > 1 || len(ref["redirect_uri"]) > 1 {
			if q != nil {
				t.Fatalf("accepted %q, which does not parse or names two clients or redirect URIs", raw)
			}
			return
		}
		if q == nil {
			t.Fatalf("refused %q with %q", raw, problem)
		}
		if q.clientID != ref.Get("client_id") || q.redirectURI != ref.Get("redirect_uri") {
			t.Fatalf("client %q, redirect %q; reference reads %q, %q", q.clientID, q.redirectURI, ref.Get("client_id"), ref.Get("redirect_uri"))
		}
		if len(q.state) > maxStateLength {
			t.Fatalf("a %d-byte state would be stored and sent back", len(q.state))
		}
		repeated := false
		for k, vs := range ref {
			// Even an empty repeat: another parser may read it.
			if k != "resource" && len(vs) > 1 {
				repeated = true
			}
		}
		if repeated {
			if q.invalid == nil {
				t.Fatalf("accepted %q, which repeats a parameter", raw)
			}
			return
		}
		if q.invalid != nil {
			if len(ref.Get("state")) <= maxStateLength && len(q.params["nonce"]) <= maxNonceLength {
				t.Fatalf("refused %q: %v", raw, q.invalid)
			}
			return
		}
		for k := range ref {
			if k == "resource" {
				continue
			}
			if want := ref.Get(k); q.params[k] != want {
				t.Fatalf("parameter %q: %q, reference reads %q", k, q.params[k], want)
			}
		}
		if q.state != q.params["state"] || len(q.params["nonce"]) > maxNonceLength {
			t.Fatalf("accepted state %q / nonce of %d bytes", q.state, len(q.params["nonce"]))
		}
	})
}
