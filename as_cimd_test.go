package mcpauth

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Tests of Client ID Metadata Documents through a real Caddy: clients whose
// client_id is the URL of their metadata, and the option that turns them
// off.

// metadataServer serves client metadata documents over TLS and makes the
// authorization server trust it for the test.
func metadataServer(t *testing.T, docs map[string]func(base string) any) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	hits := new(atomic.Int64)
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		doc, ok := docs[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(doc(srv.URL))
	}))
	t.Cleanup(srv.Close)
	trustMetadataServer(t, srv, clients.FetcherOptions{})
	return srv, hits
}

// trustMetadataServer makes the authorization servers the test starts
// fetch documents with opts, trusting srv's certificate and loopback.
func trustMetadataServer(t *testing.T, srv *httptest.Server, opts clients.FetcherOptions) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	opts.AllowLoopback, opts.RootCAs = true, pool
	saved := clientMetadataOptions
	clientMetadataOptions = opts
	t.Cleanup(func() { clientMetadataOptions = saved })
}

func cimdDoc(path string, mutate func(map[string]any)) func(string) any {
	return func(base string) any {
		doc := map[string]any{
			"client_id":                  base + path,
			"client_name":                "CIMD test client",
			"client_uri":                 base,
			"redirect_uris":              []string{clientRedirect},
			"grant_types":                []string{"authorization_code", "refresh_token"},
			"response_types":             []string{"code"},
			"token_endpoint_auth_method": "none",
		}
		if mutate != nil {
			mutate(doc)
		}
		return doc
	}
}

func TestClientMetadataDocuments(t *testing.T) {
	srv, _ := metadataServer(t, map[string]func(string) any{
		"/client.json":   cimdDoc("/client.json", nil),
		"/mismatch.json": cimdDoc("/other.json", nil),
		"/trailing.json": cimdDoc("/trailing.json/", nil),
		"/secret.json":   cimdDoc("/secret.json", func(d map[string]any) { d["token_endpoint_auth_method"] = "client_secret_basic" }),
	})
	e := usersAS(t, "")
	clientID := srv.URL + "/client.json"

	t.Run("metadata advertises documents with method none", func(t *testing.T) {
		var asm map[string]any
		if status, _, body := oauthtest.Get(t, e.HTTP, siteAddr()+"/.well-known/oauth-authorization-server", nil); status != http.StatusOK || json.Unmarshal(body, &asm) != nil {
			t.Fatalf("metadata: %d %s", status, body)
		}
		if asm["client_id_metadata_document_supported"] != true || !strings.Contains(fmt.Sprint(asm["token_endpoint_auth_methods_supported"]), "none") {
			t.Errorf("metadata does not advertise CIMD with none: %v", asm)
		}
	})

	t.Run("Go SDK logs in with its document URL as client_id", func(t *testing.T) {
		b := aliceBrowser(t)
		transport, _ := sdkClient(t, b, clientID)
		if id := whoami(t, transport); id.User != "users:alice" || id.Client != clientID {
			t.Errorf("backend saw %+v, want alice with client %s", id, clientID)
		}
		if b.Pages["/authorize"] == nil {
			t.Fatal("no consent page")
		}
	})

	t.Run("consent page names the document's host as verified", func(t *testing.T) {
		_, _, page := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(oauthtest.Client{ID: clientID, Redirects: []string{clientRedirect}}, oauthtest.NewPKCE())), nil)
		host := strings.TrimPrefix(srv.URL, "https://")
		if !strings.Contains(string(page), `metadata document at <span class="host">`+host+`</span>`) || strings.Contains(string(page), "not verified") {
			t.Errorf("consent page does not name the document's host %s as verified: %s", host, page)
		}
	})

	for _, tc := range []struct{ name, clientID, redirect string }{
		{"client_id differs from its URL", srv.URL + "/mismatch.json", clientRedirect},
		{"client_id with a trailing slash", srv.URL + "/trailing.json", clientRedirect},
		{"shared-secret auth method", srv.URL + "/secret.json", clientRedirect},
		{"document not found", srv.URL + "/missing.json", clientRedirect},
		{"redirect not in the document", clientID, "https://attacker.test/cb"},
		{"http client_id", strings.Replace(clientID, "https:", "http:", 1), clientRedirect},
		{"client_id with a fragment", clientID + "#f", clientRedirect},
		{"client_id with dot segments", srv.URL + "/x/../client.json", clientRedirect},
	} {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			q := authParams(oauthtest.Client{ID: tc.clientID, Redirects: []string{tc.redirect}}, oauthtest.NewPKCE())
			status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(q), nil)
			assertErrorPage(t, tc.name, status, hdr, body, http.StatusBadRequest)
		})
	}
}

func TestClientMetadataDocumentsOff(t *testing.T) {
	srv, hits := metadataServer(t, map[string]func(string) any{"/client.json": cimdDoc("/client.json", nil)})
	e := usersAS(t, "client_metadata_documents off")
	var asm map[string]any
	if status, _, body := oauthtest.Get(t, e.HTTP, siteAddr()+"/.well-known/oauth-authorization-server", nil); status != http.StatusOK || json.Unmarshal(body, &asm) != nil {
		t.Fatalf("metadata: %d %s", status, body)
	}
	if _, ok := asm["client_id_metadata_document_supported"]; ok || strings.Contains(fmt.Sprint(asm["token_endpoint_auth_methods_supported"]), "private_key_jwt") {
		t.Errorf("metadata advertises client metadata documents: %v", asm)
	}
	q := authParams(oauthtest.Client{ID: srv.URL + "/client.json", Redirects: []string{clientRedirect}}, oauthtest.NewPKCE())
	status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(q), nil)
	assertErrorPage(t, "metadata document client_id", status, hdr, body, http.StatusBadRequest)
	if n := hits.Load(); n != 0 {
		t.Errorf("the document was fetched %d times", n)
	}
}

// Documents as real clients publish and serve them: Claude Code lists a
// loopback redirect without a port, VS Code lists grants this server does
// not offer, and claude.ai's host has answered with HTML or a 403 for a
// while.
func TestClientMetadataDocumentsInTheWild(t *testing.T) {
	var mode atomic.Value // how /flaky.json answers: ok, 403, html, 404 or invalid
	mode.Store("ok")
	var headers atomic.Value
	docs := map[string]func(string) any{
		"/claude-code.json": cimdDoc("/claude-code.json", func(d map[string]any) { d["redirect_uris"] = []string{"http://localhost/callback"} }),
		"/vscode.json": cimdDoc("/vscode.json", func(d map[string]any) {
			d["grant_types"] = []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"}
		}),
		"/flaky.json":         cimdDoc("/flaky.json", nil),
		"/flaky-invalid.json": cimdDoc("/flaky.json", func(d map[string]any) { delete(d, "redirect_uris") }),
	}
	var srv *httptest.Server
	srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		headers.Store(r.Header.Clone())
		path := r.URL.Path
		switch {
		case path == "/down.json":
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		case path == "/flaky.json" && mode.Load() == "403":
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		case path == "/flaky.json" && mode.Load() == "html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte("<html><body>Checking your browser…</body></html>"))
			return
		case path == "/flaky.json" && mode.Load() == "404", docs[path] == nil:
			http.NotFound(w, r)
			return
		case path == "/flaky.json" && mode.Load() == "invalid":
			path = "/flaky-invalid.json"
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(docs[path](srv.URL))
	}))
	t.Cleanup(srv.Close)
	// Documents expire at once, so that each request below fetches again,
	// and a failed refresh is tried again a second later.
	trustMetadataServer(t, srv, clients.FetcherOptions{MinCache: time.Millisecond, MaxCache: time.Millisecond, FailureCache: -1})
	e := usersAS(t, "")

	consentPage := func(t *testing.T, clientID, redirect string) {
		t.Helper()
		time.Sleep(2 * time.Millisecond)
		q := authParams(oauthtest.Client{ID: clientID, Redirects: []string{redirect}}, oauthtest.NewPKCE())
		if status, _, page := oauthtest.Get(t, e.HTTP, authorizeURL(q), nil); status != http.StatusOK || !strings.Contains(string(page), "<form") {
			t.Fatalf("authorization request: %d, want the login page: %.300s", status, page)
		}
	}
	refused := func(t *testing.T, clientID string, wantStatus int, wantText string) {
		t.Helper()
		time.Sleep(2 * time.Millisecond)
		q := authParams(oauthtest.Client{ID: clientID, Redirects: []string{clientRedirect}}, oauthtest.NewPKCE())
		status, hdr, page := oauthtest.Get(t, e.HTTP, authorizeURL(q), nil)
		assertErrorPage(t, clientID, status, hdr, page, wantStatus)
		if !strings.Contains(string(page), wantText) || strings.Contains(string(page), "not registered") {
			t.Errorf("page does not say %q: %.600s", wantText, page)
		}
	}

	t.Run("asks for JSON and names itself", func(t *testing.T) {
		consentPage(t, srv.URL+"/flaky.json", clientRedirect)
		h, _ := headers.Load().(http.Header)
		if h.Get("Accept") != "application/json" || !strings.HasPrefix(h.Get("User-Agent"), "caddy-mcp-auth/") ||
			!strings.Contains(h.Get("User-Agent"), "(+https://github.com/caddy-mcp-auth/caddy-mcp-auth)") {
			t.Errorf("Accept %q, User-Agent %q", h.Get("Accept"), h.Get("User-Agent"))
		}
	})

	t.Run("a loopback redirect listed without a port matches any port", func(t *testing.T) {
		c := oauthtest.Client{ID: srv.URL + "/claude-code.json", Redirects: []string{"http://localhost:53177/callback"}}
		p := oauthtest.NewPKCE()
		loc := aliceBrowser(t).authorize(authorizeURL(authParams(c, p)))
		assertAuthzResponse(t, loc, c.Redirects[0], "st-"+p.Verifier[:10], "")
		e.Exchange(t, oauthtest.CodeRequest(c, loc.Query().Get("code"), p, canonicalResource()), nil)

		q := authParams(oauthtest.Client{ID: c.ID, Redirects: []string{"http://localhost:53177/other"}}, oauthtest.NewPKCE())
		status, hdr, page := oauthtest.Get(t, e.HTTP, authorizeURL(q), nil)
		assertErrorPage(t, "another path on the loopback port", status, hdr, page, http.StatusBadRequest)
	})

	t.Run("grants the server does not offer are ignored", func(t *testing.T) {
		consentPage(t, srv.URL+"/vscode.json", clientRedirect)
	})

	t.Run("the last good copy outlives a bot check or a 403", func(t *testing.T) {
		clientID := srv.URL + "/flaky.json"
		consentPage(t, clientID, clientRedirect)
		for _, m := range []string{"403", "html"} {
			mode.Store(m)
			consentPage(t, clientID, clientRedirect)
			time.Sleep(time.Second) // the next fetch is tried a second later
		}
		mode.Store("ok")
	})

	t.Run("a document gone or invalid is not papered over", func(t *testing.T) {
		clientID := srv.URL + "/flaky.json"
		time.Sleep(time.Second)
		consentPage(t, clientID, clientRedirect)
		mode.Store("404")
		refused(t, clientID, http.StatusBadRequest, "cannot be used (client metadata document could not be fetched: the server answered with status 404)")
		mode.Store("ok")
		consentPage(t, clientID, clientRedirect)
		mode.Store("invalid")
		refused(t, clientID, http.StatusBadRequest, "cannot be used (invalid client metadata document: redirect_uris is required)")
		mode.Store("ok")
	})

	t.Run("a document that cannot be fetched is told apart from an unknown client", func(t *testing.T) {
		clientID := srv.URL + "/down.json"
		q := authParams(oauthtest.Client{ID: clientID, Redirects: []string{clientRedirect}}, oauthtest.NewPKCE())
		status, hdr, page := oauthtest.Get(t, e.HTTP, authorizeURL(q), nil)
		assertErrorPage(t, "document host down", status, hdr, page, http.StatusServiceUnavailable)
		if hdr.Get("Retry-After") == "" || !strings.Contains(string(page), "could not be fetched just now") {
			t.Errorf("503 without Retry-After or the reason: %v %.600s", hdr, page)
		}

		c := oauthtest.Client{ID: clientID, Redirects: []string{clientRedirect}}
		status, hdr, m := e.Token(t, oauthtest.CodeRequest(c, "some-code", oauthtest.NewPKCE(), canonicalResource()), nil)
		if desc, _ := m["error_description"].(string); status != http.StatusServiceUnavailable || m["error"] != "temporarily_unavailable" ||
			hdr.Get("Retry-After") == "" || !strings.Contains(desc, "client metadata document could not be fetched: the server answered with status 503") {
			t.Errorf("token request: %d %v, want 503 temporarily_unavailable with Retry-After, saying the document could not be fetched", status, m)
		}
		gone := oauthtest.Client{ID: srv.URL + "/gone.json", Redirects: []string{clientRedirect}}
		status, _, m = e.Token(t, oauthtest.CodeRequest(gone, "some-code", oauthtest.NewPKCE(), canonicalResource()), nil)
		if desc, _ := m["error_description"].(string); status != http.StatusUnauthorized || m["error"] != "invalid_client" ||
			!strings.Contains(desc, "client metadata document could not be fetched: the server answered with status 404") {
			t.Errorf("token request for a document that is gone: %d %v, want invalid_client saying so", status, m)
		}
		unknown := oauthtest.Client{ID: "no-such-client", Redirects: []string{clientRedirect}}
		_, _, m = e.Token(t, oauthtest.CodeRequest(unknown, "some-code", oauthtest.NewPKCE(), canonicalResource()), nil)
		if desc, _ := m["error_description"].(string); m["error"] != "invalid_client" || strings.Contains(desc, "document") {
			t.Errorf("an unknown client is answered %v, want invalid_client without a word of documents", m)
		}
	})
}
