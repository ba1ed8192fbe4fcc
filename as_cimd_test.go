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
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	saved := clientMetadataOptions
	clientMetadataOptions = clients.FetcherOptions{AllowLoopback: true, RootCAs: pool}
	t.Cleanup(func() { clientMetadataOptions = saved })
	return srv, hits
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
