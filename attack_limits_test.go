package mcpauth

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Attacks on the work anyone may make the server do without credentials:
// registering clients, starting authorization requests, guessing passwords.

// clientFrom is an HTTP client (no cookies, no redirects) whose connections
// come from the loopback address ip, as requests from another machine
// would.
func clientFrom(t *testing.T, ip string) *http.Client {
	t.Helper()
	c := mustTLSClient(t)
	tr := c.Transport.(*http.Transport)
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
	status, hdr, raw := do(t, c, http.MethodPost, siteAddr()+"/register", h, []byte(body))
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
	if keys := storeKeys(t, testStore(t, e.storagePath), "client/"); len(keys) != 6 {
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
			status, _, code := registerFrom(t, e.http, tc.body, nil)
			if status != http.StatusBadRequest || code != tc.code {
				t.Errorf("%d %q, want 400 %s", status, code, tc.code)
			}
		})
	}
	if keys := storeKeys(t, testStore(t, e.storagePath), "client/"); len(keys) != 0 {
		t.Errorf("%d oversized clients stored", len(keys))
	}
}

// authorizeFrom sends the authorization request q + extra (raw) with c.
func authorizeFrom(t *testing.T, c *http.Client, q url.Values, extra string) (int, http.Header, []byte) {
	t.Helper()
	return get(t, c, authorizeURL(q)+extra, nil)
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
			before := len(storeKeys(t, st, "request/"))
			q := authParams(c, newPKCE())
			q.Set("state", tc.state)
			if tc.nonce != "" {
				q.Set("nonce", tc.nonce)
			}
			status, hdr, body := authorizeFrom(t, e.http, q, "")
			stored := len(storeKeys(t, st, "request/")) - before
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
	q := authParams(c, newPKCE())
	q.Set("state", long(12<<10))
	q.Set("client_id", "unknown-client")
	status, hdr, body := authorizeFrom(t, e.http, q, "")
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
			q := authParams(c, newPKCE())
			q.Set("state", "st")
			status, hdr, body := authorizeFrom(t, e.http, q, tc.extra)
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
		if status, hdr, body = authorizeFrom(t, attacker, authParams(c, newPKCE()), ""); status != http.StatusOK {
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
	if n := len(storeKeys(t, st, "request/")); n > 60 {
		t.Errorf("%d pending requests stored from one address", n)
	}
	// The same source under another spelling is the same source; another
	// address is not held up.
	if status, _, _ := authorizeFrom(t, clientFrom(t, "127.0.0.3"), authParams(c, newPKCE()), ""); status != http.StatusOK {
		t.Errorf("another address: %d, want the consent page", status)
	}
}
