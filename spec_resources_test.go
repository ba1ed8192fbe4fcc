package mcpauth

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/internal/oauthtest"
)

// Black-box tests for rows of the acceptance list (spec-requirements.md),
// named after the row IDs: one server protecting several resources.

func TestSpec_SeveralResources(t *testing.T) {
	e := usersAS(t, "resource /b/mcp {\n\t\t\tscopes b:tools\n\t\t}")
	a, bURL := canonicalResource(), siteAddr()+"/b/mcp"

	t.Run("PRM-07_DistinctDocuments", func(t *testing.T) {
		_, _, prmA := fetchJSON(t, e.HTTP, siteAddr()+"/.well-known/oauth-protected-resource/mcp", nil)
		_, _, prmB := fetchJSON(t, e.HTTP, siteAddr()+"/.well-known/oauth-protected-resource/b/mcp", nil)
		if prmA["resource"] != a || prmB["resource"] != bURL {
			t.Errorf("resources %v and %v, want %s and %s", prmA["resource"], prmB["resource"], a, bURL)
		}
		if fmt.Sprint(prmB["scopes_supported"]) != "[b:tools]" {
			t.Errorf("/b/mcp scopes_supported %v", prmB["scopes_supported"])
		}
	})

	t.Run("PRM-08_ChallengeDereferences", func(t *testing.T) {
		for _, u := range []string{a, bURL} {
			status, hdr, _ := oauthtest.Do(t, e.HTTP, http.MethodPost, u, http.Header{"Content-Type": {"application/json"}}, []byte(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}`))
			rm := challengeParam(hdr.Get("WWW-Authenticate"), "resource_metadata")
			if status != http.StatusUnauthorized || !strings.HasPrefix(rm, "https://") {
				t.Fatalf("%s: %d %q", u, status, hdr.Get("WWW-Authenticate"))
			}
			if _, _, prm := fetchJSON(t, e.HTTP, rm, nil); prm["resource"] != u {
				t.Errorf("%s: its challenge's metadata names resource %v", u, prm["resource"])
			}
		}
	})

	// A token minted (through the real flow) for one resource is refused
	// at the other, though this server signed both.
	c := e.publicClient(t)
	p := oauthtest.NewPKCE()
	q := authParams(c, p)
	q.Set("resource", bURL)
	form := codeForm(c, loginCode(t, q), p)
	form.Set("resource", bURL)
	forB := e.Exchange(t, form, nil)
	forA := e.login(t, c, nil)
	call := func(u, token string) (int, string) {
		h := oauthtest.MCPHeader(token)
		status, hdr, _ := oauthtest.Do(t, e.HTTP, http.MethodPost, u, h, []byte(oauthtest.MCPInitialize))
		return status, hdr.Get("WWW-Authenticate")
	}

	t.Run("RS-04_AudienceChecked", func(t *testing.T) {
		if _, claims := oauthtest.DecodeJWT(t, forB.Access); claims["aud"] != bURL || forB.Scope != "b:tools" {
			t.Fatalf("token for /b/mcp: aud %v scope %q", claims["aud"], forB.Scope)
		}
		status, challenge := call(a, forB.Access)
		if status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) ||
			challengeParam(challenge, "resource_metadata") != siteAddr()+"/.well-known/oauth-protected-resource/mcp" {
			t.Errorf("token for /b/mcp at /mcp: %d %q, want 401 invalid_token", status, challenge)
		}
	})

	t.Run("RS-09_PathAwareAudience", func(t *testing.T) {
		// CG-02: the full URL is compared, not the origin.
		if status, challenge := call(bURL, forA.Access); status != http.StatusUnauthorized || !strings.Contains(challenge, `error="invalid_token"`) {
			t.Errorf("token for /mcp at /b/mcp: %d %q, want 401 invalid_token", status, challenge)
		}
		if status, _ := call(bURL, forB.Access); status == http.StatusUnauthorized || status == http.StatusForbidden {
			t.Errorf("token for /b/mcp at /b/mcp: %d", status)
		}
		if status, _ := call(a, forA.Access); status != http.StatusOK {
			t.Errorf("token for /mcp at /mcp: %d", status)
		}
	})
}
