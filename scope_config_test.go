package mcpauth

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// The site's grant_all_scopes is every resource's default; a resource's
// own setting, either way, wins.
func TestDeclaredResourcesGrantAllScopes(t *testing.T) {
	on, off := true, false
	h := Handler{GrantAllScopes: true, Resources: []Resource{{Path: "/a"}, {Path: "/b", GrantAllScopes: &off}}}
	got := h.declaredResources()
	if len(got) != 2 || !got[0].GrantAllScopes || got[1].GrantAllScopes {
		t.Errorf("site on, /b off: %+v", got)
	}
	h = Handler{Resources: []Resource{{Path: "/a"}, {Path: "/b", GrantAllScopes: &on}}}
	if got := h.declaredResources(); got[0].GrantAllScopes || !got[1].GrantAllScopes {
		t.Errorf("site off, /b on: %+v", got)
	}
	if got := (&Handler{GrantAllScopes: true, Scopes: []string{"x"}}).declaredResources(); len(got) != 1 || !got[0].GrantAllScopes {
		t.Errorf("the origin as the resource: %+v", got)
	}
}

// JSON configuration gets the checks the Caddyfile gets.
func TestCheckScopes(t *testing.T) {
	for _, tc := range []struct {
		h    Handler
		want string
	}{
		{Handler{Scopes: []string{"mcp:tools"}, ScopeDescriptions: map[string]string{"mcp:tools": "Use the tools", "openid": "Know who you are"}}, ""},
		{Handler{Scopes: []string{"mcp:tools"}, ToolScopes: map[string][]string{"rm": {"mcp:rm"}}, ScopeDescriptions: map[string]string{"mcp:rm": "Remove"}}, ""},
		{Handler{Scopes: []string{"mcp:tools"}, ScopeIncludes: map[string][]string{"admin": {"mcp:tools"}}, ScopeDescriptions: map[string]string{"admin": "Everything"}}, ""},
		{Handler{Scopes: []string{"mcp:tools"}, ScopeGrants: []ScopeGrant{{Scopes: []string{"mcp:x"}}}, ScopeDescriptions: map[string]string{"mcp:x": "X"}}, ""},
		{Handler{Scopes: []string{"mcp:tools"}, ScopeDescriptions: map[string]string{"mcp:tool": "typo"}}, `"mcp:tool" is not a scope of this site`},
		{Handler{Scopes: []string{"mcp:tools"}, ScopeDescriptions: map[string]string{"mcp:tools": ""}}, "is empty"},
		{Handler{Scopes: []string{"mcp:tools"}, ScopeDescriptions: map[string]string{"offline_access": "Stay signed in"}}, `"offline_access" is not a scope of this site`},
		{Handler{Scopes: []string{"offline_access"}}, "refresh token"},
		{Handler{RequireScopes: []ScopeRequirement{{Path: "/x", Scopes: []string{"offline_access"}}}}, "refresh token"},
	} {
		err := tc.h.checkScopes(tc.h.declaredResources())
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.h, err, tc.want)
		}
	}
}

// In external mode the external server issues the tokens and asks the
// consent: grant_all_scopes and scope descriptions are refused there.
func TestGrantAllScopesAndDescriptionsNotInExternalMode(t *testing.T) {
	storagePath, logDir := t.TempDir(), t.TempDir()
	for _, extra := range []string{"grant_all_scopes", "resource /mcp {\n\t\t\tgrant_all_scopes\n\t\t}", "scopes mcp:tools\n\t\tscope mcp:tools \"Use the tools\""} {
		assertConfigLoads(t, globalOptions(storagePath, filepath.Join(logDir, "caddy.log"))+fmt.Sprintf(
			"%s {\n\tmcp_auth {\n\t\tauthorization_server https://as.example.com\n\t\t%s\n\t}\n\trespond 200\n}\n", siteAddr(), extra),
			[]string{"external authorization server", "grant_all_scopes and scope descriptions"})
	}
}
