package mcpauth

import (
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
)

// browser plays a user's browser in a login: it keeps cookies, follows
// redirects one at a time, approves or denies consent and fills in the
// built-in login form.
type browser struct {
	t      *testing.T
	client *http.Client
	// Username and Password answer the built-in login form.
	Username, Password string
	// Deny makes the user deny consent.
	Deny bool
	// Pages records every HTML page the browser saw, by URL path.
	Pages map[string]*http.Response
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	c := mustTLSClient(t)
	c.Jar = jar
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &browser{t: t, client: c, Pages: map[string]*http.Response{}}
}

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z]+)" value="([^"]*)">`)

// formFields returns the hidden fields of the page's form.
func formFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// authorize runs a login from the client's authorization URL and returns
// the URL the browser is finally sent to outside the authorization server
// and the upstream provider: the client's redirect URI with the response.
func (b *browser) authorize(authURL string, servers ...string) *url.URL {
	b.t.Helper()
	next, method, form := authURL, http.MethodGet, url.Values(nil)
	for hops := 0; hops < 10; hops++ {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, next, body)
		if err != nil {
			b.t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := b.client.Do(req)
		if err != nil {
			b.t.Fatalf("%s %s: %v", method, next, err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		method, form = http.MethodGet, nil
		switch {
		case resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther:
			loc, err := resp.Location()
			if err != nil {
				b.t.Fatal(err)
			}
			if !b.ours(loc, servers) {
				return loc
			}
			next = loc.String()
		case resp.StatusCode == http.StatusOK && strings.Contains(string(page), `name="decision"`):
			b.Pages[req.URL.Path] = resp
			form = formFields(string(page))
			form.Set("decision", map[bool]string{true: "deny", false: "approve"}[b.Deny])
			method, next = http.MethodPost, siteAddr()+"/authorize/consent"
		case resp.StatusCode == http.StatusOK && strings.Contains(string(page), `name="password"`):
			b.Pages[req.URL.Path] = resp
			form = formFields(string(page))
			form.Set("username", b.Username)
			form.Set("password", b.Password)
			method, next = http.MethodPost, siteAddr()+"/authorize/login"
		default:
			b.t.Fatalf("%s %s: unexpected %s: %s", req.Method, req.URL, resp.Status, page)
		}
	}
	b.t.Fatalf("too many redirects from %s", authURL)
	return nil
}

// ours reports whether u belongs to the authorization server or one of the
// upstream servers, where the browser keeps going.
func (b *browser) ours(u *url.URL, servers []string) bool {
	for _, s := range append([]string{siteAddr()}, servers...) {
		if strings.HasPrefix(u.String(), s+"/") {
			return true
		}
	}
	return false
}
