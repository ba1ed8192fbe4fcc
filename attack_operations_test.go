package mcpauth

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/fakeidp"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/redistest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// Attacks on the operation of the server: its metrics, reloads, keys and
// stored state.

// metricLabels returns the values of each label (but le) of the plugin's
// metrics that Caddy's metrics endpoint serves, and the number of series.
func metricLabels(t *testing.T) (map[string][]string, int) {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	values, series := map[string][]string{}, 0
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, "caddy_mcp_auth_") {
			continue
		}
		series++
		for _, m := range promLabel.FindAllStringSubmatch(line, -1) {
			if m[1] != "le" && !slices.Contains(values[m[1]], m[2]) {
				values[m[1]] = append(values[m[1]], m[2])
			}
		}
	}
	return values, series
}

var promLabel = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

func TestAttackRandomDiscoveryPathsGrowMetrics(t *testing.T) {
	e := usersAS(t, "")
	// What the attack below sends, once, so that the series an honest
	// client creates exist.
	attack := func(paths []string, grantType, token string) {
		for _, p := range paths {
			status, _, _ := oauthtest.Get(t, e.HTTP, siteAddr()+p, nil)
			if status == http.StatusInternalServerError {
				t.Errorf("GET %s: 500", p)
			}
		}
		e.Token(t, url.Values{"grant_type": {grantType}, "client_id": {grantType}}, nil)
		e.mcpStatus(t, token)
	}
	attack([]string{"/.well-known/oauth-authorization-server", "/.well-known/oauth-protected-resource/mcp",
		"/.well-known/oauth-protected-resource/nothing", "/jwks", "/token", "/register", "/authorize",
		"/mcp", "/mcp/%2e%2e/mcp"}, "password", "x.y.z")
	_, before := metricLabels(t)

	var paths []string
	for _, prefix := range []string{"/.well-known/oauth-protected-resource", "/.well-known/oauth-authorization-server", "/.well-known/openid-configuration"} {
		for range 40 {
			paths = append(paths, prefix+"/"+rand.Text())
		}
		// Other spellings of the same documents: suffixes, case, encoding,
		// doubled separators and dot segments.
		paths = append(paths, prefix+"x", prefix+".json", strings.ToUpper(prefix), prefix+"/%2e%2e/mcp",
			"/"+prefix, prefix+"//mcp", prefix+"/mcp/../"+rand.Text(), prefix+"%2Fmcp", prefix+"/MCP")
	}
	attack(paths, rand.Text(), rand.Text()+"."+rand.Text()+"."+rand.Text())
	labels, after := metricLabels(t)
	if after != before {
		t.Errorf("%d requests to made-up paths, grant types and tokens changed the number of series from %d to %d", len(paths), before, after)
	}
	closed := map[string][]string{
		"endpoint": {"metadata", "resource_metadata", "jwks", "register", "authorize", "consent", "login",
			"callback", "token", "revoke", "introspect", "userinfo", "not_found"},
		"grant_type": {"authorization_code", "refresh_token", "client_credentials", "jwt_bearer"},
		"upstream":   {"users", "github", "google", "oidc"},
		"outcome": {"success", "denied", "failed", "allowed", "no_token", "invalid_token", "insufficient_scope",
			"origin_denied", "bad_request", "unavailable", "foreign_session"},
	}
	for label, values := range labels {
		for _, v := range values {
			if !slices.Contains(closed[label], v) {
				t.Errorf("label %s=%q is not one of a fixed set", label, v)
			}
		}
	}
}

func TestAttackFailedReloadDisablesAdminAPI(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	site := asSite(t, storagePath, logDir, usersUpstream())
	startCaddy(t, site)
	client := mustTLSClient(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()

	for _, bad := range []struct{ name, caddyfile string }{
		// A handler after mcp_auth fails to provision: the new App was
		// provisioned, then cleaned up, and never ran.
		{"handler fails to provision", strings.Replace(site, "header_up X-MCP-User {http.auth.user.id}",
			"header_up X-MCP-User {http.auth.user.id}\n\t\ttransport http {\n\t\t\ttls_client_auth /nonexistent/cert.pem /nonexistent/key.pem\n\t\t}", 1)},
		// Another app fails to start: the new App may have started, and
		// stops again.
		{"server fails to start", site + "\nhttp://127.0.0.1:" + strconv.Itoa(busy.Addr().(*net.TCPAddr).Port) + " {\n\trespond ok\n}\n"},
	} {
		if status, body := postConfig(t, bad.caddyfile); status == http.StatusOK {
			t.Fatalf("%s: the config loaded: %s", bad.name, body)
		}
		if status, body := adminRequest(t, http.MethodGet, "/mcp_auth/clients"); status != http.StatusOK {
			t.Errorf("%s: the admin API stopped working: %d %s", bad.name, status, body)
		}
		if status, _, _ := oauthtest.Get(t, client, siteAddr()+"/.well-known/oauth-protected-resource", nil); status != http.StatusOK {
			t.Errorf("%s: the old config stopped serving: %d", bad.name, status)
		}
	}
	// A good reload still moves the admin API to the new config, and
	// stopping Caddy leaves it with none.
	reloadCaddy(t, strings.Replace(site, "scopes mcp:tools mcp:admin", "scopes mcp:tools", 1))
	if status, body := adminRequest(t, http.MethodPost, "/mcp_auth/keys/rotate"); status != http.StatusOK {
		t.Errorf("after a good reload: %d %s", status, body)
	}
	if err := caddy.Stop(); err != nil {
		t.Fatal(err)
	}
	if app := currentApp(); app != nil {
		t.Errorf("after stopping, the admin API still acts on an App")
	}
}

// publishedKids returns the kids of the site's JWKS.
func publishedKids(t *testing.T, c *http.Client) []string {
	t.Helper()
	_, _, body := oauthtest.Get(t, c, siteAddr()+"/jwks", nil)
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("JWKS: %v: %s", err, body)
	}
	var kids []string
	for _, k := range set.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func TestAttackLeakedSigningKeySurvivesRotation(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	issued := e.login(t, c, nil)
	if status := e.mcpStatus(t, issued.Access); status != http.StatusOK {
		t.Fatalf("test setup: %d", status)
	}
	// Whoever read the store has every key in it: the signing key, its
	// published successor and retired keys. An ordinary rotation keeps
	// them all trusted.
	if status, body := adminRequest(t, http.MethodPost, "/mcp_auth/keys/rotate?revoke=false"); status != http.StatusOK {
		t.Fatalf("rotate: %d %s", status, body)
	}
	leaked := publishedKids(t, e.HTTP)
	forged := mint(t, testRing(t, e.storagePath), nil) // by another instance, or the attacker
	if status := e.mcpStatus(t, forged); status != http.StatusOK {
		t.Fatalf("test setup: minted token refused: %d", status)
	}
	for _, bad := range []string{"yes", "2", "TRUE "} {
		if status, _ := adminRequest(t, http.MethodPost, "/mcp_auth/keys/rotate?revoke="+url.QueryEscape(bad)); status != http.StatusBadRequest {
			t.Errorf("revoke=%q: %d, want 400", bad, status)
		}
	}
	if kids := publishedKids(t, e.HTTP); !slices.Equal(kids, leaked) {
		t.Fatalf("a refused request changed the keys: %v, then %v", leaked, kids)
	}

	out := runCLI(t, "rotate-keys", "--revoke")
	var answer struct {
		Kid     string   `json:"kid"`
		Revoked []string `json:"revoked"`
	}
	if err := json.Unmarshal([]byte(out), &answer); err != nil || len(answer.Revoked) != len(leaked) {
		t.Errorf("rotate-keys --revoke printed %q, want every key of %v revoked", out, leaked)
	}
	now := publishedKids(t, e.HTTP)
	for _, kid := range leaked {
		if slices.Contains(now, kid) {
			t.Errorf("revoked key %s is still published", kid)
		}
	}
	if !slices.Contains(now, answer.Kid) {
		t.Errorf("the new signing key %s is not published (%v)", answer.Kid, now)
	}
	for name, tok := range map[string]string{"issued before (verification cached)": issued.Access, "minted with a leaked key": forged} {
		if status := e.mcpStatus(t, tok); status != http.StatusUnauthorized {
			t.Errorf("access token %s: %d after revoking the keys, want 401", name, status)
		}
	}
	// Clients recover by refreshing or logging in again, with the new key.
	refreshed := e.Exchange(t, refreshForm(c, issued.Refresh), nil)
	if status := e.mcpStatus(t, refreshed.Access); status != http.StatusOK {
		t.Errorf("token refreshed after revocation: %d", status)
	}
	if header, _ := oauthtest.DecodeJWT(t, refreshed.Access); header["kid"] != answer.Kid {
		t.Errorf("refreshed token signed by %v, want the new key %s", header["kid"], answer.Kid)
	}
}

func TestAttackIdentityTokenPassesAsAccessToken(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	host := strings.TrimPrefix(siteAddr(), "https://")
	// An identity token for one of these audiences would be an access
	// token (or an ID token's issuer) to a backend that checks only iss
	// and aud: each spelling of the site's own URLs is refused at load.
	for _, audience := range []string{
		siteAddr() + "/mcp", siteAddr() + "/mcp/", "https://" + strings.ToUpper(host) + "/MCP",
		"http://" + host + "/mcp", siteAddr() + "/%6dcp", siteAddr() + "/mcp?x=1", siteAddr(), siteAddr() + "/",
	} {
		err := caddy.Load(adapt(t, asSite(t, storagePath, logDir, usersUpstream()+"\n\t\tidentity_audience "+audience)), true)
		if err == nil {
			_ = caddy.Stop()
			t.Errorf("identity_audience %s: loaded", audience)
		} else if !strings.Contains(err.Error(), "identity_audience") {
			t.Errorf("identity_audience %s: unclear error: %v", audience, err)
		}
	}
	// A name of the backend is fine.
	for _, audience := range []string{"urn:example:todo-backend", "https://backend.internal", siteAddr() + "/mcp-backend"} {
		if err := caddy.Load(adapt(t, asSite(t, storagePath, logDir, usersUpstream()+"\n\t\tidentity_audience "+audience)), true); err != nil {
			t.Errorf("identity_audience %s: %v", audience, err)
		}
		_ = caddy.Stop()
	}
}

func TestAttackDisconnectDuringDiscoveryBlocksLogins(t *testing.T) {
	idp := fakeidp.NewOIDC(t, fakeidp.User{Subject: "u-1", Email: "alice@example.com", EmailVerified: true})
	_, _, doc := oauthtest.Get(t, http.DefaultClient, idp.URL+fakeidp.DiscoveryPath, nil)
	release := make(chan struct{})
	idp.Handle(fakeidp.DiscoveryPath, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release // a slow provider
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(doc)
	}))
	e := startAS(t, oidcUpstream(idp))
	c := e.publicClient(t)
	approve := func(b *browser) url.Values {
		form := consentForm(t, b, authParams(c, oauthtest.NewPKCE()))
		form.Set("decision", "approve")
		return form
	}

	// The attacker starts logins that need discovery and hangs up.
	for range 3 {
		b := newBrowser(t)
		form := approve(b)
		b.client.Timeout = 200 * time.Millisecond
		if _, err := b.client.Post(siteAddr()+"/authorize/consent", "application/x-www-form-urlencoded", strings.NewReader(form.Encode())); err == nil {
			t.Fatal("test setup: the consent answered before discovery")
		}
	}
	close(release)

	// A user's login right after goes to the provider: the abandoned
	// requests neither cancelled discovery nor left a failure behind.
	b := newBrowser(t)
	status, hdr, body := postConsent(t, b, approve(b))
	if status != http.StatusSeeOther || !strings.HasPrefix(hdr.Get("Location"), idp.URL) {
		t.Errorf("login after abandoned ones: %d %s %.200s", status, hdr.Get("Location"), body)
	}
	if n := idp.Requests(fakeidp.DiscoveryPath); n != 2 { // ours above, and one by the server
		t.Errorf("the server fetched discovery %d times, want once", n-1)
	}
}

func TestAttackLeakedSigningKeyStillTrustedByOtherInstances(t *testing.T) {
	url := redistest.Start(t)
	logDir := t.TempDir()
	e := startASWith(t, redisASSite(t, redisGlobalOptions(url, "", filepath.Join(logDir, "caddy.log")), logDir, usersUpstream()), logDir)
	issued := e.login(t, e.publicClient(t), nil)
	if status := e.mcpStatus(t, issued.Access); status != http.StatusOK { // now cached as verified
		t.Fatalf("test setup: %d", status)
	}
	// Another instance sharing the Redis store revokes the keys.
	other, err := storage.OpenRedis(t.Context(), url, storage.DefaultRedisPrefix, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	ring, err := tokens.NewKeyRing(t.Context(), other, tokens.KeyRingConfig{RotationPeriod: 30 * 24 * time.Hour, RetainPeriod: 30 * 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ring.Revoke(t.Context()); err != nil {
		t.Fatal(err)
	}
	// This instance follows within keyRefreshInterval: the old token is
	// refused, and new tokens are signed with the new key.
	deadline := time.Now().Add(keyRefreshInterval + 5*time.Second)
	for e.mcpStatus(t, issued.Access) != http.StatusUnauthorized {
		if time.Now().After(deadline) {
			t.Fatalf("a token of a revoked key still works %v after the revocation", keyRefreshInterval+5*time.Second)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if kids := publishedKids(t, e.HTTP); len(kids) != 2 || !slices.Contains(kids, ring.SigningKeyID()) {
		t.Errorf("JWKS after the revocation: %v, want the new key %s and its successor", kids, ring.SigningKeyID())
	}
	fresh := e.login(t, e.publicClient(t), nil)
	if header, _ := oauthtest.DecodeJWT(t, fresh.Access); header["kid"] != ring.SigningKeyID() {
		t.Errorf("new token signed by %v, want the new key %s", header["kid"], ring.SigningKeyID())
	}
}
