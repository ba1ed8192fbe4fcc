package mcpauth

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// Attacks on who may log in and on what the client is sent back: each test
// performs the attack against a real Caddy and asserts the refusal.

// lastLocation is the raw Location of the walk's last response, as the
// browser received it, byte for byte.
func lastLocation(t *testing.T, steps []step) string {
	t.Helper()
	redirectedTo(t, steps) // a 302/303, not a page
	return steps[len(steps)-1].Header.Get("Location")
}

// A user the allow rules refuse, on a native app, was shown a page whose
// link back was "#ZgotmplZ" (html/template refuses the app's scheme): the
// app never learned the login ended. It must get access_denied by
// redirect, with state and iss, like every other error.
func TestAttackDeniedUserStrandsNativeApp(t *testing.T) {
	e := startAS(t, `upstream users {
			alice `+aliceHash+`
			bob `+aliceHash+`
		}
		allow users bob`)
	for _, redirect := range []string{
		"cursor://anysphere.cursor-mcp/oauth/callback",
		"com.example.app:/cb",
		"vscode://vscode.github-authentication/did-authenticate?windowId=1",
		"https://client.test/cb",
		clientRedirect,
	} {
		t.Run(redirect, func(t *testing.T) {
			c := e.publicClient(t, redirect)
			q := authParams(c, newPKCE())
			q.Set("state", "s&t é/"+redirect)
			steps := walk(t, aliceBrowser(t), authorizeURL(q))
			raw := lastLocation(t, steps)
			if !strings.HasPrefix(raw, redirect+map[bool]string{true: "&", false: "?"}[strings.Contains(redirect, "?")]) {
				t.Fatalf("sent to %q, want the app's redirect URI %q", raw, redirect)
			}
			loc, _ := url.Parse(raw)
			if loc.Query().Get("error") != "access_denied" || loc.Query().Get("state") != q.Get("state") ||
				loc.Query().Get("iss") != siteAddr() || loc.Query().Has("code") {
				t.Errorf("response %s, want error=access_denied with state and iss, no code", raw)
			}
			for _, s := range steps {
				if strings.Contains(s.Body, "ZgotmplZ") {
					t.Errorf("%s %s: a page with a broken link", s.Method, s.URL)
				}
			}
		})
	}
}

// A registered redirect URI's query was decoded, re-encoded and sorted when
// the response parameters were added, so the client got back a URI it never
// registered. The registered URI must come back byte for byte, success and
// error alike, with the parameters appended.
func TestAttackRedirectQueryRewritten(t *testing.T) {
	e := usersAS(t, "")
	for _, redirect := range []string{
		"https://client.test/cb?z=1&a=2",
		"https://client.test/cb?tenant=a%2Fb+c%20d&tenant=x",
		"https://client.test/cb?flag&empty=",
		"https://client.test/cb?",
		"https://client.test/cb?x=1&",
		"https://client.test/cb?next=%2Fa%3Fb%3Dc",
		"com.example.app:/cb?Mixed=Case",
		"http://127.0.0.1:5555/cb?b=%7E&a=~",
	} {
		t.Run(redirect, func(t *testing.T) {
			c := e.publicClient(t, redirect)
			want := redirect
			if strings.HasPrefix(redirect, "http://127.0.0.1:") {
				// The loopback rule: the app listens on another port now.
				want = strings.Replace(redirect, ":5555", ":61234", 1)
			}
			for _, deny := range []bool{false, true} {
				p := newPKCE()
				q := authParams(c, p)
				q.Set("redirect_uri", want)
				b := aliceBrowser(t)
				b.Deny = deny
				raw := lastLocation(t, walk(t, b, authorizeURL(q)))
				appended, ok := strings.CutPrefix(raw, want)
				if !ok {
					t.Fatalf("deny=%v: sent to %q, which does not start with the registered %q", deny, raw, want)
				}
				if want[len(want)-1] != '?' && want[len(want)-1] != '&' {
					if !strings.HasPrefix(appended, map[bool]string{true: "&", false: "?"}[strings.Contains(want, "?")]) {
						t.Fatalf("deny=%v: parameters appended as %q", deny, appended)
					}
					appended = appended[1:]
				}
				params, err := url.ParseQuery(appended)
				if err != nil || params.Get("iss") != siteAddr() || params.Get("state") != q.Get("state") {
					t.Fatalf("deny=%v: appended %q, want iss and state", deny, appended)
				}
				if deny {
					if params.Get("error") != "access_denied" {
						t.Errorf("deny: appended %q, want error=access_denied", appended)
					}
					continue
				}
				form := codeForm(c, params.Get("code"), p)
				form.Set("redirect_uri", want)
				if status, _, m := e.tokenRequest(t, form, nil); status != http.StatusOK {
					t.Errorf("the code sent to the registered URI does not redeem: %d %v", status, m)
				}
			}
		})
	}
}
