package clients

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// FuzzNewRegistration feeds arbitrary registration bodies to the parser.
// Whatever it accepts must respect every cap on what is stored, and every
// redirect URI it keeps must be one the redirect rules accept and match;
// whatever it refuses must be refused with an RFC 7591 error code.
func FuzzNewRegistration(f *testing.F) {
	for _, seed := range []string{
		`{"redirect_uris":["https://client.test/cb"],"token_endpoint_auth_method":"none"}`,
		`{"redirect_uris":["http://127.0.0.1:33418/","https://vscode.dev/redirect"],"grant_types":["authorization_code","refresh_token"],"client_name":"Visual Studio Code"}`,
		`{"redirect_uris":["cursor://anysphere.cursor-mcp/oauth/callback"],"client_name":"Cursor","scope":" mcp:tools"}`,
		`{"redirect_uris":["https://a.test/` + strings.Repeat("a", 1990) + `","https://a.test/` + strings.Repeat("b", 1990) + `","https://a.test/c"]}`,
		`{"redirect_uris":["https://a.test/cb"],"client_uri":"https://a.test/` + strings.Repeat("u", 1990) + `","logo_uri":"https://a.test/` + strings.Repeat("l", 1990) + `","tos_uri":"https://a.test/` + strings.Repeat("t", 1990) + `","policy_uri":"https://a.test/` + strings.Repeat("p", 1990) + `"}`,
		`{"redirect_uris":["https://a.test/cb"],"client_name":"\u202emoc.elgoog","contacts":["a@b.test"]}`,
		`{"redirect_uris":["https://a.test/cb"],"redirect_uris":["http://evil.test/cb"]}`,
		`{"redirect_uris":["javascript:alert(1)"]}`,
		`[1,2]`,
	} {
		f.Add([]byte(seed))
	}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, body []byte) {
		c, secret, err := NewRegistration(body, now, 0)
		if err != nil {
			var rerr *oauth.Error
			if !errors.As(err, &rerr) || (rerr.Code != oauth.InvalidClientMetadata && rerr.Code != oauth.InvalidRedirectURI) {
				t.Fatalf("refused with %v, not an RFC 7591 error", err)
			}
			return
		}
		if record, err := json.Marshal(c); err != nil || len(record) > MaxClientRecordBytes {
			t.Fatalf("accepted a %d-byte record (%v), over the %d-byte cap", len(record), err, MaxClientRecordBytes)
		}
		if n := len(c.RedirectURIs); n == 0 || n > maxRedirectURIs {
			t.Fatalf("accepted %d redirect URIs", n)
		}
		total := 0
		for _, u := range c.RedirectURIs {
			total += len(u)
			if err := ValidateRedirectURI(u); err != nil {
				t.Fatalf("accepted redirect URI %q that the rules refuse: %v", u, err)
			}
			if got, ok := MatchRedirectURI(c.RedirectURIs, u); !ok || got != u {
				t.Fatalf("registered redirect URI %q does not match itself", u)
			}
		}
		if total > maxRedirectURIBytes {
			t.Fatalf("accepted %d bytes of redirect URIs", total)
		}
		for _, name := range []string{c.ClientName, c.SoftwareID, c.SoftwareVersion} {
			if utf8.RuneCountInString(name) > maxNameLength || !utf8.ValidString(name) {
				t.Fatalf("accepted display string %q", name)
			}
		}
		for _, u := range []string{c.ClientURI, c.LogoURI, c.TOSURI, c.PolicyURI} {
			if u != "" && !isHTTPSURL(u) {
				t.Fatalf("kept informational URI %q that is not a bounded https URL", u)
			}
		}
		if len(c.Scope) > maxScopeLength {
			t.Fatalf("accepted a %d-byte scope", len(c.Scope))
		}
		if c.IsPublic() != (secret == "") {
			t.Fatalf("public %v but issued a secret: %v", c.IsPublic(), secret != "")
		}
	})
}
