package mcpauth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// Attacks on the work anyone may make the server do without credentials:
// registering clients, starting authorization requests, guessing passwords.

// clientFrom is an HTTP client (no cookies, no redirects) whose connections
// come from the loopback address ip, as requests from another machine
// would.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	c := mustTLSClient(t)
	tr := c.Transport.(*http.Transport).Clone()
	c.Transport = tr
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr.DialContext = func(ctx context.Context, _, addr string) (net.Conn, error) {
		_, port, _ := net.SplitHostPort(addr)
		return dialer.DialContext(ctx, "tcp4", "127.0.0.1:"+port)
	}
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// trustLoopbackProxies makes Caddy take the client address from
// X-Forwarded-For on connections from loopback, as behind a load balancer.
func trustLoopbackProxies(caddyfile string) string {
	return strings.Replace(caddyfile, "\tgrace_period 1s\n", "\tgrace_period 1s\n\tservers {\n\t\ttrusted_proxies static 127.0.0.0/8\n\t}\n", 1)
}

const registrationBody = `{"client_name":"x","token_endpoint_auth_method":"none","redirect_uris":["` + clientRedirect + `"]}`

// registerFrom posts a registration with c and returns the status, the
// Retry-After header and the error code.
func registerFrom(t *testing.T, c *http.Client, body string, header http.Header) (int, string, string) {
	t.Helper()
	h := http.Header{"Content-Type": {"application/json"}}
	for k, v := range header {
		h[k] = v
	}
	status, hdr, raw := oauthtest.Do(t, c, http.MethodPost, siteAddr()+"/register", h, []byte(body))
	var m struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Errorf("POST /register: %d with a body that is not JSON: %q", status, raw)
	}
	return status, hdr.Get("Retry-After"), m.Error
}

// assertRetryAfter checks a 429 with a Retry-After of whole seconds.
func assertRetryAfter(t *testing.T, what string, status int, retryAfter string) {
	t.Helper()
	if n, err := strconv.Atoi(retryAfter); status != http.StatusTooManyRequests || err != nil || n < 1 {
		t.Errorf("%s: %d with Retry-After %q, want 429 with a number of seconds", what, status, retryAfter)
	}
}

func TestAttackRegistrationFromManyAddresses(t *testing.T) {
	e := usersAS(t, "registration {\n\t\t\trate_limit 2\n\t\t\tglobal_rate_limit 6\n\t\t}")
	// Each address gets its own allowance...
	for _, ip := range []string{"127.0.0.2", "127.0.0.3", "127.0.0.4"} {
		c := clientFrom(t, ip)
		for i := range 2 {
			if status, _, code := registerFrom(t, c, registrationBody, nil); status != http.StatusCreated {
				t.Fatalf("registration %d from %s: %d %s", i+1, ip, status, code)
			}
		}
		status, retry, _ := registerFrom(t, c, registrationBody, nil)
		assertRetryAfter(t, "third registration from "+ip, status, retry)
	}
	// ...but all of them together no more than the global cap.
	status, retry, _ := registerFrom(t, clientFrom(t, "127.0.0.5"), registrationBody, nil)
	assertRetryAfter(t, "registration from a fresh address over the global cap", status, retry)
	if n, err := strconv.Atoi(retry); err != nil || n > 3600 {
		t.Errorf("global cap: Retry-After %q, want at most the hour", retry)
	}
	if keys := storeKeys(t, testStore(t, e.storagePath), state.KindClient); len(keys) != 6 {
		t.Errorf("%d clients stored, want the 6 the caps allow", len(keys))
	}
}

func TestAttackRegistrationFromOneNetwork(t *testing.T) {
	t.Run("IPv4Prefix", func(t *testing.T) {
		usersAS(t, "source_ipv4_prefix 24\n\t\tregistration {\n\t\t\trate_limit 2\n\t\t}")
		for _, ip := range []string{"127.0.0.2", "127.0.0.3"} {
			if status, _, code := registerFrom(t, clientFrom(t, ip), registrationBody, nil); status != http.StatusCreated {
				t.Fatalf("registration from %s: %d %s", ip, status, code)
			}
		}
		status, retry, _ := registerFrom(t, clientFrom(t, "127.0.0.200"), registrationBody, nil)
		assertRetryAfter(t, "third registration from the same /24", status, retry)
	})

	// Behind a trusted proxy the client address comes from
	// X-Forwarded-For; every spelling of one /64 is one source.
	t.Run("IPv6Slash64", func(t *testing.T) {
		e := &asEnv{storagePath: t.TempDir(), logDir: t.TempDir()}
		startCaddy(t, trustLoopbackProxies(asSite(t, e.storagePath, e.logDir, usersUpstream()+"\n\t\tregistration {\n\t\t\trate_limit 2\n\t\t}")))
		c := clientFrom(t, "127.0.0.1")
		from := func(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }
		for _, ip := range []string{"2001:db8:1:2::1", "2001:DB8:1:2:ffff:ffff:ffff:fffe"} {
			if status, _, code := registerFrom(t, c, registrationBody, from(ip)); status != http.StatusCreated {
				t.Fatalf("registration from %s: %d %s", ip, status, code)
			}
		}
		status, retry, _ := registerFrom(t, c, registrationBody, from("2001:db8:1:2:0:0:0:99"))
		assertRetryAfter(t, "third registration from the same /64", status, retry)
		if status, _, code := registerFrom(t, c, registrationBody, from("2001:db8:1:3::1")); status != http.StatusCreated {
			t.Errorf("registration from the next /64: %d %s", status, code)
		}

		// An IPv4-mapped IPv6 address is the IPv4 address.
		for range 2 {
			registerFrom(t, c, registrationBody, from("192.0.2.9"))
		}
		status, retry, _ = registerFrom(t, c, registrationBody, from("::ffff:192.0.2.9"))
		assertRetryAfter(t, "IPv4 source spelled as IPv4-mapped IPv6", status, retry)
	})
}

func TestAttackRegistrationOversizedMetadata(t *testing.T) {
	e := usersAS(t, "")
	long := func(c string, n int) string { return strings.Repeat(c, n) }
	manyURIs := make([]string, 20)
	for i := range manyURIs {
		manyURIs[i] = "https://client.example/" + long(string(rune('a'+i)), 1900)
	}
	body := func(meta map[string]any) string {
		if meta["redirect_uris"] == nil {
			meta["redirect_uris"] = []string{clientRedirect}
		}
		raw, _ := json.Marshal(meta)
		return string(raw)
	}
	for _, tc := range []struct {
		name, body, code string
	}{
		{"twenty long redirect URIs", body(map[string]any{"redirect_uris": manyURIs}), "invalid_redirect_uri"},
		{"one redirect URI too long", body(map[string]any{"redirect_uris": []string{"https://client.example/" + long("a", 2100)}}), "invalid_redirect_uri"},
		{"too many redirect URIs", body(map[string]any{"redirect_uris": strings.Split(strings.Repeat("https://client.example/cb ", 21), " ")[:21]}), "invalid_redirect_uri"},
		{"long informational URIs", body(map[string]any{
			"client_uri": "https://client.example/" + long("c", 1950), "logo_uri": "https://client.example/" + long("l", 1950),
			"tos_uri": "https://client.example/" + long("t", 1950), "policy_uri": "https://client.example/" + long("p", 1950),
			"client_name": long("n", 200), "software_id": long("s", 200),
		}), "invalid_client_metadata"},
		{"long name", body(map[string]any{"client_name": long("n", 201)}), "invalid_client_metadata"},
		{"long name in multi-byte characters", body(map[string]any{"client_name": long("\u4e00", 201)}), "invalid_client_metadata"},
		{"body over the size cap", `{"redirect_uris":["` + clientRedirect + `"],"contacts":["` + long("x", 70<<10) + `"]}`, "invalid_client_metadata"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, _, code := registerFrom(t, e.HTTP, tc.body, nil)
			if status != http.StatusBadRequest || code != tc.code {
				t.Errorf("%d %q, want 400 %s", status, code, tc.code)
			}
		})
	}
	if keys := storeKeys(t, testStore(t, e.storagePath), state.KindClient); len(keys) != 0 {
		t.Errorf("%d oversized clients stored", len(keys))
	}
}

// authorizeFrom sends the authorization request q + extra (raw) with c.
func authorizeFrom(t *testing.T, c *http.Client, q url.Values, extra string) (int, http.Header, []byte) {
	t.Helper()
	return oauthtest.Get(t, c, authorizeURL(q)+extra, nil)
}

func TestAttackAuthorizeLongStateAndNonce(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	st := testStore(t, e.storagePath)
	long := func(n int) string { return strings.Repeat("s", n) }
	for _, tc := range []struct {
		name, state, nonce, wantState, wantError string
	}{
		{"state at the cap", long(2048), "", long(2048), ""},
		{"state over the cap", long(2049), "", "", "invalid_request"},
		{"12 KB state", long(12 << 10), "", "", "invalid_request"},
		{"nonce at the cap", "st", long(512), "st", ""},
		{"nonce over the cap", "st", long(513), "st", "invalid_request"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(storeKeys(t, st, state.KindRequest))
			q := authParams(c, oauthtest.NewPKCE())
			q.Set("state", tc.state)
			if tc.nonce != "" {
				q.Set("nonce", tc.nonce)
			}
			status, hdr, body := authorizeFrom(t, e.HTTP, q, "")
			stored := len(storeKeys(t, st, state.KindRequest)) - before
			if tc.wantError == "" {
				if status != http.StatusOK || stored != 1 {
					t.Fatalf("%d, %d requests stored; want the consent page and one: %.300s", status, stored, body)
				}
				return
			}
			loc, err := url.Parse(hdr.Get("Location"))
			if status != http.StatusFound || err != nil {
				t.Fatalf("%d, want 302 to the client: %.300s", status, body)
			}
			assertAuthzResponse(t, loc, c.Redirects[0], tc.wantState, tc.wantError)
			if tc.wantState == "" && loc.Query().Has("state") {
				t.Errorf("an over-long state was sent back (%d bytes)", len(loc.Query().Get("state")))
			}
			if stored != 0 {
				t.Errorf("%d requests stored for a refused one", stored)
			}
		})
	}

	// Before the client and its redirect URI are trusted, nothing is sent
	// anywhere: the error is a page.
	q := authParams(c, oauthtest.NewPKCE())
	q.Set("state", long(12<<10))
	q.Set("client_id", "unknown-client")
	status, hdr, body := authorizeFrom(t, e.HTTP, q, "")
	assertErrorPage(t, "long state from an unknown client", status, hdr, body, http.StatusBadRequest)
}

func TestAttackAuthorizeRepeatedParameters(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	for _, tc := range []struct {
		name, extra string
		page        bool   // refused on a page: the client cannot be trusted
		error       string // else the error sent to the client, "" for none
		wantState   string
	}{
		{"two client_ids", "&client_id=" + c.ID, true, "", ""},
		{"empty second client_id", "&client_id=", true, "", ""},
		{"two redirect_uris", "&redirect_uri=" + url.QueryEscape(c.Redirects[0]), true, "", ""},
		{"query that does not parse", "&state=%zz", true, "", ""},
		{"semicolon separator", ";state=x", true, "", ""},
		{"two states", "&state=other", false, "invalid_request", ""},
		{"two nonces", "&nonce=a&nonce=b", false, "invalid_request", "st"},
		{"two scopes", "&scope=mcp:tools&scope=mcp:admin", false, "invalid_request", "st"},
		{"two code_challenge_methods", "&code_challenge_method=plain", false, "invalid_request", "st"},
		{"state in another case is another parameter", "&STATE=other", false, "", "st"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q := authParams(c, oauthtest.NewPKCE())
			q.Set("state", "st")
			status, hdr, body := authorizeFrom(t, e.HTTP, q, tc.extra)
			switch {
			case tc.page:
				assertErrorPage(t, tc.name, status, hdr, body, http.StatusBadRequest)
			case tc.error == "":
				if status != http.StatusOK {
					t.Errorf("%d, want the consent page: %.300s", status, body)
				}
			default:
				loc, err := url.Parse(hdr.Get("Location"))
				if status != http.StatusFound || err != nil {
					t.Fatalf("%d, want 302 to the client: %.300s", status, body)
				}
				assertAuthzResponse(t, loc, c.Redirects[0], tc.wantState, tc.error)
			}
		})
	}
}

func TestAttackAuthorizeManyPendingRequests(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	st := testStore(t, e.storagePath)
	attacker := clientFrom(t, "127.0.0.2")
	allowed := 0
	var status int
	var hdr http.Header
	var body []byte
	for range 200 {
		if status, hdr, body = authorizeFrom(t, attacker, authParams(c, oauthtest.NewPKCE()), ""); status != http.StatusOK {
			break
		}
		allowed++
	}
	if status != http.StatusTooManyRequests || allowed > 60 {
		t.Fatalf("after %d requests from one address: %d, want 429 after at most 60: %.300s", allowed, status, body)
	}
	assertRetryAfter(t, "authorization request over the limit", status, hdr.Get("Retry-After"))
	if !strings.Contains(string(body), "Try again in") || !strings.HasPrefix(hdr.Get("Content-Type"), "text/html") {
		t.Errorf("the 429 page does not say when to try again: %.500s", body)
	}
	if n := len(storeKeys(t, st, state.KindRequest)); n > 60 {
		t.Errorf("%d pending requests stored from one address", n)
	}
	// The same source under another spelling is the same source; another
	// address is not held up.
	if status, _, _ := authorizeFrom(t, clientFrom(t, "127.0.0.3"), authParams(c, oauthtest.NewPKCE()), ""); status != http.StatusOK {
		t.Errorf("another address: %d, want the consent page", status)
	}
}

// browserFrom is a browser (cookies, no redirects) whose connections come
// from the loopback address ip.
func browserFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	c := clientFrom(t, ip)
	c.Jar, _ = cookiejar.New(nil)
	return c
}

// startPasswordLogin runs an authorization request for c in browser b up
// to the built-in login form and returns the form's hidden fields.
func startPasswordLogin(t *testing.T, b *http.Client, c oauthtest.Client) url.Values {
	t.Helper()
	status, _, body := oauthtest.Get(t, b, authorizeURL(authParams(c, oauthtest.NewPKCE())), nil)
	if status != http.StatusOK {
		t.Fatalf("authorization request: %d %.300s", status, body)
	}
	form := formFields(string(body))
	form.Set("decision", "approve")
	status, hdr, body := oauthtest.SubmitForm(t, b, siteAddr()+"/authorize/consent", siteAddr(), form)
	if status != http.StatusSeeOther || !strings.Contains(hdr.Get("Location"), "/authorize/login") {
		t.Fatalf("consent: %d %v %.300s", status, hdr, body)
	}
	status, _, body = oauthtest.Get(t, b, hdr.Get("Location"), nil)
	if status != http.StatusOK || !strings.Contains(string(body), `name="password"`) {
		t.Fatalf("login form: %d %.300s", status, body)
	}
	return formFields(string(body))
}

// postPassword posts the login form with a username and password.
func postPassword(t *testing.T, b *http.Client, form url.Values, username, password string) (int, http.Header, []byte) {
	t.Helper()
	f := oauthtest.CloneValues(form)
	f.Set("username", username)
	f.Set("password", password)
	return oauthtest.SubmitForm(t, b, siteAddr()+"/authorize/login", siteAddr(), f)
}

// failuresCounted returns how many failed passwords the server counted
// for username: how many guesses it actually checked.
func failuresCounted(t *testing.T, st storage.Store, username string) int {
	t.Helper()
	raw, err := st.Get(context.Background(), state.KindUserLoginFailures.Key(username))
	if errors.Is(err, storage.ErrNotFound) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(string(raw))
	return n
}

// assertLoginWaitPage checks the answer to a login post that must wait:
// 429, a Retry-After, and a page that says when to try again.
func assertLoginWaitPage(t *testing.T, what string, status int, hdr http.Header, body []byte) int {
	t.Helper()
	assertRetryAfter(t, what, status, hdr.Get("Retry-After"))
	if !strings.Contains(string(body), "Try again in") {
		t.Errorf("%s: the page does not say when to try again: %.400s", what, body)
	}
	n, _ := strconv.Atoi(hdr.Get("Retry-After"))
	return n
}

func TestAttackPasswordGuessingAcrossLogins(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	st := testStore(t, e.storagePath)
	attacker := browserFrom(t, "127.0.0.2")

	// 16 guesses over 4 logins, as fast as the server answers.
	var last struct {
		status int
		hdr    http.Header
		body   []byte
	}
	for range 4 {
		form := startPasswordLogin(t, attacker, c)
		for range 4 {
			last.status, last.hdr, last.body = postPassword(t, attacker, form, "alice", "guess")
			if last.status == http.StatusSeeOther {
				break // this login is used up
			}
		}
	}
	if n := failuresCounted(t, st, "alice"); n > 7 {
		t.Errorf("%d of 16 guesses were checked, want the free ones and about one more", n)
	}
	assertLoginWaitPage(t, "a guess after the free ones", last.status, last.hdr, last.body)

	// The right password from the guessing address waits too.
	status, hdr, body := postPassword(t, attacker, startPasswordLogin(t, attacker, c), "alice", "correct horse")
	assertLoginWaitPage(t, "the right password from the guessing address", status, hdr, body)

	// An unknown username is limited the same way: the answers do not
	// tell which usernames exist.
	other := browserFrom(t, "127.0.0.3")
	for range 8 {
		status, hdr, body = postPassword(t, other, startPasswordLogin(t, other, c), "mallory", "guess")
	}
	assertLoginWaitPage(t, "guesses for an unknown username", status, hdr, body)
}

func TestAttackPasswordGuessingFromManyAddresses(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	st := testStore(t, e.storagePath)
	waited := 0
	for i := range 10 {
		b := browserFrom(t, "127.0.0."+strconv.Itoa(10+i))
		form := startPasswordLogin(t, b, c)
		for range 3 {
			if status, _, _ := postPassword(t, b, form, "alice", "guess-"+strconv.Itoa(i)); status == http.StatusTooManyRequests {
				waited++
			}
		}
	}
	if n := failuresCounted(t, st, "alice"); n > 8 {
		t.Errorf("%d of 30 guesses from 10 addresses were checked, want the per-username limit to hold", n)
	}
	if waited == 0 {
		t.Errorf("no guess was told to wait")
	}
}

func TestAttackPasswordLockoutOfTheOwner(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	st := testStore(t, e.storagePath)
	// Someone keeps alice's account at the longest wait...
	attacker := browserFrom(t, "127.0.0.2")
	form := startPasswordLogin(t, attacker, c)
	for range 7 {
		postPassword(t, attacker, form, "alice", "guess")
	}
	now := time.Now()
	wait, _ := json.Marshal(map[string]int64{"since": now.Add(-29 * time.Second).UnixNano(), "until": now.Add(15 * time.Minute).UnixNano()})
	if err := st.Put(context.Background(), state.KindUserLoginWait.Key("alice"), wait, 15*time.Minute); err != nil {
		t.Fatal(err)
	}
	// ...yet alice, from a network with no failures, gets in after a
	// short, bounded wait.
	owner := browserFrom(t, "127.0.0.50")
	form = startPasswordLogin(t, owner, c)
	status, hdr, body := postPassword(t, owner, form, "alice", "correct horse")
	if status == http.StatusTooManyRequests {
		n := assertLoginWaitPage(t, "the owner from a clean network", status, hdr, body)
		if n > 30 {
			t.Fatalf("the owner must wait %ds, more than the 30s bound", n)
		}
		time.Sleep(time.Duration(n) * time.Second)
		status, hdr, body = postPassword(t, owner, form, "alice", "correct horse")
	}
	if loc, err := url.Parse(hdr.Get("Location")); status != http.StatusSeeOther || err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("the owner's right password: %d %v %.300s", status, hdr, body)
	}
	// The attacker's address still waits the full time.
	status, hdr, body = postPassword(t, attacker, startPasswordLogin(t, attacker, c), "alice", "correct horse")
	if n := assertLoginWaitPage(t, "the guessing address", status, hdr, body); n < 60 {
		t.Errorf("the guessing address waits only %ds", n)
	}
}

func TestAttackParallelLoginPosts(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	st := testStore(t, e.storagePath)
	b := browserFrom(t, "127.0.0.2")
	form := startPasswordLogin(t, b, c)
	var wg sync.WaitGroup
	for range 30 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := oauthtest.CloneValues(form)
			f.Set("username", "bob")
			f.Set("password", "guess")
			req, _ := http.NewRequest(http.MethodPost, siteAddr()+"/authorize/login", strings.NewReader(f.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", siteAddr())
			if resp, err := b.Do(req); err == nil {
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	if n := failuresCounted(t, st, "bob"); n > 5 {
		t.Errorf("%d parallel guesses on one login were checked, want at most 5", n)
	}
	if status, _, body := postPassword(t, b, form, "alice", "correct horse"); status == http.StatusSeeOther && strings.Contains(string(body), "code=") {
		t.Errorf("the used-up login still logs in")
	}
}

func TestAttackCookieCrossingBetweenLocalSites(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	portA, portB := freeport.One(), freeport.One()
	site := func(port int) string {
		return fmt.Sprintf(`
http://localhost:%d {
	mcp_auth {
		issuer http://localhost:%d
		%s
	}
	respond "backend"
}
`, port, port, usersUpstream())
	}
	startCaddy(t, globalOptions(storagePath, filepath.Join(logDir, "caddy.log"))+site(portA)+site(portB))
	origin := func(port int) string { return fmt.Sprintf("http://localhost:%d", port) }

	jar, _ := cookiejar.New(nil)
	b := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	consent := map[int]url.Values{}
	cookies := map[int]*http.Cookie{}
	for _, port := range []int{portA, portB} {
		raw, _ := json.Marshal(map[string]any{"redirect_uris": []string{clientRedirect}, "token_endpoint_auth_method": "none"})
		status, _, body := oauthtest.Do(t, b, http.MethodPost, origin(port)+"/register", http.Header{"Content-Type": {"application/json"}}, raw)
		var reg struct {
			ClientID string `json:"client_id"`
		}
		if err := json.Unmarshal(body, &reg); status != http.StatusCreated || err != nil {
			t.Fatalf("registering at %d: %d %s", port, status, body)
		}
		q := authParams(oauthtest.Client{ID: reg.ClientID, Redirects: []string{clientRedirect}}, oauthtest.NewPKCE())
		q.Set("resource", origin(port))
		status, hdr, body := oauthtest.Get(t, b, origin(port)+"/authorize?"+q.Encode(), nil)
		if status != http.StatusOK {
			t.Fatalf("authorization request at %d: %d %.300s", port, status, body)
		}
		// Each site sets its own cookie, even though the browser sends
		// the other site's (cookies ignore ports).
		set := (&http.Response{Header: hdr}).Cookies()
		if len(set) != 1 {
			t.Fatalf("site %d set %d cookies, want its own browser cookie", port, len(set))
		}
		cookies[port], consent[port] = set[0], formFields(string(body))
	}
	if cookies[portA].Name == cookies[portB].Name {
		t.Fatalf("both local sites use the cookie %q", cookies[portA].Name)
	}
	for _, c := range cookies {
		if strings.HasPrefix(c.Name, "__Host-") || c.Secure || !c.HttpOnly || c.Path != "/" {
			t.Errorf("cookie of an http site: %+v", c)
		}
	}

	// B's consent form posted with A's cookie alone (same name or not) is
	// not B's browser.
	form := oauthtest.CloneValues(consent[portB])
	form.Set("decision", "approve")
	for _, name := range []string{cookies[portA].Name, cookies[portB].Name} {
		status, _, body := oauthtest.Do(t, &http.Client{Timeout: 10 * time.Second, CheckRedirect: b.CheckRedirect}, http.MethodPost, origin(portB)+"/authorize/consent", http.Header{
			"Content-Type": {"application/x-www-form-urlencoded"}, "Origin": {origin(portB)},
			"Cookie": {name + "=" + cookies[portA].Value},
		}, []byte(form.Encode()))
		if status != http.StatusForbidden {
			t.Errorf("B's consent with A's cookie value under %q: %d, want 403: %.300s", name, status, body)
		}
	}
}

func TestAttackPasswordCheckFlood(t *testing.T) {
	// A slow hash, as in production (cost 13: about half a second).
	hash, err := bcrypt.GenerateFromPassword([]byte("slow horse"), 13)
	if err != nil {
		t.Fatal(err)
	}
	// How long one check takes here (the race detector and a busy machine
	// slow bcrypt down many times): what a guess may wait is judged by it.
	begin := time.Now()
	_ = bcrypt.CompareHashAndPassword(hash, []byte("guess"))
	oneCheck := time.Since(begin)
	e := startAS(t, "upstream users {\n\t\t\tcarol "+string(hash)+"\n\t\t}")
	c := e.publicClient(t)
	// More simultaneous guesses than the process checks at once, each
	// from its own address and login so that no other limit applies.
	n := 6 * max(2, runtime.GOMAXPROCS(0))
	browsers, forms := make([]*http.Client, n), make([]url.Values, n)
	for i := range n {
		browsers[i] = browserFrom(t, "127.0.1."+strconv.Itoa(i+1))
		browsers[i].Timeout = time.Minute
		forms[i] = startPasswordLogin(t, browsers[i], c)
	}
	var (
		wg               sync.WaitGroup
		mu               sync.Mutex
		busy, checked    int
		slowest, started = time.Duration(0), time.Now()
	)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f := oauthtest.CloneValues(forms[i])
			f.Set("username", "carol-"+strconv.Itoa(i))
			f.Set("password", "guess")
			req, _ := http.NewRequest(http.MethodPost, siteAddr()+"/authorize/login", strings.NewReader(f.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", siteAddr())
			resp, err := browsers[i].Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, time.Since(started))
			switch resp.StatusCode {
			case http.StatusServiceUnavailable:
				if resp.Header.Get("Retry-After") == "" {
					t.Errorf("503 without Retry-After")
				}
				busy++
			case http.StatusUnauthorized:
				checked++
			default:
				t.Errorf("guess answered %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	if busy == 0 {
		t.Errorf("all %d simultaneous password checks ran (%d checked): nothing bounds the bcrypt work", n, checked)
	}
	// A guess waits at most a second for its turn, then runs alone or
	// beside as many as the cap allows; queued, the last of n would wait
	// for all the others.
	if limit := 2*time.Second + 4*oneCheck; slowest > limit {
		t.Errorf("the slowest guess was answered after %v (one check takes %v): guesses queue up", slowest, oneCheck)
	}
}
