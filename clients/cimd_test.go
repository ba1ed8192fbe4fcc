package clients

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/fetch"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

func TestIsMetadataURL(t *testing.T) {
	tests := []struct {
		url  string
		want bool
	}{
		{"https://chatgpt.com/oauth/abc123/client.json", true},
		{"https://claude.ai/oauth/mcp-oauth-client-metadata", true},
		{"https://claude.ai/oauth/claude-code-client-metadata", true},
		{"https://vscode.dev/oauth/client-metadata.json", true},
		{"https://cimd.test/client.json", true},
		{"https://cimd.test:8443/client.json", true},
		{"https://cimd.test/client.json?v=1", true}, // discouraged, not forbidden
		{"https://cimd.test/dir/", true},

		{"", false},
		{"client-abc", false},
		{"http://cimd.test/client.json", false},
		{"HTTPS://cimd.test/client.json", false},
		{"https://cimd.test", false},
		{"https://cimd.test/", false},
		{"https://cimd.test?x=1", false},
		{"https://u:p@cimd.test/x", false},
		{"https://u@cimd.test/x", false},
		{"https://cimd.test/a/../x.json", false},
		{"https://cimd.test/a/./x.json", false},
		{"https://cimd.test/a/%2e%2e/x.json", false},
		{"https://cimd.test/a/%2E./x.json", false},
		{"https://cimd.test/x.json#f", false},
		{"https://cimd.test/x.json#", false},
		{"https:///x.json", false},
		{"https://cimd.test/x y.json", false},
		{"https://cimd.test/" + strings.Repeat("a", MaxMetadataURLLength), false},
	}
	for _, tc := range tests {
		if got := IsMetadataURL(tc.url); got != tc.want {
			t.Errorf("IsMetadataURL(%q) = %v, want %v", tc.url, got, tc.want)
		}
	}
}

func TestFetcherValidDocument(t *testing.T) {
	ds := newDocServer(t)
	var accept string
	url := ds.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
		accept = r.Header.Get("Accept")
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		_, _ = w.Write(doc(ds.URL+"/client.json", map[string]any{
			"client_uri":                 "https://client.test",
			"logo_uri":                   "https://client.test/logo.png",
			"grant_types":                []string{"authorization_code", "refresh_token"},
			"response_types":             []string{"code"},
			"scope":                      "read write",
			"token_endpoint_auth_method": "none",
			"application_type":           "native",
		}))
	})
	f := ds.fetcher(FetcherOptions{})
	c, err := f.Client(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	want := &Client{
		ClientID: url, ClientName: "Test Client", ClientURI: "https://client.test", LogoURI: "https://client.test/logo.png",
		RedirectURIs:  []string{"https://client.test/cb", "http://127.0.0.1/callback"},
		GrantTypes:    []string{"authorization_code", "refresh_token"},
		ResponseTypes: []string{"code"}, TokenEndpointAuthMethod: AuthMethodNone, ApplicationType: ApplicationNative,
		Scope: "read write", Metadata: true,
	}
	gotJSON, _ := json.Marshal(c)
	wantJSON, _ := json.Marshal(want)
	if string(gotJSON) != string(wantJSON) {
		t.Errorf("client =\n%s\nwant\n%s", gotJSON, wantJSON)
	}
	if accept != "application/json" {
		t.Errorf("Accept = %q", accept)
	}
	if _, ok := MatchRedirectURI(c.RedirectURIs, "http://127.0.0.1:5000/callback"); !ok {
		t.Error("loopback redirect with a port does not match the document's")
	}

	// Returned clients are copies: changing one must not change the cache.
	c.RedirectURIs[0] = "https://evil.test/cb"
	again, err := f.Client(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if again.RedirectURIs[0] != "https://client.test/cb" {
		t.Error("cached client was modified through a returned copy")
	}
}

func TestFetcherDefaultsToNone(t *testing.T) {
	ds := newDocServer(t)
	url := ds.serveJSON("/c.json", func(u string) []byte { return doc(u, nil) }, "")
	c, err := ds.fetcher(FetcherOptions{}).Client(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenEndpointAuthMethod != AuthMethodNone || !c.IsPublic() || !c.Metadata {
		t.Errorf("method %q, metadata %v", c.TokenEndpointAuthMethod, c.Metadata)
	}
	if c.SecretHash != "" || c.JWKSURI != "" || c.JWKS != nil {
		t.Error("public metadata client has credentials")
	}
}

func TestFetcherRejectsDocuments(t *testing.T) {
	k := testKeys()
	pubJWKS := json.RawMessage(jwksJSON(t, publicJWK(t, &k.rsa.PublicKey, "k1")))
	privKey := publicJWK(t, &k.rsa.PublicKey, "k1")
	privRaw, _ := json.Marshal(privKey)
	var privMap map[string]any
	_ = json.Unmarshal(privRaw, &privMap)
	privMap["d"] = "AQAB" // a private member, however bogus
	privJWKS, _ := json.Marshal(map[string]any{"keys": []any{privMap}})
	symJWKS := `{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}`

	tests := []struct {
		name   string
		body   func(url string) []byte
		header func(h http.Header)
		status int
		want   string // substring of the description
	}{
		{name: "client_id trailing slash", body: func(u string) []byte { return doc(u, map[string]any{"client_id": u + "/"}) }, want: "does not match"},
		{name: "client_id case", body: func(u string) []byte {
			return doc(u, map[string]any{"client_id": strings.Replace(u, "/client.json", "/Client.json", 1)})
		}, want: "does not match"},
		{name: "client_id scheme case", body: func(u string) []byte {
			return doc(u, map[string]any{"client_id": strings.Replace(u, "https://", "HTTPS://", 1)})
		}, want: "does not match"},
		{name: "client_id missing", body: func(u string) []byte { return doc(u, map[string]any{"client_id": nil}) }, want: "does not match"},
		{name: "client_id not string", body: func(u string) []byte { return doc(u, map[string]any{"client_id": 7}) }, want: "does not match"},
		{name: "no redirect_uris", body: func(u string) []byte { return doc(u, map[string]any{"redirect_uris": nil}) }, want: "redirect_uris is required"},
		{name: "empty redirect_uris", body: func(u string) []byte { return doc(u, map[string]any{"redirect_uris": []string{}}) }, want: "redirect_uris is required"},
		{name: "bad redirect", body: func(u string) []byte {
			return doc(u, map[string]any{"redirect_uris": []string{"http://evil.test/cb"}})
		}, want: "redirect_uris[0]"},
		{name: "no client_name", body: func(u string) []byte { return doc(u, map[string]any{"client_name": nil}) }, want: "client_name is required"},
		{name: "client_secret_basic", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "client_secret_basic"})
		}, want: "token_endpoint_auth_method"},
		{name: "client_secret_post", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "client_secret_post"})
		}, want: "token_endpoint_auth_method"},
		{name: "client_secret_jwt", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "client_secret_jwt"})
		}, want: "token_endpoint_auth_method"},
		{name: "client_secret member", body: func(u string) []byte { return doc(u, map[string]any{"client_secret": "s"}) }, want: "client secret"},
		{name: "client_secret_expires_at member", body: func(u string) []byte {
			return doc(u, map[string]any{"client_secret_expires_at": 0})
		}, want: "client secret"},
		{name: "implicit grant", body: func(u string) []byte { return doc(u, map[string]any{"grant_types": []string{"implicit"}}) }, want: "grant_types"},
		{name: "token response", body: func(u string) []byte { return doc(u, map[string]any{"response_types": []string{"token"}}) }, want: "response_types"},
		{name: "private_key_jwt without keys", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "private_key_jwt"})
		}, want: "requires jwks_uri or jwks"},
		{name: "private_key_jwt http jwks_uri", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "http://client.test/jwks"})
		}, want: "https"},
		{name: "jwks and jwks_uri", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks_uri": "https://client.test/jwks", "jwks": pubJWKS})
		}, want: "both"},
		{name: "inline private key", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(privJWKS)})
		}, want: "public keys only"},
		{name: "inline symmetric key", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(symJWKS)})
		}, want: "public keys only"},
		{name: "inline too many keys", body: func(u string) []byte {
			var keys []json.RawMessage
			for range maxJWKSKeys + 1 {
				keys = append(keys, json.RawMessage(`{"kty":"EC","crv":"P-256","x":"a","y":"b"}`))
			}
			return doc(u, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": keys}})
		}, want: "too many keys"},
		{name: "inline malformed key", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": json.RawMessage(`{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}`)})
		}, want: "malformed"},
		{name: "inline empty set", body: func(u string) []byte {
			return doc(u, map[string]any{"token_endpoint_auth_method": "private_key_jwt", "jwks": map[string]any{"keys": []any{}}})
		}, want: "no keys"},
		{name: "array", body: func(string) []byte { return []byte(`[]`) }, want: "not a JSON object"},
		{name: "malformed JSON", body: func(string) []byte { return []byte(`{"client_id":`) }, want: "not a JSON object"},
		{name: "HTML", body: func(string) []byte { return []byte(`<html></html>`) },
			header: func(h http.Header) { h.Set("Content-Type", "text/html") }, want: "not served as JSON"},
		{name: "text/plain JSON", body: func(u string) []byte { return doc(u, nil) },
			header: func(h http.Header) { h.Set("Content-Type", "text/plain") }, want: "not served as JSON"},
		{name: "no content type", body: func(u string) []byte { return doc(u, nil) },
			header: func(h http.Header) { h["Content-Type"] = nil }, want: "not served as JSON"},
		{name: "404", body: func(string) []byte { return []byte(`{}`) }, status: 404, want: "status 404"},
		{name: "500", body: func(string) []byte { return []byte(`{}`) }, status: 500, want: "status 500"},
		{name: "oversized", body: func(u string) []byte {
			return doc(u, map[string]any{"padding": strings.Repeat("x", 6<<10)})
		}, want: "too large"},
		{name: "oversized chunked", body: func(u string) []byte {
			return doc(u, map[string]any{"padding": strings.Repeat("x", 6<<10)})
		}, header: func(h http.Header) { h.Set("Transfer-Encoding", "chunked") }, want: "too large"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDocServer(t)
			url := ds.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if tc.header != nil {
					tc.header(w.Header())
				}
				if tc.status != 0 {
					w.WriteHeader(tc.status)
				}
				_, _ = w.Write(tc.body(ds.URL + "/client.json"))
			})
			c, err := ds.fetcher(FetcherOptions{}).Client(context.Background(), url)
			var me *MetadataError
			if !errors.As(err, &me) {
				t.Fatalf("Client = %+v, %v; want a *MetadataError", c, err)
			}
			if !strings.Contains(me.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", me.Error(), tc.want)
			}
		})
	}
}

func TestFetcherRefusesRedirect(t *testing.T) {
	ds := newDocServer(t)
	ds.serveJSON("/real.json", func(u string) []byte { return doc(u, nil) }, "")
	url := ds.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/real.json", http.StatusFound)
	})
	_, err := ds.fetcher(FetcherOptions{}).Client(context.Background(), url)
	if err == nil || !strings.Contains(err.Error(), "redirect") {
		t.Fatalf("err = %v, want a redirect refusal", err)
	}
	if n := ds.count("/real.json"); n != 0 {
		t.Errorf("redirect target fetched %d times", n)
	}
}

func TestFetcherRefusesInvalidURLBeforeFetching(t *testing.T) {
	ds := newDocServer(t)
	f := ds.fetcher(FetcherOptions{})
	for _, u := range []string{
		strings.Replace(ds.URL, "https", "http", 1) + "/client.json",
		ds.URL,
		ds.URL + "/",
		ds.URL + "/a/../client.json",
		ds.URL + "/client.json#f",
		strings.Replace(ds.URL, "https://", "https://u:p@", 1) + "/client.json",
	} {
		if _, err := f.Client(context.Background(), u); err == nil || !strings.Contains(err.Error(), "not a valid client metadata document URL") {
			t.Errorf("Client(%q) err = %v", u, err)
		}
	}
	for path, n := range ds.hits {
		t.Errorf("server saw %d requests for %s", n.Load(), path)
	}
}

func TestFetcherRefusesInternalAddresses(t *testing.T) {
	ds := newDocServer(t)
	ds.serveJSON("/client.json", func(u string) []byte { return doc(u, nil) }, "")
	_, port, _ := net.SplitHostPort(ds.Listener.Addr().String())

	// Without AllowLoopback the test server itself is off limits, by IP
	// and by a name that resolves to it.
	strict := NewFetcher(FetcherOptions{RootCAs: ds.fetcher(FetcherOptions{}).opts.RootCAs})
	for _, u := range []string{
		"https://127.0.0.1:" + port + "/client.json",
		"https://localhost:" + port + "/client.json",
	} {
		_, err := strict.Client(context.Background(), u)
		if err == nil || !strings.Contains(err.Error(), "not allowed") {
			t.Errorf("Client(%q) err = %v, want an address refusal", u, err)
		}
		if !errors.Is(err, fetch.ErrBlockedAddress) {
			t.Errorf("Client(%q) err does not wrap fetch.ErrBlockedAddress: %v", u, err)
		}
		if strings.Contains(err.Error(), "127.0.0.1") {
			t.Errorf("error %q reveals the resolved address", err)
		}
	}
	if n := ds.count("/client.json"); n != 0 {
		t.Errorf("internal listener was hit %d times", n)
	}

	// AllowLoopback opens loopback only; the refusal happens before any
	// packet is sent, so these return at once.
	loose := ds.fetcher(FetcherOptions{Timeout: 2 * time.Second})
	for _, u := range []string{
		"https://10.255.255.1/client.json",
		"https://169.254.169.254/latest/meta-data.json",
		"https://192.168.0.1/client.json",
		"https://100.64.0.1/client.json",
		"https://0.0.0.0:" + port + "/client.json",
	} {
		start := time.Now()
		_, err := loose.Client(context.Background(), u)
		if !errors.Is(err, fetch.ErrBlockedAddress) {
			t.Errorf("Client(%q) err = %v, want an address refusal", u, err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("Client(%q) took %v: refusal should not wait for the network", u, d)
		}
	}
}

func TestFetcherTimeout(t *testing.T) {
	ds := newDocServer(t)
	url := ds.handle("/client.json", untilTestEnds(t, func(http.ResponseWriter) {}))
	f := ds.fetcher(FetcherOptions{Timeout: 200 * time.Millisecond})
	start := time.Now()
	_, err := f.Client(context.Background(), url)
	if err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("fetch took %v with a 200ms timeout", d)
	}
}

func TestFetcherTimeoutSlowBody(t *testing.T) {
	ds := newDocServer(t)
	url := ds.handle("/client.json", untilTestEnds(t, func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"client_id":`))
		w.(http.Flusher).Flush()
	}))
	f := ds.fetcher(FetcherOptions{Timeout: 200 * time.Millisecond})
	if _, err := f.Client(context.Background(), url); err == nil || !strings.Contains(err.Error(), "timed out") {
		t.Fatalf("err = %v, want a timeout", err)
	}
}

func TestFetcherCallerCancel(t *testing.T) {
	ds := newDocServer(t)
	release := make(chan struct{})
	url := ds.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc(ds.URL+"/client.json", nil))
	})
	defer close(release)
	f := ds.fetcher(FetcherOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := f.Client(ctx, url); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the caller's deadline", err)
	}
}

func TestFetcherCache(t *testing.T) {
	tests := []struct {
		name         string
		cacheControl string
		opts         FetcherOptions
		// after each step's clock advance, the total server hits so far
		steps []struct {
			advance time.Duration
			hits    int
		}
	}{
		{"max-age honoured", "public, max-age=60", FetcherOptions{MinCache: time.Second}, []struct {
			advance time.Duration
			hits    int
		}{{0, 1}, {0, 1}, {30 * time.Second, 1}, {31 * time.Second, 2}, {0, 2}}},
		{"max-age raised to MinCache", "max-age=0", FetcherOptions{MinCache: time.Minute}, []struct {
			advance time.Duration
			hits    int
		}{{0, 1}, {59 * time.Second, 1}, {time.Second, 2}}},
		{"max-age capped at MaxCache", "max-age=31536000", FetcherOptions{MaxCache: time.Hour}, []struct {
			advance time.Duration
			hits    int
		}{{0, 1}, {59 * time.Minute, 1}, {time.Minute, 2}}},
		{"no header: MinCache", "", FetcherOptions{}, []struct {
			advance time.Duration
			hits    int
		}{{0, 1}, {4 * time.Minute, 1}, {time.Minute, 2}}},
		{"no-store", "no-store", FetcherOptions{}, []struct {
			advance time.Duration
			hits    int
		}{{0, 1}, {0, 2}, {0, 3}}},
		{"no-cache", "max-age=600, no-cache", FetcherOptions{}, []struct {
			advance time.Duration
			hits    int
		}{{0, 1}, {0, 2}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ds := newDocServer(t)
			url := ds.serveJSON("/client.json", func(u string) []byte { return doc(u, nil) }, tc.cacheControl)
			f := ds.fetcher(tc.opts)
			clock := oauthtest.NewClock(time.Unix(1_800_000_000, 0))
			f.now = clock.Now
			for i, s := range tc.steps {
				clock.Advance(s.advance)
				if _, err := f.Client(context.Background(), url); err != nil {
					t.Fatalf("step %d: %v", i, err)
				}
				if n := ds.count("/client.json"); n != s.hits {
					t.Fatalf("step %d: %d server hits, want %d", i, n, s.hits)
				}
			}
		})
	}
}

// Draft section 4.4: "MUST NOT cache error responses … MUST NOT cache
// documents which are invalid" (spec-requirements CIMD-09).
func TestFetcherDoesNotCacheErrors(t *testing.T) {
	ds := newDocServer(t)
	var mu sync.Mutex
	valid, status := false, http.StatusOK
	url := ds.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		v, s := valid, status
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "max-age=3600")
		w.WriteHeader(s)
		if v {
			_, _ = w.Write(doc(ds.URL+"/client.json", nil))
		} else {
			_, _ = w.Write(doc(ds.URL+"/client.json", map[string]any{"redirect_uris": nil}))
		}
	})
	f := ds.fetcher(FetcherOptions{})

	if _, err := f.Client(context.Background(), url); err == nil {
		t.Fatal("invalid document accepted")
	}
	mu.Lock()
	status = http.StatusInternalServerError
	mu.Unlock()
	if _, err := f.Client(context.Background(), url); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("err = %v, want status 500 (a fresh fetch)", err)
	}
	mu.Lock()
	valid, status = true, http.StatusOK
	mu.Unlock()
	if _, err := f.Client(context.Background(), url); err != nil {
		t.Fatalf("valid document after invalid ones: %v", err)
	}
	if n := ds.count("/client.json"); n != 3 {
		t.Errorf("%d fetches, want 3", n)
	}
}

func TestFetcherNegativeCachesNetworkFailures(t *testing.T) {
	ds := newDocServer(t)
	url := ds.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	})
	f := ds.fetcher(FetcherOptions{FailureCache: 30 * time.Second})
	clock := oauthtest.NewClock(time.Unix(1_800_000_000, 0))
	f.now = clock.Now

	for i, want := range []struct {
		advance time.Duration
		hits    int
	}{{0, 1}, {10 * time.Second, 1}, {21 * time.Second, 2}} {
		clock.Advance(want.advance)
		_, err := f.Client(context.Background(), url)
		var me *MetadataError
		if !errors.As(err, &me) || !strings.Contains(me.Error(), "could not be fetched") {
			t.Fatalf("step %d: err = %v", i, err)
		}
		// The client sees no connection details.
		if strings.Contains(me.Error(), "EOF") || strings.Contains(me.Error(), "127.0.0.1") {
			t.Errorf("description %q leaks details", me.Error())
		}
		if n := ds.count("/client.json"); n != want.hits {
			t.Fatalf("step %d: %d hits, want %d", i, n, want.hits)
		}
	}
}

func TestFetcherCollapsesConcurrentFetches(t *testing.T) {
	ds := newDocServer(t)
	release := make(chan struct{})
	url := ds.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
		<-release
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store") // so only collapsing can explain one hit
		_, _ = w.Write(doc(ds.URL+"/client.json", nil))
	})
	f := ds.fetcher(FetcherOptions{})

	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := f.Client(context.Background(), url)
			if err == nil && c.ClientID != url {
				err = errors.New("wrong client")
			}
			errs <- err
		}()
	}
	deadline := time.Now().Add(5 * time.Second)
	for f.docs.waiting(url) != n-1 {
		if time.Now().After(deadline) {
			close(release)
			t.Fatalf("only %d callers joined the fetch", f.docs.waiting(url)+1)
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if hits := ds.count("/client.json"); hits != 1 {
		t.Errorf("%d server hits for %d concurrent calls, want 1", hits, n)
	}
}

func TestFetchCacheBounded(t *testing.T) {
	c := newFetchCache[int](3, 0)
	now := time.Unix(1_800_000_000, 0)
	for i := range 10 {
		key := string(rune('a' + i))
		v, err := c.get(context.Background(), key, now, 0, func(context.Context) (int, time.Duration, error) {
			return i, time.Duration(i+1) * time.Minute, nil
		})
		if err != nil || v != i {
			t.Fatalf("get(%s) = %d, %v", key, v, err)
		}
	}
	if len(c.entries) != 3 {
		t.Fatalf("%d entries, want at most 3", len(c.entries))
	}
	// The entries closest to expiry were evicted first.
	for _, k := range []string{"h", "i", "j"} {
		if _, ok := c.entries[k]; !ok {
			t.Errorf("entry %s evicted, want the longest-lived kept", k)
		}
	}
}

func TestFetcherPrivateKeyJWTDocument(t *testing.T) {
	k := testKeys()
	ds := newDocServer(t)
	jwksURL := ds.serveJSON("/jwks.json", func(string) []byte {
		return jwksJSON(t, publicJWK(t, &k.rsa.PublicKey, "k1"), publicJWK(t, &k.ec.PublicKey, "k2"))
	}, "max-age=600")
	// ChatGPT's document shape (django-oauth-toolkit#1845).
	url := ds.serveJSON("/oauth/abc/client.json", func(u string) []byte {
		return doc(u, map[string]any{
			"client_name":                           "ChatGPT",
			"redirect_uris":                         []string{"https://chatgpt.com/connector/oauth/abc"},
			"grant_types":                           []string{"authorization_code", "refresh_token"},
			"response_types":                        []string{"code"},
			"token_endpoint_auth_method":            "private_key_jwt",
			"token_endpoint_auth_methods_supported": []string{"none", "private_key_jwt"},
			"token_endpoint_auth_signing_alg":       "RS256",
			"jwks_uri":                              jwksURL,
		})
	}, "")
	f := ds.fetcher(FetcherOptions{})
	c, err := f.Client(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if c.TokenEndpointAuthMethod != AuthMethodPrivateKeyJWT || c.JWKSURI != jwksURL || c.IsPublic() {
		t.Fatalf("client = %+v", c)
	}
	for range 3 {
		set, err := f.Keys(c)(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if set.Len() != 2 {
			t.Fatalf("set has %d keys, want 2", set.Len())
		}
		if _, ok := set.LookupKeyID("k2"); !ok {
			t.Fatal("kid k2 missing")
		}
	}
	if n := ds.count("/jwks.json"); n != 1 {
		t.Errorf("JWKS fetched %d times, want 1 (cached)", n)
	}
}

func TestFetcherInlineJWKSDocument(t *testing.T) {
	k := testKeys()
	ds := newDocServer(t)
	url := ds.serveJSON("/client.json", func(u string) []byte {
		return doc(u, map[string]any{
			"token_endpoint_auth_method": "private_key_jwt",
			"jwks":                       json.RawMessage(jwksJSON(t, publicJWK(t, &k.ec.PublicKey, "ec1"))),
		})
	}, "")
	f := ds.fetcher(FetcherOptions{})
	c, err := f.Client(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.JWKS) == 0 || c.JWKSURI != "" {
		t.Fatalf("client = %+v", c)
	}
	set, err := f.Keys(c)(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := set.LookupKeyID("ec1"); !ok {
		t.Fatal("inline key missing")
	}
}

func TestFetcherJWKSErrors(t *testing.T) {
	k := testKeys()
	ds := newDocServer(t)
	priv := publicJWK(t, &k.ec.PublicKey, "x")
	raw, _ := json.Marshal(priv)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	m["d"] = "AAAA"
	privSet, _ := json.Marshal(map[string]any{"keys": []any{m}})

	ds.serveJSON("/private.json", func(string) []byte { return privSet }, "")
	ds.serveJSON("/empty.json", func(string) []byte { return []byte(`{"keys":[]}`) }, "")
	ds.serveJSON("/single.json", func(string) []byte { raw, _ := json.Marshal(priv); return raw }, "")
	ds.handle("/redirect.json", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/x", http.StatusFound) })
	f := ds.fetcher(FetcherOptions{})
	for path, want := range map[string]string{
		"/private.json":  "public keys only",
		"/empty.json":    "no keys",
		"/single.json":   "no keys", // a bare JWK is not a JWK Set
		"/redirect.json": "redirect",
		"/missing.json":  "status 404",
	} {
		_, err := f.JWKS(context.Background(), ds.URL+path)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("JWKS(%s) err = %v, want %q", path, err, want)
		}
	}
	if _, err := f.JWKS(context.Background(), "http://client.test/jwks"); err == nil {
		t.Error("http jwks_uri accepted")
	}
	_, port, _ := net.SplitHostPort(ds.Listener.Addr().String())
	if _, err := NewFetcher(FetcherOptions{}).JWKS(context.Background(), "https://localhost:"+port+"/jwks.json"); !errors.Is(err, fetch.ErrBlockedAddress) {
		t.Errorf("JWKS on loopback err = %v, want an address refusal", err)
	}
}

func TestFetchCacheForcedRefresh(t *testing.T) {
	c := newFetchCache[string](10, 0)
	start := time.Unix(1_800_000_000, 0)
	calls := 0
	fetch := func(val string, err error) fetchFunc[string] {
		return func(context.Context) (string, time.Duration, error) {
			calls++
			return val, time.Hour, err
		}
	}
	steps := []struct {
		at      time.Duration
		refresh time.Duration
		fetch   fetchFunc[string]
		want    string
		calls   int
	}{
		{0, 0, fetch("v1", nil), "v1", 1},
		{30 * time.Second, time.Minute, fetch("v2", nil), "v1", 1},               // too soon to force
		{2 * time.Minute, time.Minute, fetch("", errors.New("down")), "v1", 2},   // failed refresh keeps v1
		{2*time.Minute + 30*time.Second, time.Minute, fetch("v2", nil), "v1", 2}, // and counts as an attempt
		{3*time.Minute + time.Second, time.Minute, fetch("v2", nil), "v2", 3},
		{4 * time.Minute, 0, fetch("v3", nil), "v2", 3}, // no refresh asked: cached
	}
	for i, s := range steps {
		got, err := c.get(context.Background(), "k", start.Add(s.at), s.refresh, s.fetch)
		if err != nil || got != s.want || calls != s.calls {
			t.Fatalf("step %d: got %q, %v after %d fetches; want %q after %d", i, got, err, calls, s.want, s.calls)
		}
	}
}

// A document fetched fine once outlives refreshes that fail in passing
// (claude.ai's has come back as HTML, or a 403 to data-centre addresses),
// for StaleIfError past its expiry, and is retried every FailureCache
// meanwhile. One that is gone or now invalid is not papered over.
func TestFetcherServesLastGoodCopy(t *testing.T) {
	failures := map[string]struct {
		serve     http.HandlerFunc
		transient bool
	}{
		"403": {func(w http.ResponseWriter, r *http.Request) { http.Error(w, "denied", http.StatusForbidden) }, true},
		"429": {func(w http.ResponseWriter, r *http.Request) { http.Error(w, "slow down", http.StatusTooManyRequests) }, true},
		"502": {func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad gateway", http.StatusBadGateway) }, true},
		"HTML instead of JSON": {func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html>Just a moment…</html>"))
		}, true},
		"timeout": {func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}, true},
		"404": {func(w http.ResponseWriter, r *http.Request) { http.NotFound(w, r) }, false},
		"410": {func(w http.ResponseWriter, r *http.Request) { http.Error(w, "gone", http.StatusGone) }, false},
		"3xx": {func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/elsewhere", http.StatusFound) }, false},
		"invalid document": {func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(doc("https://"+r.Host+r.URL.Path, map[string]any{"redirect_uris": nil}))
		}, false},
	}
	for name, failure := range failures {
		t.Run(name, func(t *testing.T) {
			ds := newDocServer(t)
			var mu sync.Mutex
			failing := false
			url := ds.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				f := failing
				mu.Unlock()
				if f {
					failure.serve(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Cache-Control", "max-age=60")
				_, _ = w.Write(doc(ds.URL+"/client.json", nil))
			})
			logs, observed := observer.New(zap.WarnLevel)
			f := ds.fetcher(FetcherOptions{MinCache: time.Second, FailureCache: 30 * time.Second, StaleIfError: time.Hour,
				Timeout: 300 * time.Millisecond, Logger: zap.New(logs)})
			clock := oauthtest.NewClock(time.Unix(1_800_000_000, 0))
			f.now = clock.Now
			if _, err := f.Client(context.Background(), url); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			failing = true
			mu.Unlock()

			clock.Advance(61 * time.Second) // expired: the next call fetches
			c, err := f.Client(context.Background(), url)
			var me *MetadataError
			if !failure.transient {
				if !errors.As(err, &me) || me.RetryAfter != 0 {
					t.Fatalf("err = %v, want a lasting failure, not the old copy", err)
				}
				if observed.FilterMessage("client metadata document could not be used").Len() != 1 {
					t.Errorf("failure not logged: %v", observed.All())
				}
				// Nor is the old copy kept for later.
				if _, err := f.Client(context.Background(), url); err == nil || ds.count("/client.json") != 3 {
					t.Errorf("after a lasting failure: err %v after %d fetches, want a fresh failure", err, ds.count("/client.json"))
				}
				return
			}
			if err != nil || c.ClientID != url {
				t.Fatalf("refresh failing with %s: err = %v, want the last good copy", name, err)
			}
			if observed.FilterMessage("client metadata document could not be fetched again; using the last good copy").Len() != 1 {
				t.Errorf("serving the old copy was not logged: %v", observed.All())
			}
			for i, step := range []struct {
				advance time.Duration
				hits    int
				ok      bool
			}{
				{10 * time.Second, 2, true}, // within FailureCache: no new attempt
				{21 * time.Second, 3, true}, // retried, failed again, still served
				{time.Hour, 4, false},       // past StaleIfError
			} {
				clock.Advance(step.advance)
				_, err = f.Client(context.Background(), url)
				if (err == nil) != step.ok || ds.count("/client.json") != step.hits {
					t.Fatalf("step %d: err %v after %d fetches; want ok=%v after %d", i, err, ds.count("/client.json"), step.ok, step.hits)
				}
			}
			if !errors.As(err, &me) || me.RetryAfter == 0 {
				t.Errorf("err = %v, want a transient failure with RetryAfter", err)
			}
			mu.Lock()
			failing = false
			mu.Unlock()
			clock.Advance(31 * time.Second)
			if _, err := f.Client(context.Background(), url); err != nil {
				t.Errorf("document back: %v", err)
			}
		})
	}
}

func TestFetcherSendsAcceptAndUserAgent(t *testing.T) {
	ds := newDocServer(t)
	var hdr http.Header
	url := ds.handle("/client.json", func(w http.ResponseWriter, r *http.Request) {
		hdr = r.Header.Clone()
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc(ds.URL+"/client.json", nil))
	})
	if _, err := ds.fetcher(FetcherOptions{}).Client(context.Background(), url); err != nil {
		t.Fatal(err)
	}
	if hdr.Get("Accept") != "application/json" || hdr.Get("User-Agent") != fetch.UserAgent ||
		!strings.HasPrefix(hdr.Get("User-Agent"), "caddy-mcp-auth/") {
		t.Errorf("Accept %q, User-Agent %q", hdr.Get("Accept"), hdr.Get("User-Agent"))
	}
}

func TestFetcherIgnoresGrantsNotOffered(t *testing.T) {
	ds := newDocServer(t)
	url := ds.serveJSON("/c.json", func(u string) []byte {
		return doc(u, map[string]any{"grant_types": []string{"authorization_code", "urn:ietf:params:oauth:grant-type:device_code", "client_credentials", "implicit", "refresh_token"}})
	}, "")
	c, err := ds.fetcher(FetcherOptions{}).Client(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.GrantTypes, " "); got != "authorization_code refresh_token" {
		t.Errorf("grant_types %q, want the offered ones only", got)
	}
	only := ds.serveJSON("/only.json", func(u string) []byte {
		return doc(u, map[string]any{"grant_types": []string{"client_credentials"}})
	}, "")
	if _, err := ds.fetcher(FetcherOptions{}).Client(context.Background(), only); err == nil {
		t.Error("a document without authorization_code accepted")
	}
}

// A grant type the server offers besides the code and refresh grants is
// kept where it is offered, and dropped elsewhere.
func TestFetcherKeepsOfferedGrants(t *testing.T) {
	const jwtBearer = "urn:ietf:params:oauth:grant-type:jwt-bearer"
	ds := newDocServer(t)
	url := ds.serveJSON("/c.json", func(u string) []byte {
		return doc(u, map[string]any{"grant_types": []string{"authorization_code", jwtBearer, "client_credentials"}})
	}, "")
	c, err := ds.fetcher(FetcherOptions{OfferedGrants: []string{jwtBearer}}).Client(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.GrantTypes, " "); got != "authorization_code "+jwtBearer {
		t.Errorf("grant_types %q, want authorization_code and the offered jwt-bearer", got)
	}
	if c, err := ds.fetcher(FetcherOptions{}).Client(context.Background(), url); err != nil || c.AllowsGrant(jwtBearer) {
		t.Errorf("where it is not offered: %v %v", c, err)
	}
}
