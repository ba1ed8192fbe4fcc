package mcpauth

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/storage"
)

// The refresh_token grant through a real Caddy (OAuth 2.1 section 4.3):
// rotation, the grace window for duplicate refreshes, reuse detection and
// the checks that must run before a refresh token is rotated.

func refreshForm(c oauthtest.Client, rt string) url.Values {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {c.ID}}
}

// refresh sends a refresh request; extra values replace the form's, and an
// empty value removes the parameter.
func (e *asEnv) refresh(t *testing.T, c oauthtest.Client, rt string, extra url.Values) (int, map[string]any) {
	t.Helper()
	form := refreshForm(c, rt)
	for k, v := range extra {
		if len(v) == 1 && v[0] == "" {
			form.Del(k)
		} else {
			form[k] = v
		}
	}
	status, _, m := e.Token(t, form, nil)
	return status, m
}

func (e *asEnv) mustRefresh(t *testing.T, c oauthtest.Client, rt string, extra url.Values) oauthtest.TokenSet {
	t.Helper()
	form := refreshForm(c, rt)
	for k, v := range extra {
		form[k] = v
	}
	ts := e.Exchange(t, form, nil)
	if ts.Refresh == "" || ts.Refresh == rt {
		t.Fatalf("refresh did not rotate the refresh token: %+v", ts)
	}
	return ts
}

func TestRefreshRotation(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	first := e.login(t, c, nil)
	secrets := []string{first.Access, first.Refresh}
	keep := func(ts oauthtest.TokenSet) oauthtest.TokenSet {
		secrets = append(secrets, ts.Access, ts.Refresh)
		return ts
	}

	// Twice in a row, then the newest tokens (a competitor revoked the
	// new token on rotation).
	r1 := keep(e.mustRefresh(t, c, first.Refresh, nil))
	r2 := keep(e.mustRefresh(t, c, r1.Refresh, nil))
	if r2.Refresh == r1.Refresh || r2.Access == r1.Access {
		t.Fatal("second refresh returned the first one's tokens")
	}
	if r2.Header.Get("Cache-Control") != "no-store" || r2.TokenType != "Bearer" || r2.Scope != "mcp:tools mcp:admin" {
		t.Errorf("refresh response %+v", r2)
	}
	if _, claims := oauthtest.DecodeJWT(t, r2.Access); claims["aud"] != canonicalResource() || claims["sub"] != "users:alice" ||
		claims["client_id"] != c.ID || claims["scope"] != "mcp:tools mcp:admin" {
		t.Errorf("refreshed token claims %v", claims)
	}
	if status := e.mcpStatus(t, r2.Access); status != http.StatusOK {
		t.Errorf("newest access token: %d", status)
	}
	r3 := keep(e.mustRefresh(t, c, r2.Refresh, nil))

	// The token just rotated away, presented again within the grace
	// window, yields the same successor instead of logging the user out.
	again := e.Exchange(t, refreshForm(c, r2.Refresh), nil)
	if again.Access != r3.Access || again.Refresh != r3.Refresh {
		t.Errorf("replay within the grace window returned a new pair, want the same successor")
	}
	if status := e.mcpStatus(t, r3.Access); status != http.StatusOK {
		t.Errorf("successor access token after a grace replay: %d", status)
	}
	r4 := keep(e.mustRefresh(t, c, r3.Refresh, nil))

	// A token rotated away long ago is reuse: the grant is revoked.
	if status, m := e.refresh(t, c, first.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("reusing the first refresh token: %d %v", status, m)
	}
	if status, m := e.refresh(t, c, r4.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("newest refresh token after reuse was detected: %d %v, want invalid_grant", status, m)
	}
	for _, at := range []string{r4.Access, r3.Access} {
		if status := e.mcpStatus(t, at); status != http.StatusUnauthorized {
			t.Errorf("access token of a revoked grant: %d, want 401", status)
		}
	}
	assertNoSecretsLogged(t, e.logDir, secrets...)
}

func TestRefreshChecksBeforeRotating(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	other := e.publicClient(t)
	ts := e.login(t, c, nil)
	rt := ts.Refresh
	flipped := []byte(rt)
	flipped[5] ^= 1

	for _, tc := range []struct {
		name   string
		extra  url.Values
		status int
		error  string
	}{
		{"foreign resource", url.Values{"resource": {"https://evil.test/mcp"}}, 400, "invalid_target"},
		{"resource on another path", url.Values{"resource": {siteAddr() + "/other"}}, 400, "invalid_target"},
		{"resource with a fragment", url.Values{"resource": {canonicalResource() + "#x"}}, 400, "invalid_target"},
		{"wider scope", url.Values{"scope": {"mcp:tools mcp:admin mcp:root"}}, 400, "invalid_scope"},
		{"another client", url.Values{"client_id": {other.ID}}, 400, "invalid_grant"},
		{"no client_id", url.Values{"client_id": {""}}, 400, "invalid_request"},
		{"tampered token", url.Values{"refresh_token": {string(flipped)}}, 400, "invalid_grant"},
		{"no token", url.Values{"refresh_token": {""}}, 400, "invalid_request"},
		{"repeated token", url.Values{"refresh_token": {rt, rt}}, 400, "invalid_request"},
	} {
		if status, m := e.refresh(t, c, rt, tc.extra); status != tc.status || m["error"] != tc.error {
			t.Errorf("%s: %d %v, want %d %s", tc.name, status, m, tc.status, tc.error)
		}
	}
	if status := e.mcpStatus(t, ts.Access); status != http.StatusOK {
		t.Errorf("access token after refused refreshes: %d", status)
	}

	// None of that burned the token. A resource spelled differently still
	// names the grant's resource.
	narrow := e.mustRefresh(t, c, rt, url.Values{"resource": {canonicalResource() + "/"}, "scope": {"mcp:tools"}})
	_, claims := oauthtest.DecodeJWT(t, narrow.Access)
	if narrow.Scope != "mcp:tools" || claims["scope"] != "mcp:tools" || claims["aud"] != canonicalResource() {
		t.Errorf("narrowed refresh: scope %q, claims %v", narrow.Scope, claims)
	}
	// The grant keeps its scope: the next refresh without scope gets it all.
	full := e.mustRefresh(t, c, narrow.Refresh, nil)
	if full.Scope != "mcp:tools mcp:admin" {
		t.Errorf("after a narrowed refresh the grant's scope is %q", full.Scope)
	}

	// A grant for fewer scopes cannot be widened.
	small := e.login(t, c, url.Values{"scope": {"mcp:tools"}})
	if status, m := e.refresh(t, c, small.Refresh, url.Values{"scope": {"mcp:tools mcp:admin"}}); status != 400 || m["error"] != "invalid_scope" {
		t.Errorf("widening a mcp:tools grant: %d %v", status, m)
	}
	e.mustRefresh(t, c, small.Refresh, nil)

	// Another client presenting the token did not revoke it either.
	if status, m := e.refresh(t, other, full.Refresh, nil); status != 400 || m["error"] != "invalid_grant" {
		t.Errorf("another client: %d %v", status, m)
	}
	e.mustRefresh(t, c, full.Refresh, nil)
}

func TestRefreshConfidentialClient(t *testing.T) {
	e := usersAS(t, "")
	c := e.RegisterClient(t, map[string]any{
		"client_name": "Claude", "redirect_uris": []string{"https://claude.ai/api/mcp/auth_callback"},
		"grant_types": []string{"authorization_code", "refresh_token"}, "token_endpoint_auth_method": "client_secret_post",
	})
	p := oauthtest.NewPKCE()
	form := codeForm(c, loginCode(t, authParams(c, p)), p)
	form.Set("client_secret", c.Secret)
	ts := e.Exchange(t, form, nil)

	if status, m := e.refresh(t, c, ts.Refresh, nil); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Errorf("refresh without the client secret: %d %v, want 401 invalid_client", status, m)
	}
	if status, m := e.refresh(t, c, ts.Refresh, url.Values{"client_secret": {c.Secret + "x"}}); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Errorf("refresh with a wrong secret: %d %v", status, m)
	}
	e.mustRefresh(t, c, ts.Refresh, url.Values{"client_secret": {c.Secret}})
}

func TestRefreshConcurrent(t *testing.T) {
	e := usersAS(t, "")
	st := testStore(t, e.storagePath)
	c := e.publicClient(t)
	ts := e.login(t, c, nil)

	const n = 10
	type result struct {
		status int
		body   tokenResponseJSON
		err    error
	}
	results := make([]result, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range results {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest(http.MethodPost, siteAddr()+"/token", strings.NewReader(refreshForm(c, ts.Refresh).Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := e.HTTP.Do(req)
			if err != nil {
				results[i].err = err
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			results[i].status = resp.StatusCode
			results[i].err = json.Unmarshal(raw, &results[i].body)
		})
	}
	close(start)
	wg.Wait()

	successor := results[0].body
	for i, r := range results {
		if r.err != nil || r.status != http.StatusOK {
			t.Fatalf("refresh %d: %d %v %+v", i, r.status, r.err, r.body)
		}
		if r.body.AccessToken != successor.AccessToken || r.body.RefreshToken != successor.RefreshToken {
			t.Errorf("refresh %d got another successor: the grant forked", i)
		}
	}
	if grants := len(storeKeys(t, st, state.KindGrant)); grants != 1 {
		t.Errorf("%d grants after concurrent refreshes, want 1", grants)
	}
	// Only the current and the previous refresh token are known.
	if n := len(storeKeys(t, st, state.KindRefresh)); n != 2 {
		t.Errorf("%d refresh tokens stored, want 2 (current and previous)", n)
	}
	// Only the access tokens handed out are indexed: the login's and the
	// successor's, not those of the refreshes that lost the race.
	if n := len(storeKeys(t, st, state.KindTokenOfUser)); n != 2 {
		t.Errorf("%d access tokens indexed for the user, want 2", n)
	}
	if status := e.mcpStatus(t, successor.AccessToken); status != http.StatusOK {
		t.Errorf("successor access token: %d", status)
	}
	e.mustRefresh(t, c, successor.RefreshToken, nil)
}

type tokenResponseJSON struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
}

// expireGrace ends the grace window of the refresh token that rt replaced,
// as if refreshGrace (30 s) had passed: it rewrites the grant in the store.
func expireGrace(t *testing.T, st storage.Store, rt string) {
	t.Helper()
	ctx := context.Background()
	gid, err := st.Get(ctx, state.KindRefresh.Key(rt))
	if err != nil {
		t.Fatalf("refresh token not stored under its hash: %v", err)
	}
	key := state.KindGrant.Key(string(gid))
	raw, err := st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var g map[string]json.RawMessage
	if err := json.Unmarshal(raw, &g); err != nil {
		t.Fatal(err)
	}
	if _, ok := g["previous_until"]; !ok {
		t.Fatalf("grant record has no previous_until: %s", raw)
	}
	var expires int64
	if err := json.Unmarshal(g["expires_at"], &expires); err != nil {
		t.Fatalf("grant record has no expires_at: %s", raw)
	}
	g["previous_until"] = json.RawMessage(strconv.FormatInt(time.Now().Add(-time.Second).UnixNano(), 10))
	next, _ := json.Marshal(g)
	if err := st.Swap(ctx, key, raw, next, time.Until(time.Unix(expires, 0))); err != nil {
		t.Fatal(err)
	}
}

func TestRefreshReuseAfterGrace(t *testing.T) {
	e := usersAS(t, "")
	st := testStore(t, e.storagePath)
	c := e.publicClient(t)
	first := e.login(t, c, nil)
	next := e.mustRefresh(t, c, first.Refresh, nil)

	expireGrace(t, st, next.Refresh)
	if status, m := e.refresh(t, c, first.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Fatalf("replay after the grace window: %d %v, want invalid_grant", status, m)
	}
	if status, m := e.refresh(t, c, next.Refresh, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("newest refresh token after reuse: %d %v, want invalid_grant", status, m)
	}
	for i, at := range []string{first.Access, next.Access} {
		if status := e.mcpStatus(t, at); status != http.StatusUnauthorized {
			t.Errorf("access token %d of the revoked grant: %d, want 401", i, status)
		}
	}
	if keys := storeKeys(t, st, state.KindGrant); len(keys) != 0 {
		t.Errorf("the grant is still stored: %v", keys)
	}
}

// A client refreshing in a loop reaches the bound on one grant's live
// access tokens (32, see docs/security.md): the refresh beyond is refused
// with 429, a JSON error and Retry-After until the oldest token is unusable,
// and leaves the refresh token good. Revoking the refresh token then makes
// the gate refuse every access token the loop was given.
func TestRefreshLoopHitsTheLiveTokenBound(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	first := e.login(t, c, nil)
	const bound = 32
	accessTokens, rt := []string{first.Access}, first.Refresh
	var status int
	var hdr http.Header
	var m map[string]any
	for len(accessTokens) <= bound {
		status, hdr, m = e.Token(t, refreshForm(c, rt), nil)
		if status != http.StatusOK {
			break
		}
		accessTokens, rt = append(accessTokens, m["access_token"].(string)), m["refresh_token"].(string)
	}
	if status != http.StatusTooManyRequests || m["error"] != "invalid_request" || len(accessTokens) != bound {
		t.Fatalf("refresh with %d live access tokens: %d %v, want 429 invalid_request with %d", len(accessTokens), status, m["error"], bound)
	}
	_, claims := oauthtest.DecodeJWT(t, first.Access)
	// Its exp, and the minute of clock skew a verifier may allow.
	untilOldestUnusable := int64(claims["exp"].(float64)) + 60 - time.Now().Unix()
	if retry, err := strconv.ParseInt(hdr.Get("Retry-After"), 10, 64); err != nil || retry < untilOldestUnusable-2 || retry > untilOldestUnusable+1 {
		t.Errorf("Retry-After %q, want about %d s: until the oldest access token is no longer usable", hdr.Get("Retry-After"), untilOldestUnusable)
	}
	// Refused without rotating: the token is neither burned nor replaced.
	if status, m := e.refresh(t, c, rt, nil); status != http.StatusTooManyRequests {
		t.Errorf("the refused refresh token again: %d %v, want 429 still", status, m)
	}
	for i, at := range accessTokens {
		if status := e.mcpStatus(t, at); status != http.StatusOK {
			t.Fatalf("access token %d before revocation: %d", i, status)
		}
	}

	if status, _, _ := e.PostForm(t, "/revoke", url.Values{"token": {rt}, "token_type_hint": {"refresh_token"}, "client_id": {c.ID}}, nil); status != http.StatusOK {
		t.Fatalf("revoke: %d", status)
	}
	for i, at := range accessTokens {
		if status := e.mcpStatus(t, at); status != http.StatusUnauthorized {
			t.Errorf("access token %d of the revoked grant: %d, want 401", i, status)
		}
	}
	if status, m := e.refresh(t, c, rt, nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("the refresh token after revocation: %d %v, want invalid_grant", status, m)
	}
}
