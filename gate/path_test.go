package gate

import (
	"net/url"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
)

// requestURL parses a request target as net/http's server does.
func requestURL(t testing.TB, target string) *url.URL {
	u, err := url.ParseRequestURI(target)
	if err != nil {
		t.Fatalf("%q: %v", target, err)
	}
	return u
}

func TestGatePath(t *testing.T) {
	for target, want := range map[string]string{
		"/notes/mcp":         "/notes/mcp",
		"/NOTES/Mcp/":        "/notes/mcp/",
		"/notes/mcp?x=/../a": "/notes/mcp",
		"/notes/%6Dcp":       "/notes/mcp", // an encoded letter is that letter, to Caddy and to backends
		"/a/file.json":       "/a/file.json",
		"/a/..b/c.d":         "/a/..b/c.d",
		"/caf%C3%A9":         "/café",
		"/to%E2%84%AAos":     "/tokos", // KELVIN SIGN lower-cases to k, in Caddy's matcher too
		"/":                  "/",
	} {
		if got, err := gatePath(requestURL(t, target)); err != nil || got != want {
			t.Errorf("gatePath(%q) = %q, %v; want %q", target, got, err, want)
		}
	}
	if got, err := gatePath(&url.URL{}); err != nil || got != "/" {
		t.Errorf("empty path: %q, %v", got, err)
	}
	for _, target := range []string{
		"/todos/mcp/..%2F..%2Fnotes/mcp", "/todos/mcp/..%2f", "/a%2fb", "/a%5Cb", "/a%5cb", "/a\\b",
		"/a/%2E%2E/b", "/a/%2e/b", "/a/x%2Ejson", "/a/%252F", "/a/%25", "/a/../b", "/a/./b", "/a/..", "/a/.",
		"/a//b", "//a", "/a;x=1", "/a/..;/b", "/a%3Bb", "/a%00b", "/a%0Ab", "/a%7F", "/a%C0%AF", "/a%C0%AE%C0%AE/b",
		"/a%ff", "*", "/todos./mcp", "/todos%20/mcp", "/a/c..", "/a/b.",
	} {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			continue // net/http refuses it before any handler
		}
		if got, err := gatePath(u); err == nil {
			t.Errorf("gatePath(%q) = %q, want a refusal", target, got)
		}
	}
}

func TestScopeRuleMatching(t *testing.T) {
	g, err := newGate(Config{ScopeRules: []ScopeRule{
		{Pattern: "/notes/mcp/admin*", Scopes: []string{"admin"}},
		{Pattern: "/Reports", Scopes: []string{"reports"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string][]string{
		"/notes/mcp/admin":    {"admin"},
		"/notes/mcp/ADMIN":    {"admin"},
		"/Notes/Mcp/AdminX/y": {"admin"},
		"/notes/mcp/adm":      nil,
		"/reports":            {"reports"},
		"/REPORTS/":           {"reports"},
		"/reports/x":          nil,
		"/reportsx":           nil,
	} {
		gp, err := gatePath(requestURL(t, p))
		if err != nil {
			t.Fatal(err)
		}
		if got := g.requiredScopes(gp); !slices.Equal(got, want) {
			t.Errorf("requiredScopes(%q) = %v, want %v", p, got, want)
		}
	}
}

// encodedSeparator finds what an accepted raw path must not hold: an
// encoded "/", "\", "." or "%", or a ";" or "\" in any form.
var encodedSeparator = regexp.MustCompile(`(?i)%2f|%5c|%2e|%25|%3b|;|\\`)

// FuzzGatePath checks the gate's reading of a request path against Caddy's
// path matcher: an accepted path is the decoded path, lower-cased and
// cleaned exactly as caddyhttp.MatchPath cleans it, its raw form holds no
// encoded separator, dot or empty segment, and the resource and scope rules
// chosen for it are those a plain reading of the normalised path gives.
func FuzzGatePath(f *testing.F) {
	for _, seed := range []string{
		"/notes/mcp", "/TODOS/mcp", "/todos/mcp/..%2F..%2Fnotes/mcp", "/notes/mcp/ADMIN", "/a//b", "/a;b",
		"/a%252F", "/a%C0%AF", "/to%E2%84%AAos/mcp", "/notes/mcpx", "/notes/mcp/admin/", "/a/./b", "/a\\b",
	} {
		f.Add(seed)
	}
	g, err := newGate(Config{
		Resources: mustResources(f, "/notes/mcp", "/todos/mcp", "/todos/mcp/admin"),
		ScopeRules: []ScopeRule{
			{Pattern: "/notes/mcp/admin*", Scopes: []string{"admin"}},
			{Pattern: "/todos/mcp/delete", Scopes: []string{"delete"}},
		},
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Opaque != "" {
			return // net/http refuses it
		}
		got, err := gatePath(u)
		if err != nil {
			return
		}
		raw := u.EscapedPath()
		if encodedSeparator.MatchString(raw) {
			t.Fatalf("accepted %q with an encoded separator", raw)
		}
		for i, seg := range strings.Split(raw, "/")[1:] {
			if seg == "." || seg == ".." || seg == "" && i < strings.Count(raw, "/")-1 {
				t.Fatalf("accepted %q with a dot or empty segment", raw)
			}
		}
		decoded, err := url.PathUnescape(raw)
		if err != nil {
			t.Fatalf("accepted %q that does not decode: %v", raw, err)
		}
		want := caddyhttp.CleanPath(strings.ToLower(decoded), true)
		if decoded == "" {
			want = "/"
		}
		if got != want {
			t.Fatalf("gatePath(%q) = %q; Caddy's matcher reads %q", raw, got, want)
		}
		// Reference decisions: the longest resource whose lower-cased path
		// prefixes the normalised one, as Caddy's `handle <path>*` blocks
		// route; else the todos resource for /todos/... (which leads to
		// /todos/mcp/admin), the default (notes) for any other; rules by
		// prefix or exact path (trailing slash included).
		var wantRes *Resource
		for _, r := range g.cfg.Resources {
			if strings.HasPrefix(want, strings.ToLower(r.Path)) && (wantRes == nil || len(r.Path) > len(wantRes.Path)) {
				wantRes = r
			}
		}
		if first, _, _ := strings.Cut(strings.TrimPrefix(want, "/"), "/"); wantRes == nil && first == "todos" {
			wantRes = g.cfg.Resources[1]
		} else if wantRes == nil {
			wantRes = g.cfg.Resources[0]
		}
		if res := g.cfg.Resources.For(got); res != wantRes {
			t.Fatalf("%q went to %v, want %v", raw, res, wantRes)
		}
		var wantScopes []string
		if strings.HasPrefix(want, "/notes/mcp/admin") {
			wantScopes = append(wantScopes, "admin")
		}
		if m, _ := path.Match("/todos/mcp/delete", strings.TrimSuffix(want, "/")); m {
			wantScopes = append(wantScopes, "delete")
		}
		if need := g.requiredScopes(got); !slices.Equal(need, wantScopes) {
			t.Fatalf("%q needs %v, want %v", raw, need, wantScopes)
		}
	})
}

// The path check runs on every gated request: a plain path costs no
// allocation.
func TestGatePathAllocations(t *testing.T) {
	u := requestURL(t, "/todos/mcp/x")
	g, err := newGate(Config{Resources: mustResources(t, "/notes/mcp", "/todos/mcp"),
		ScopeRules: []ScopeRule{{Pattern: "/todos/mcp/admin*", Scopes: []string{"admin"}}}})
	if err != nil {
		t.Fatal(err)
	}
	if n := testing.AllocsPerRun(100, func() {
		p, _ := gatePath(u)
		_ = g.cfg.Resources.For(p)
		_ = g.requiredScopes(p)
	}); n != 0 {
		t.Errorf("%v allocations per request", n)
	}
}
