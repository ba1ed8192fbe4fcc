package mcpauth

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Revocation raced by the requests it must stop: a refresh that lands
// while a grant is being revoked must not leave a working access token,
// whoever revokes (the client at /revoke, an operator by user).

// raceTrials is how many times each race runs, with jittered delays that
// put the revocation before, inside and after the refresh.
const raceTrials = 30

// raceRefresh logs alice in, then refreshes while revoke runs after a
// jittered delay, and fails the test if a token the refresh issued still
// works once both are done.
func raceRefresh(t *testing.T, e *asEnv, c oauthtest.Client, trial int, revoke func(first oauthtest.TokenSet)) {
	t.Helper()
	first := e.login(t, c, nil)
	var (
		wg      sync.WaitGroup
		status  int
		renewed map[string]any
	)
	delay := time.Duration(rand.IntN(4000)) * time.Microsecond
	wg.Go(func() { status, _, renewed = e.Token(t, refreshForm(c, first.Refresh), nil) })
	wg.Go(func() {
		time.Sleep(delay)
		revoke(first)
	})
	wg.Wait()
	if got := e.mcpStatus(t, first.Access); got != http.StatusUnauthorized {
		t.Errorf("trial %d: the access token from before the revocation: %d, want 401", trial, got)
	}
	if status != http.StatusOK {
		return // the revocation came first: nothing was issued
	}
	at, _ := renewed["access_token"].(string)
	rt, _ := renewed["refresh_token"].(string)
	if got := e.mcpStatus(t, at); got != http.StatusUnauthorized {
		t.Errorf("trial %d (revocation %v after the refresh was sent): the refreshed access token still works: %d", trial, delay, got)
	}
	if got, _, m := e.Token(t, refreshForm(c, rt), nil); got != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("trial %d: the refreshed refresh token: %d %v, want invalid_grant", trial, got, m)
	}
}

func TestAttackRefreshRacingRevokeKeepsAccessToken(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	for trial := range raceTrials {
		raceRefresh(t, e, c, trial, func(first oauthtest.TokenSet) {
			// However the revocation is phrased: any token_type_hint, the
			// client named in the form or by HTTP Basic without a password.
			form := url.Values{"token": {first.Refresh}}
			header := http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}
			if hint := []string{"", "refresh_token", "access_token"}[trial%3]; hint != "" {
				form.Set("token_type_hint", hint)
			}
			if trial%2 == 0 {
				form.Set("client_id", c.ID)
			} else {
				header.Set("Authorization", "Basic "+oauthtest.BasicAuth(c.ID, ""))
			}
			if status, _, body := oauthtest.Do(t, e.HTTP, http.MethodPost, siteAddr()+"/revoke", header, []byte(form.Encode())); status != http.StatusOK {
				t.Errorf("trial %d: /revoke answered %d %s", trial, status, body)
			}
		})
	}
}

func TestAttackRefreshRacingAdminRevokeOfUserKeepsAccessToken(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	for trial := range raceTrials {
		raceRefresh(t, e, c, trial, func(oauthtest.TokenSet) {
			if status, body := adminRequest(t, http.MethodDelete, "/mcp_auth/grants?sub="+url.QueryEscape("users:alice")); status != http.StatusOK {
				t.Errorf("trial %d: revoking the user: %d %s", trial, status, body)
			}
		})
	}
}

func TestAttackRefreshRacingAdminRevokeOfGrantKeepsAccessToken(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	for trial := range raceTrials / 3 {
		raceRefresh(t, e, c, trial, func(oauthtest.TokenSet) {
			var grants []struct{ ID string }
			_, body := adminRequest(t, http.MethodGet, "/mcp_auth/grants")
			if err := json.Unmarshal(body, &grants); err != nil || len(grants) != 1 {
				t.Errorf("trial %d: grants %s %v", trial, body, err)
				return
			}
			if status, body := adminRequest(t, http.MethodDelete, "/mcp_auth/grants/"+grants[0].ID); status != http.StatusOK {
				t.Errorf("trial %d: revoking the grant: %d %s", trial, status, body)
			}
		})
	}
}

// Concurrent refreshes of one token all racing the revocation: none of the
// answers (the winner's, or the same successor within the grace window)
// may carry a working access token.
func TestAttackConcurrentRefreshesRacingRevokeKeepAccessToken(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	for trial := range raceTrials / 3 {
		first := e.login(t, c, nil)
		var (
			wg      sync.WaitGroup
			mu      sync.Mutex
			granted []string
		)
		for range 4 {
			wg.Go(func() {
				if status, _, m := e.Token(t, refreshForm(c, first.Refresh), nil); status == http.StatusOK {
					mu.Lock()
					granted = append(granted, m["access_token"].(string))
					mu.Unlock()
				}
			})
		}
		wg.Go(func() {
			time.Sleep(time.Duration(rand.IntN(3000)) * time.Microsecond)
			form := url.Values{"token": {first.Refresh}, "client_id": {c.ID}}
			e.PostForm(t, "/revoke", form, nil)
		})
		wg.Wait()
		for _, at := range granted {
			if got := e.mcpStatus(t, at); got != http.StatusUnauthorized {
				t.Errorf("trial %d: an access token from a refresh that raced the revocation works: %d", trial, got)
			}
		}
	}
}

// A code obtained before an operator revokes the user, redeemed after:
// it must not mint what the revocation just ended.
func TestAttackCodeFromBeforeUserRevocationRedeemedAfter(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	p := oauthtest.NewPKCE()
	code := loginCode(t, authParams(c, p))
	if status, body := adminRequest(t, http.MethodDelete, "/mcp_auth/grants?sub="+url.QueryEscape("users:alice")); status != http.StatusOK {
		t.Fatalf("revoking the user: %d %s", status, body)
	}
	if status, _, m := e.Token(t, codeForm(c, code, p), nil); status != http.StatusBadRequest || m["error"] != "invalid_grant" {
		t.Errorf("redeeming a code from before the revocation: %d %v, want invalid_grant", status, m)
	}
	if entries := auditLog(t, e.logDir, "authorization code of a revoked user or client redeemed; nothing issued"); len(entries) != 1 {
		t.Errorf("audit entries: %v", entries)
	}
}

// After a revocation of the user, a login of the same user is a new
// authorization and works: the mark that guards concurrent redemptions
// does not block later ones.
func TestAttackRevokedUserLogsInAgainAfterRevocation(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	before := e.login(t, c, nil)
	if status, body := adminRequest(t, http.MethodDelete, "/mcp_auth/grants?sub="+url.QueryEscape("users:alice")); status != http.StatusOK {
		t.Fatalf("revoking the user: %d %s", status, body)
	}
	if got := e.mcpStatus(t, before.Access); got != http.StatusUnauthorized {
		t.Errorf("access token from before the revocation: %d", got)
	}
	after := e.login(t, c, nil)
	if got := e.mcpStatus(t, after.Access); got != http.StatusOK {
		t.Errorf("a login after the revocation: %d, want 200", got)
	}
	e.mustRefresh(t, c, after.Refresh, nil)
}

// The throttle on client-secret guessing says when to come back, on every
// 429, and asking does not spend the guesser's budget.
func TestAttackSecretGuessingThrottleSaysWhenToRetry(t *testing.T) {
	e := usersAS(t, "")
	pe := newPenv(t, e, "users:alice")
	victim := pe.dcr(t, `{"client_name":"victim","redirect_uris":["`+clientRedirect+`"],"token_endpoint_auth_method":"client_secret_post"}`, nil, "client_secret_post")
	attacker := clientFrom(t, "127.0.0.4")
	for attempt := range 14 {
		form := url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "code_verifier": {oauthtest.NewPKCE().Verifier},
			"client_id": {victim.ID}, "client_secret": {"guess-" + strconv.Itoa(attempt)}}
		status, hdr, _ := oauthtest.Do(t, attacker, http.MethodPost, siteAddr()+"/token",
			http.Header{"Content-Type": {"application/x-www-form-urlencoded"}}, []byte(form.Encode()))
		if attempt < 10 {
			if status != http.StatusUnauthorized || hdr.Get("Retry-After") != "" {
				t.Errorf("guess %d: %d Retry-After %q, want 401 without", attempt, status, hdr.Get("Retry-After"))
			}
			continue
		}
		assertRetryAfter(t, "guess over the limit", status, hdr.Get("Retry-After"))
	}
}

// auditLog returns the audit entries in the server log with message msg.
func auditLog(t *testing.T, logDir, msg string) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(logDir, "caddy.log"))
	if err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	for line := range strings.Lines(string(raw)) {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil && strings.HasSuffix(fmt.Sprint(entry["logger"]), ".audit") && entry["msg"] == msg {
			out = append(out, entry)
		}
	}
	return out
}

// A client identified by its metadata document has no record to delete:
// deleting it must still end its tokens, and keep it out until an
// operator lets it back in, however its requests come.
func TestAttackDeletedMetadataDocumentClientComesBack(t *testing.T) {
	srv, _ := metadataServer(t, map[string]func(string) any{"/client.json": cimdDoc("/client.json", nil)})
	e := usersAS(t, "")
	c := oauthtest.Client{ID: srv.URL + "/client.json", Redirects: []string{clientRedirect}}
	ts := e.login(t, c, nil)
	if got := e.mcpStatus(t, ts.Access); got != http.StatusOK {
		t.Fatalf("the client's access token before: %d", got)
	}

	var deleted []map[string]any
	if err := json.Unmarshal([]byte(runCLI(t, "delete-client", c.ID)), &deleted); err != nil || len(deleted) != 1 ||
		deleted[0]["blocked"] != true || deleted[0]["revoked"] != float64(1) {
		t.Fatalf("delete-client of a metadata-document client: %v %v", deleted, err)
	}
	if got := e.mcpStatus(t, ts.Access); got != http.StatusUnauthorized {
		t.Errorf("the client's access token after: %d, want 401", got)
	}
	if status, _, m := e.Token(t, refreshForm(c, ts.Refresh), nil); status != http.StatusUnauthorized || m["error"] != "invalid_client" {
		t.Errorf("refresh by the blocked client: %d %v, want invalid_client", status, m)
	}
	// A fresh login is stopped at /authorize, before any redirect.
	status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(c, oauthtest.NewPKCE())), nil)
	assertErrorPage(t, "authorize by the blocked client", status, hdr, body, http.StatusForbidden)
	// Other spellings of the URL are other client_ids, which the document
	// does not confirm: none is a way back in.
	host := strings.TrimPrefix(srv.URL, "https://")
	for _, variant := range []string{
		"HTTPS://" + host + "/client.json",
		"https://" + strings.ToUpper(strings.Replace(host, "127.0.0.1", "LOCALHOST", 1)) + "/client.json",
		srv.URL + "/%63lient.json",
		srv.URL + "/client.json?",
		srv.URL + "//client.json",
		srv.URL + "/./client.json",
	} {
		status, hdr, body := oauthtest.Get(t, e.HTTP, authorizeURL(authParams(oauthtest.Client{ID: variant, Redirects: c.Redirects}, oauthtest.NewPKCE())), nil)
		if status != http.StatusForbidden {
			assertErrorPage(t, "authorize as "+variant, status, hdr, body, http.StatusBadRequest)
		}
	}

	var blocked []map[string]any
	if err := json.Unmarshal([]byte(runCLI(t, "blocked-clients")), &blocked); err != nil || len(blocked) != 1 || blocked[0]["client_id"] != c.ID {
		t.Errorf("blocked-clients: %v %v", blocked, err)
	}
	// Unblocked, the client logs in again; what it had stays revoked.
	runCLI(t, "unblock-client", c.ID)
	again := e.login(t, c, nil)
	if got := e.mcpStatus(t, again.Access); got != http.StatusOK {
		t.Errorf("the unblocked client's new token: %d", got)
	}
	if got := e.mcpStatus(t, ts.Access); got != http.StatusUnauthorized {
		t.Errorf("the token revoked with the block works again: %d", got)
	}
	if status, body := adminRequest(t, http.MethodDelete, "/mcp_auth/blocked-clients/"+url.PathEscape(c.ID)); status != http.StatusNotFound {
		t.Errorf("unblocking a client that is not blocked: %d %s", status, body)
	}

	for _, msg := range []string{"client deleted", "client unblocked", "client unblocked failed"} {
		if entries := auditLog(t, e.logDir, msg); len(entries) != 1 || entries[0]["client_id"] != c.ID || entries[0]["by"] != "admin API" {
			t.Errorf("audit entries %q: %v", msg, entries)
		}
	}
}

// Operators' changes are all in the audit log.
func TestAttackAdminActionsLeaveNoTrace(t *testing.T) {
	e := usersAS(t, "")
	c := e.publicClient(t)
	e.login(t, c, nil)
	var grants []struct{ ID string }
	if err := json.Unmarshal([]byte(runCLI(t, "grants")), &grants); err != nil || len(grants) != 1 {
		t.Fatalf("grants: %v %v", grants, err)
	}
	runCLI(t, "revoke-grant", grants[0].ID)
	runCLI(t, "revoke", "users:alice")
	runCLI(t, "delete-client", c.ID)
	runCLI(t, "rotate-keys")
	for msg, field := range map[string][2]string{
		"grant revoked":       {"grant_id", grants[0].ID},
		"user revoked":        {"sub", "users:alice"},
		"client deleted":      {"client_id", c.ID},
		"signing key rotated": {"by", "admin API"},
	} {
		if entries := auditLog(t, e.logDir, msg); len(entries) != 1 || entries[0][field[0]] != field[1] {
			t.Errorf("audit entries %q: %v, want one with %s=%s", msg, entries, field[0], field[1])
		}
	}
}
