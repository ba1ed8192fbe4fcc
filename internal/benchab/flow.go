package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// redirectURI is where the authorization server sends the code; nothing
// listens there, the login stops at that redirect.
const redirectURI = "http://127.0.0.1/callback"

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// newBrowser returns a client that keeps cookies and stops at redirects,
// as the login flow follows them itself.
func newBrowser() *http.Client { return browserFrom(nil) }

// browserFrom is newBrowser with connections from the given local
// address, or any with nil.
func browserFrom(local net.IP) *http.Client {
	jar, _ := cookiejar.New(nil)
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	if local != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: local}
	}
	return &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dialer.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// login registers a public client and logs in once with it: the access
// token is one a real MCP client would hold.
func login(issuer, user, password string) (string, error) {
	browser := newBrowser()
	clientID, err := register(browser, issuer, []string{"authorization_code"})
	if err != nil {
		return "", err
	}
	tokens, err := authorize(browser, issuer, clientID, user, password, nil)
	if err != nil {
		return "", err
	}
	token, _ := tokens["access_token"].(string)
	if token == "" {
		return "", fmt.Errorf("token: no access_token in %v", tokens)
	}
	return token, nil
}

// rotationsPerFamily is how many times the load generator rotates one
// family before its connection moves on to a fresh one: the authorization
// server keeps at most 32 usable access tokens per grant, the login's own
// included, and refuses a refresh beyond that until the oldest expires.
const rotationsPerFamily = 31

// loginsPerSource keeps each source address well under the authorization
// server's per-source limit on authorization requests (a burst of 60).
const loginsPerSource = 20

// Token request files, as families and codes write them and tokenLoad
// reads them, hold one URL-encoded token request body per line.

// topUpFamilies appends to file enough refresh token families, one login
// each, that conns connections can make rotations refreshes between them:
// each connection leaves at most one family partly used.
func topUpFamilies(file, issuer, user, password string, rotations, conns int) error {
	bodies, err := readLines(file)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	need := conns + (rotations+rotationsPerFamily-1)/rotationsPerFamily - len(bodies)
	if need <= 0 {
		return nil
	}
	return writeTokenRequests(file, os.O_APPEND, issuer, need, func(browser *http.Client, clientID string) (url.Values, error) {
		tokens, err := authorize(browser, issuer, clientID, user, password, nil)
		if err != nil {
			return nil, err
		}
		refresh, _ := tokens["refresh_token"].(string)
		if refresh == "" {
			return nil, errors.New("token: no refresh_token in the response")
		}
		return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {clientID}}, nil
	}, "authorization_code", "refresh_token")
}

// codes replaces file with n code exchanges, each code from its own login:
// codes live a minute, so they are made just before they are used.
func codes(file, issuer, user, password string, n int) error {
	return writeTokenRequests(file, os.O_TRUNC, issuer, n, func(browser *http.Client, clientID string) (url.Values, error) {
		code, verifier, err := authorizationCode(browser, issuer, clientID, user, password)
		if err != nil {
			return nil, err
		}
		return exchangeForm(issuer, clientID, code, verifier), nil
	}, "authorization_code")
}

// writeTokenRequests registers a public client with grantTypes and writes
// n token requests made by request to file, opened with flag. The logins
// run on a few connections at once, loginsPerSource from each of many
// source addresses (random ones in 127.1.0.0/16, all loopback on Linux).
func writeTokenRequests(file string, flag int, issuer string, n int,
	request func(browser *http.Client, clientID string) (url.Values, error), grantTypes ...string) error {
	clientID, err := register(newBrowser(), issuer, grantTypes)
	if err != nil {
		return err
	}
	const workers = 4
	bodies := make([]string, n)
	errs := make([]error, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			var browser *http.Client
			for done := 0; ; done++ {
				i := next.Add(1) - 1
				if i >= int64(n) {
					return
				}
				if done%loginsPerSource == 0 {
					browser = browserFrom(randomLoopback())
				}
				form, err := request(browser, clientID)
				if err != nil {
					errs[w] = err
					return
				}
				bodies[i] = form.Encode()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|flag, 0o600)
	if err != nil {
		return err
	}
	_, err = io.WriteString(f, strings.Join(bodies, "\n")+"\n")
	return errors.Join(err, f.Close())
}

// randomLoopback returns a random address in 127.1.0.0/16.
func randomLoopback() net.IP {
	var b [2]byte
	_, _ = rand.Read(b[:])
	return net.IPv4(127, 1, b[0], b[1])
}

// readLines reads the non-empty lines of file.
func readLines(file string) ([]string, error) {
	raw, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(raw)), nil
}

// register registers a public client with the given grant types and
// returns its client_id.
func register(client *http.Client, issuer string, grantTypes []string) (string, error) {
	reg, err := postJSON(client, issuer+"/register", registrationRequest(grantTypes))
	if err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	clientID, _ := reg["client_id"].(string)
	if clientID == "" {
		return "", fmt.Errorf("register: no client_id in %v", reg)
	}
	return clientID, nil
}

func registrationRequest(grantTypes []string) map[string]any {
	return map[string]any{
		"client_name": "bench-ab", "redirect_uris": []string{redirectURI},
		"grant_types": grantTypes, "token_endpoint_auth_method": "none",
	}
}

// authorize runs the authorization code flow, redeems the code and
// returns the token response. The token request carries tokenHeader, if
// any (a DPoP proof).
func authorize(client *http.Client, issuer, clientID, user, password string, tokenHeader http.Header) (map[string]any, error) {
	code, verifier, err := authorizationCode(client, issuer, clientID, user, password)
	if err != nil {
		return nil, err
	}
	return redeem(client, issuer, exchangeForm(issuer, clientID, code, verifier), tokenHeader)
}

// authorizationCode runs the authorization code flow with PKCE for
// issuer's /mcp through the login and consent forms as a browser would,
// and returns the code and its verifier.
func authorizationCode(client *http.Client, issuer, clientID, user, password string) (code, verifier string, err error) {
	var b [32]byte
	_, _ = rand.Read(b[:])
	verifier = base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(verifier))
	next := issuer + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {"bench"}, "resource": {issuer + "/mcp"},
	}.Encode()
	method, form := http.MethodGet, url.Values(nil)
	for hops := 0; hops < 10; hops++ {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, next, body)
		if err != nil {
			return "", "", err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", issuer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", "", err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		method, form = http.MethodGet, nil
		loc, _ := resp.Location()
		switch {
		case loc != nil && strings.HasPrefix(loc.String(), redirectURI):
			if code = loc.Query().Get("code"); code == "" {
				return "", "", fmt.Errorf("authorization failed: %s", loc)
			}
			return code, verifier, nil
		case loc != nil:
			next = loc.String()
		case resp.StatusCode == http.StatusOK && strings.Contains(string(page), `name="decision"`):
			form = hiddenFields(string(page))
			form.Set("decision", "approve")
			method, next = http.MethodPost, issuer+"/authorize/consent"
		case resp.StatusCode == http.StatusOK && strings.Contains(string(page), `name="password"`):
			form = hiddenFields(string(page))
			form.Set("username", user)
			form.Set("password", password)
			method, next = http.MethodPost, issuer+"/authorize/login"
		default:
			return "", "", fmt.Errorf("%s %s: unexpected %d", req.Method, req.URL.Path, resp.StatusCode)
		}
	}
	return "", "", errors.New("too many redirects")
}

func hiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

// exchangeForm is the token request that redeems code for issuer's /mcp.
func exchangeForm(issuer, clientID, code, verifier string) url.Values {
	return url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"client_id": {clientID}, "code_verifier": {verifier}, "resource": {issuer + "/mcp"},
	}
}

// redeem sends form to issuer's token endpoint, with header.
func redeem(client *http.Client, issuer string, form url.Values, header http.Header) (map[string]any, error) {
	req, err := http.NewRequest(http.MethodPost, issuer+"/token", strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	m, err := decode(resp)
	if err != nil {
		return nil, fmt.Errorf("token: %w", err)
	}
	return m, nil
}

func postJSON(client *http.Client, url string, body any) (map[string]any, error) {
	raw, _ := json.Marshal(body)
	resp, err := client.Post(url, "application/json", strings.NewReader(string(raw)))
	if err != nil {
		return nil, err
	}
	return decode(resp)
}

func decode(resp *http.Response) (map[string]any, error) {
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		return nil, fmt.Errorf("status %d, body not JSON: %w", resp.StatusCode, err)
	}
	if resp.StatusCode >= 300 {
		return nil, fmt.Errorf("status %d: %v", resp.StatusCode, m)
	}
	return m, nil
}
