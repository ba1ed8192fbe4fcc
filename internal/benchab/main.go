// Command benchab is the helper of scripts/bench-ab.sh: a trivial MCP
// backend, a login that gets a real access token from a running
// authorization server, and an SVG plot of the latency percentiles.
//
//	benchab backend <addr>                  answer every request with 200 and a short JSON body
//	benchab login <issuer> <user> <pass>    print an access token for <issuer>/mcp
//	benchab ports <n>                       print n free loopback TCP ports
//	benchab svg <title>                     read "label p50 p75 p90 p99" lines (µs), write SVG
package main

import (
	"bufio"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch args := os.Args[2:]; os.Args[1] {
	case "backend":
		if len(args) != 1 {
			usage()
		}
		err = serveBackend(args[0])
	case "login":
		if len(args) != 3 {
			usage()
		}
		var token string
		if token, err = login(args[0], args[1], args[2]); err == nil {
			fmt.Println(token)
		}
	case "ports":
		n, convErr := strconv.Atoi(strings.Join(args, ""))
		if len(args) != 1 || convErr != nil {
			usage()
		}
		err = freePorts(n)
	case "svg":
		if len(args) != 1 {
			usage()
		}
		err = plot(os.Stdin, os.Stdout, args[0])
	default:
		usage()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchab:", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: benchab backend <addr> | login <issuer> <user> <password> | ports <n> | svg <title>")
	os.Exit(2)
}

// freePorts prints n distinct free ports, holding them all open until
// printed so none is given twice.
func freePorts(n int) error {
	var ports []string
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		defer l.Close()
		ports = append(ports, strconv.Itoa(l.Addr().(*net.TCPAddr).Port))
	}
	fmt.Println(strings.Join(ports, " "))
	return nil
}

// serveBackend is the proxied MCP server: it reads the request and answers
// at once, so the figures are the proxy's.
func serveBackend(addr string) error {
	srv := &http.Server{Addr: addr, ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"jsonrpc":"2.0","id":1,"result":{}}`)
	})}
	return srv.ListenAndServe()
}

// redirectURI is where the authorization server sends the code; nothing
// listens there, the login stops at that redirect.
const redirectURI = "http://127.0.0.1/callback"

var hiddenInput = regexp.MustCompile(`<input type="hidden" name="([a-z_]+)" value="([^"]*)">`)

// login registers a public client, runs the authorization code flow with
// PKCE through the consent and login forms as a browser would, and redeems
// the code: the token is one a real MCP client would hold.
func login(issuer, user, password string) (string, error) {
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	reg, err := postJSON(client, issuer+"/register", map[string]any{
		"client_name": "bench-ab", "redirect_uris": []string{redirectURI},
		"grant_types": []string{"authorization_code"}, "token_endpoint_auth_method": "none",
	})
	if err != nil {
		return "", fmt.Errorf("register: %w", err)
	}
	clientID, _ := reg["client_id"].(string)

	var b [32]byte
	_, _ = rand.Read(b[:])
	verifier := base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(verifier))
	resource := issuer + "/mcp"
	next := issuer + "/authorize?" + url.Values{
		"response_type": {"code"}, "client_id": {clientID}, "redirect_uri": {redirectURI},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
		"state": {"bench"}, "resource": {resource},
	}.Encode()
	method, form := http.MethodGet, url.Values(nil)
	for hops := 0; hops < 10; hops++ {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, next, body)
		if err != nil {
			return "", err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.Header.Set("Origin", issuer)
		}
		resp, err := client.Do(req)
		if err != nil {
			return "", err
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		method, form = http.MethodGet, nil
		loc, _ := resp.Location()
		switch {
		case loc != nil && strings.HasPrefix(loc.String(), redirectURI):
			code := loc.Query().Get("code")
			if code == "" {
				return "", fmt.Errorf("authorization failed: %s", loc)
			}
			return redeem(client, issuer, clientID, code, verifier, resource)
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
			return "", fmt.Errorf("%s %s: unexpected %d", req.Method, req.URL.Path, resp.StatusCode)
		}
	}
	return "", errors.New("too many redirects")
}

func hiddenFields(page string) url.Values {
	v := url.Values{}
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		v.Set(m[1], html.UnescapeString(m[2]))
	}
	return v
}

func redeem(client *http.Client, issuer, clientID, code, verifier, resource string) (string, error) {
	resp, err := client.PostForm(issuer+"/token", url.Values{
		"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {redirectURI},
		"client_id": {clientID}, "code_verifier": {verifier}, "resource": {resource},
	})
	if err != nil {
		return "", err
	}
	m, err := decode(resp)
	if err != nil {
		return "", fmt.Errorf("token: %w", err)
	}
	token, _ := m["access_token"].(string)
	if token == "" {
		return "", fmt.Errorf("token: no access_token in %v", m)
	}
	return token, nil
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

// plot draws one polyline per configuration over the percentiles.
func plot(in io.Reader, out io.Writer, title string) error {
	type series struct {
		label string
		us    []float64
	}
	var all []series
	maxUS := 1.0
	sc := bufio.NewScanner(in)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) != 5 {
			continue
		}
		s := series{label: f[0]}
		for _, v := range f[1:] {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("latency %q: %w", v, err)
			}
			s.us = append(s.us, x)
			maxUS = max(maxUS, x)
		}
		all = append(all, s)
	}
	if err := sc.Err(); err != nil {
		return err
	}
	const w, h, left, bottom, top, right = 640, 360, 60, 40, 30, 190
	percentiles := []string{"p50", "p75", "p90", "p99"}
	x := func(i int) float64 { return left + float64(i)*float64(w-left-right)/float64(len(percentiles)-1) }
	y := func(us float64) float64 { return float64(h-bottom) - us/maxUS*float64(h-bottom-top) }
	colors := []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"}

	fmt.Fprintf(out, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(out, `<rect width="100%%" height="100%%" fill="white"/><text x="%d" y="18" font-size="14">%s</text>`+"\n", left, html.EscapeString(title))
	for i := 0; i <= 4; i++ {
		us := maxUS * float64(i) / 4
		fmt.Fprintf(out, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="%d" y="%.1f" text-anchor="end">%.0f µs</text>`+"\n",
			left, w-right, y(us), y(us), left-6, y(us)+4, us)
	}
	for i, p := range percentiles {
		fmt.Fprintf(out, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x(i), h-bottom+18, p)
	}
	for n, s := range all {
		color := colors[n%len(colors)]
		var pts []string
		for i, us := range s.us {
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i), y(us)))
		}
		fmt.Fprintf(out, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", color, strings.Join(pts, " "))
		fmt.Fprintf(out, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", w-right+10, top+16*(n+1), color, html.EscapeString(s.label))
	}
	fmt.Fprintln(out, "</svg>")
	return nil
}
