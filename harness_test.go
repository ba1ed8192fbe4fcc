package mcpauth

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
	"golang.org/x/crypto/bcrypt"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/freeport"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// The tests run one real Caddy in this process, configured from Caddyfiles
// and reloaded through its admin API as `caddy reload` does.
var (
	dataHome  string // XDG_DATA_HOME: Caddy's local CA lives below it
	adminAddr string
	httpsPort int
	httpPort  int
)

func TestMain(m *testing.M) {
	if args := os.Getenv(caddyProcessArgs); args != "" {
		runCaddyProcess(args) // this is a Caddy started by startCaddyProcess
		return
	}
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	tmp, err := os.MkdirTemp("", "mcpauth-test")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(tmp)
	dataHome = filepath.Join(tmp, "data")
	_ = os.Setenv("XDG_DATA_HOME", dataHome)
	_ = os.Setenv("XDG_CONFIG_HOME", filepath.Join(tmp, "config"))
	adminAddr = fmt.Sprintf("localhost:%d", freeport.One())
	if err := testCertificate(filepath.Join(dataHome, "caddy", "pki", "authorities", "local")); err != nil {
		panic(err)
	}
	httpsPort, httpPort = freeport.One(), freeport.One()
	return m.Run()
}

// certFile and keyFile are the test sites' certificate, for localhost,
// 127.0.0.1 and ::1, issued by the test CA whose certificate is root.crt in
// the same directory (where Caddy keeps its local CA's root).
var certFile, keyFile string

// testCertificate makes the test CA and the site certificate in dir.
func testCertificate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mcp_auth test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ca, &leafKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		return err
	}
	certFile, keyFile = filepath.Join(dir, "site.crt"), filepath.Join(dir, "site.key")
	for name, block := range map[string]*pem.Block{
		filepath.Join(dir, "root.crt"): {Type: "CERTIFICATE", Bytes: caDER},
		certFile:                       {Type: "CERTIFICATE", Bytes: leafDER},
		keyFile:                        {Type: "EC PRIVATE KEY", Bytes: keyDER},
	} {
		if err := os.WriteFile(name, pem.EncodeToMemory(block), 0o600); err != nil {
			return err
		}
	}
	return nil
}

// usersUpstream is an upstream block with the test user alice.
func usersUpstream() string {
	return "upstream users {\n\t\t\talice " + aliceHash + "\n\t\t}"
}

// aliceHash is the bcrypt hash of alice's password "correct horse".
var aliceHash = func() string {
	h, err := bcrypt.GenerateFromPassword([]byte("correct horse"), bcrypt.MinCost)
	if err != nil {
		panic(err)
	}
	return string(h)
}()

// siteAddr is the address of the HTTPS site the tests configure.
func siteAddr() string { return fmt.Sprintf("https://localhost:%d", httpsPort) }

// globalOptions are prepended to every test Caddyfile.
func globalOptions(storagePath, logFile string) string {
	return globalOptionsWith("storage_path "+storagePath, logFile)
}

// globalOptionsWith are globalOptions whose mcp_auth global block holds
// storage, the lines that say where the state is.
func globalOptionsWith(storage, logFile string) string {
	return fmt.Sprintf(`{
	admin %s
	http_port %d
	https_port %d
	grace_period 1s
	storage file_system %s
	log {
		output file %s
		level DEBUG
	}
	mcp_auth {
		%s
	}
}
`, adminAddr, httpPort, httpsPort, filepath.Join(dataHome, "caddy"), logFile, storage)
}

// adapt turns a test Caddyfile into JSON config. HTTPS sites use the test
// certificate (see testCertificate) instead of certificates Caddy would
// obtain: certificate management runs in the background and, between the
// many configs the tests load, races inside Caddy.
func adapt(t testing.TB, caddyfile string) []byte {
	t.Helper()
	caddyfile = blankLines.ReplaceAllString(caddyfile, "\n")
	raw, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(caddyfile), nil)
	if err != nil {
		t.Fatalf("adapting Caddyfile: %v\n%s", err, caddyfile)
	}
	for _, w := range warnings {
		t.Logf("Caddyfile warning: %s", w.String())
	}
	var cfg map[string]any
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	apps, _ := cfg["apps"].(map[string]any)
	if httpApp, ok := apps["http"].(map[string]any); ok {
		servers, _ := httpApp["servers"].(map[string]any)
		for _, srv := range servers {
			srv := srv.(map[string]any)
			srv["automatic_https"] = map[string]any{"disable": true}
			for _, l := range srv["listen"].([]any) {
				if strings.HasSuffix(l.(string), fmt.Sprintf(":%d", httpsPort)) {
					srv["tls_connection_policies"] = []any{map[string]any{}}
				}
			}
		}
		delete(apps, "pki") // no local CA: the test CA signed the certificate
		apps["tls"] = map[string]any{"certificates": map[string]any{
			"load_files": []any{map[string]any{"certificate": certFile, "key": keyFile}},
		}}
	}
	out, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// startCaddy loads a Caddyfile into the in-process Caddy and stops Caddy
// when the test ends, before the test's temporary directories go away.
func startCaddy(t testing.TB, caddyfile string) {
	t.Helper()
	cfg := adapt(t, caddyfile)
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatalf("loading config: %v", err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	dropIdleSiteConnections() // to the previous test's Caddy, now gone
	if strings.Contains(caddyfile, siteAddr()) {
		waitForTLS(t)
	}
}

var blankLines = regexp.MustCompile(`\n[ \t]*\n`)

// reloadCaddy adapts a Caddyfile and posts it to the admin API, exactly
// like `caddy reload`.
func reloadCaddy(t testing.TB, caddyfile string) {
	t.Helper()
	if status, body := postConfig(t, caddyfile); status != http.StatusOK {
		t.Fatalf("reload: %d: %s", status, body)
	}
	dropIdleSiteConnections()
}

// dropIdleSiteConnections closes the test clients' idle connections to
// the sites after a config change, which closes them on the server's
// side: a POST sent on one just then fails with EOF rather than being
// retried.
func dropIdleSiteConnections() {
	if transport, err := siteTransport(); err == nil {
		transport.CloseIdleConnections()
	}
}

// postConfig posts a Caddyfile's config to the admin API's /load and
// returns the answer, which is not 200 when the config fails to load.
func postConfig(t testing.TB, caddyfile string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, "http://"+adminAddr+"/load", bytes.NewReader(adapt(t, caddyfile)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("reload: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, body
}

// waitForTLS waits until the site answers over HTTPS with a certificate
// from Caddy's local CA.
func waitForTLS(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := tlsClient()
		if err == nil {
			var resp *http.Response
			resp, err = c.Get(siteAddr() + "/.well-known/oauth-protected-resource")
			if err == nil {
				resp.Body.Close()
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("site did not come up: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tlsClient returns an HTTP client that trusts Caddy's local CA.
func tlsClient() (*http.Client, error) {
	transport, err := siteTransport()
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: transport, Timeout: 10 * time.Second}, nil
}

// siteTransport is the one transport of every test client of the sites, so
// that dropIdleSiteConnections can reach all their idle connections.
var siteTransport = sync.OnceValues(func() (*http.Transport, error) {
	pem, err := os.ReadFile(filepath.Join(dataHome, "caddy", "pki", "authorities", "local", "root.crt"))
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no certificate in root.crt")
	}
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, nil
})

func mustTLSClient(t testing.TB) *http.Client {
	t.Helper()
	c, err := tlsClient()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// sharedStore joins the Badger store the running Caddy opened at
// storagePath, as another instance sharing the store would.
func sharedStore(t testing.TB, storagePath string) *storage.Badger {
	t.Helper()
	abs, _ := filepath.Abs(storagePath)
	db, loaded, err := stores.LoadOrNew(abs, func() (caddy.Destructor, error) {
		return nil, fmt.Errorf("store %s is not open", abs)
	})
	if err != nil || !loaded {
		t.Fatalf("store %s is not open in this process: %v", abs, err)
	}
	t.Cleanup(func() { _, _ = stores.Delete(abs) })
	return db.(pooledStore).Badger
}

// testRing opens a second key ring on the store the running Caddy uses, as
// another instance sharing the store would, so tests can mint tokens signed
// with the keys Caddy trusts.
func testRing(t testing.TB, storagePath string) *tokens.KeyRing {
	t.Helper()
	ring, err := tokens.NewKeyRing(t.Context(), sharedStore(t, storagePath), tokens.KeyRingConfig{
		RotationPeriod: 30 * 24 * time.Hour, RetainPeriod: 30 * 24 * time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	return ring
}

// assertConfigLoads loads caddyfile into Caddy and checks that it loads
// when wantErr is empty, and otherwise that it is refused with an error
// that mentions each of wantErr.
func assertConfigLoads(t *testing.T, caddyfile string, wantErr []string) {
	t.Helper()
	err := caddy.Load(adapt(t, caddyfile), true)
	if err == nil {
		_ = caddy.Stop()
	}
	switch {
	case wantErr == nil && err != nil:
		t.Errorf("config refused: %v", err)
	case wantErr != nil && err == nil:
		t.Errorf("config loaded, want an error about %v", wantErr)
	case err != nil:
		for _, s := range wantErr {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not mention %q", err, s)
			}
		}
	}
}
