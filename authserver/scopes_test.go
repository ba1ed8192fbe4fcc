package authserver

import (
	"slices"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
)

// testScopeResources are a resource with its own scopes and one that
// grants every scope up front, on a site whose rules may ask for
// mcp:admin (require_scope) and mcp:delete (tool_scope).
func testScopeResources() (*resourceSet, *gate.Resource, *gate.Resource) {
	plain := &gate.Resource{URL: "https://mcp.example.com/mcp", Path: "/mcp", Scopes: []string{"mcp:tools", "mcp:read"}}
	all := &gate.Resource{URL: "https://mcp.example.com/all", Path: "/all", Scopes: []string{"mcp:tools"}, GrantAllScopes: true}
	return &resourceSet{origin: "https://mcp.example.com", list: gate.Resources{plain, all}, stepUp: []string{"mcp:admin", "mcp:delete"}}, plain, all
}

func TestRequestedScopes(t *testing.T) {
	s, plain, all := testScopeResources()
	for _, tc := range []struct {
		res       *gate.Resource
		requested string
		want      string
	}{
		{plain, "mcp:read", "mcp:read"},
		{plain, "", "mcp:tools mcp:read"},
		{plain, "unknown", "mcp:tools mcp:read"},
		// offline_access asks for a refresh token, not for an access
		// token scope: it is never granted as one, in any spelling.
		{plain, "offline_access", "mcp:tools mcp:read"},
		{plain, "mcp:read offline_access", "mcp:read"},
		{plain, "OFFLINE_ACCESS openid", "mcp:tools mcp:read openid"},
		// Scopes the gate's rules ask for are granted when asked for
		// (step-up), and are no default.
		{plain, "mcp:tools mcp:delete", "mcp:tools mcp:delete"},
		{plain, "mcp:delete", "mcp:delete"},
		{plain, "MCP:DELETE", "mcp:tools mcp:read"},
		{plain, "mcp:read mcp:read\tmcp:read", "mcp:read"},
		// A resource granting every scope up front gets them all,
		// whatever is asked, and the OpenID Connect ones asked for.
		{all, "mcp:tools", "mcp:tools mcp:admin mcp:delete"},
		{all, "", "mcp:tools mcp:admin mcp:delete"},
		{all, "openid offline_access", "mcp:tools mcp:admin mcp:delete openid"},
	} {
		if got := strings.Join(s.requestedScopes(tc.res, tc.requested), " "); got != tc.want {
			t.Errorf("%s asking %q: %q, want %q", tc.res.Path, tc.requested, got, tc.want)
		}
	}
	if up := s.upFront(plain); up != nil {
		t.Errorf("a resource without grant_all_scopes grants %v up front", up)
	}
}

func TestRefreshScopes(t *testing.T) {
	for _, tc := range []struct {
		params map[string]string
		want   []string
		named  bool
	}{
		{map[string]string{}, nil, false},
		{map[string]string{"scope": "offline_access"}, nil, false},
		{map[string]string{"scope": " offline_access  offline_access"}, nil, false},
		{map[string]string{"scope": "mcp:tools offline_access"}, []string{"mcp:tools"}, true},
		{map[string]string{"scope": "Offline_Access"}, []string{"Offline_Access"}, true},
		// An empty scope names no scope: the token gets none.
		{map[string]string{"scope": ""}, []string{}, true},
	} {
		got, named := refreshScopes(tc.params)
		if named != tc.named || !slices.Equal(got, tc.want) {
			t.Errorf("%v: %q %v, want %q %v", tc.params, got, named, tc.want, tc.named)
		}
	}
}

// FuzzRequestedScopes checks, for any scope parameter, that what an
// authorization request is granted is offered by the resource or OpenID
// Connect, holds no duplicate and never offline_access, and that a
// resource granting every scope up front gets all its grantable ones.
func FuzzRequestedScopes(f *testing.F) {
	for _, seed := range []string{"", "mcp:tools offline_access", "openid\tmcp:delete", " \x00mcp:read ", "mcp:admin mcp:admin"} {
		f.Add(seed)
	}
	s, plain, all := testScopeResources()
	f.Fuzz(func(t *testing.T, requested string) {
		for _, res := range []*gate.Resource{plain, all} {
			got := s.requestedScopes(res, requested)
			offered := slices.Concat(s.grantable(res), oidcScopes)
			for i, sc := range got {
				if !slices.Contains(offered, sc) || slices.Contains(got[:i], sc) {
					t.Fatalf("%s asking %q: %q has %q, not offered or twice", res.Path, requested, got, sc)
				}
			}
			if len(got) == 0 {
				t.Fatalf("%s asking %q: no scope, the token would be good for nothing", res.Path, requested)
			}
			for _, sc := range s.upFront(res) {
				if !slices.Contains(got, sc) {
					t.Fatalf("%s asking %q: %q lacks %q, granted up front", res.Path, requested, got, sc)
				}
			}
		}
		scopes, _ := refreshScopes(map[string]string{"scope": requested})
		if slices.Contains(scopes, OfflineAccess) {
			t.Fatalf("refresh asking %q keeps offline_access", requested)
		}
	})
}
