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

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
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
		resp, page := b.send(b.t, method, next, form, "")
		method, form = http.MethodGet, nil
		if resp.StatusCode == http.StatusFound || resp.StatusCode == http.StatusSeeOther {
			loc, err := resp.Location()
			if err != nil {
				b.t.Fatal(err)
			}
			if !b.ours(loc, servers) {
				return loc
			}
			next = loc.String()
			continue
		}
		path, answer := b.fill(resp.StatusCode, string(page))
		if answer == nil {
			b.t.Fatalf("%s %s: unexpected %s: %s", resp.Request.Method, resp.Request.URL, resp.Status, page)
		}
		b.Pages[resp.Request.URL.Path] = resp
		method, next, form = http.MethodPost, siteAddr()+path, answer
	}
	b.t.Fatalf("too many redirects from %s", authURL)
	return nil
}

// send makes one request of the browser and reads the answer. A form is
// posted form-encoded, with the Origin header when origin is not empty.
func (b *browser) send(t testing.TB, method, target string, form url.Values, origin string) (*http.Response, []byte) {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, target, err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	return resp, page
}

// fill answers a page of the authorization server as the user would: the
// consent form with the decision, the login form with the credentials. It
// returns the path the form is posted to, and a nil form for any other
// page.
func (b *browser) fill(status int, page string) (path string, form url.Values) {
	switch {
	case status == http.StatusOK && strings.Contains(page, `name="decision"`):
		form = formFields(page)
		form.Set("decision", map[bool]string{true: "deny", false: "approve"}[b.Deny])
		return "/authorize/consent", form
	case status == http.StatusOK && strings.Contains(page, `name="password"`):
		form = formFields(page)
		form.Set("username", b.Username)
		form.Set("password", b.Password)
		return "/authorize/login", form
	}
	return "", nil
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

// step is one response a browser got.
type step struct {
	Method string
	URL    *url.URL
	Status int
	Header http.Header
	Body   string
}

// location returns the step's Location, or nil.
func (s step) location() *url.URL {
	if s.Header.Get("Location") == "" {
		return nil
	}
	u, err := s.URL.Parse(s.Header.Get("Location"))
	if err != nil {
		return nil
	}
	return u
}

// walk drives b from start like browser.authorize does (approving or
// denying consent, filling the login form, following redirects through
// the server and the upstream servers), with two differences: it records
// every response, and it stops without failing at the first response
// that is neither a form it knows nor a redirect within those servers.
// Form posts go to the origin of start, with the Origin header a browser
// sends.
func walk(t *testing.T, b *browser, start string, servers ...string) []step {
	t.Helper()
	next, method, form := start, http.MethodGet, url.Values(nil)
	u, err := url.Parse(start)
	if err != nil {
		t.Fatal(err)
	}
	origin := u.Scheme + "://" + u.Host // the authorization server's
	var steps []step
	for hops := 0; hops < 12; hops++ {
		resp, page := b.send(t, method, next, form, origin)
		s := step{Method: method, URL: resp.Request.URL, Status: resp.StatusCode, Header: resp.Header, Body: string(page)}
		steps = append(steps, s)
		method, form = http.MethodGet, nil
		if resp.StatusCode >= 300 && resp.StatusCode < 400 && s.location() != nil {
			if !b.ours(s.location(), servers) {
				return steps
			}
			next = s.location().String()
			continue
		}
		path, answer := b.fill(resp.StatusCode, s.Body)
		if answer == nil {
			return steps
		}
		method, next, form = http.MethodPost, origin+path, answer
	}
	t.Fatalf("too many redirects from %s", start)
	return nil
}

// redirectedTo returns where the last step sent the browser: the client's
// redirect URI with the authorization response. It fails the test unless
// that was a 302 (OAuth 2.1 section 4.1.2 allows 302 and 303, never 307).
func redirectedTo(t *testing.T, steps []step) *url.URL {
	t.Helper()
	last := steps[len(steps)-1]
	// 303 after a form POST (consent, login), 302 otherwise.
	want := http.StatusFound
	if last.Method == http.MethodPost {
		want = http.StatusSeeOther
	}
	if last.Status != want || last.location() == nil {
		t.Fatalf("%s %s: %d, want %d to the client; body %.500s", last.Method, last.URL, last.Status, want, last.Body)
	}
	return last.location()
}

// aliceBrowser is a fresh browser that logs in as alice on the built-in form.
func aliceBrowser(t *testing.T) *browser {
	b := newBrowser(t)
	b.Username, b.Password = "alice", "correct horse"
	return b
}

// loginCode runs the authorization q as alice in a fresh browser and
// returns the code sent back to the client.
func loginCode(t *testing.T, q url.Values, servers ...string) string {
	t.Helper()
	loc := redirectedTo(t, walk(t, aliceBrowser(t), authorizeURL(q), servers...))
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("error") != "" {
		t.Fatalf("authorization failed: %s", loc)
	}
	return code
}

// consentForm opens the consent page for q in b and returns its form.
func consentForm(t *testing.T, b *browser, q url.Values) url.Values {
	t.Helper()
	status, _, body := oauthtest.Get(t, b.client, authorizeURL(q), nil)
	if status != http.StatusOK || !strings.Contains(string(body), `name="decision"`) {
		t.Fatalf("no consent page: %d %.300s", status, body)
	}
	form := formFields(string(body))
	if form.Get("request") == "" || form.Get("csrf") == "" {
		t.Fatalf("consent form fields %v", form)
	}
	return form
}

// postConsent posts a consent decision from b.
func postConsent(t *testing.T, b *browser, form url.Values) (int, http.Header, []byte) {
	t.Helper()
	return oauthtest.SubmitForm(t, b.client, siteAddr()+"/authorize/consent", siteAddr(), form)
}
