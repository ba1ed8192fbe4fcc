package mcpauth

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

// adaptGoldenDir holds golden adapter tests: a Caddyfile, a line of ten
// dashes, and the JSON it must adapt to (the format of Caddy's own
// caddytest/integration/caddyfile_adapt). Run with ADAPT_UPDATE=1 to rewrite
// the expected JSON from the current adapter output, then review the diff.
const adaptGoldenDir = "testdata/caddyfile_adapt"

const adaptSeparator = "\n----------\n"

// adaptCaddyfile adapts a whole Caddyfile with the stock caddyfile adapter.
func adaptCaddyfile(t *testing.T, src string) ([]byte, []caddyconfig.Warning, error) {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	if adapter == nil {
		t.Fatal("caddyfile adapter is not registered")
	}
	return adapter.Adapt([]byte(src), nil)
}

// adaptMustAdapt adapts src and fails on an error or any warning (an
// unformatted Caddyfile is a warning too).
func adaptMustAdapt(t *testing.T, src string) []byte {
	t.Helper()
	out, warnings, err := adaptCaddyfile(t, src)
	if err != nil {
		t.Fatalf("adapting:\n%s\nerror: %v", src, err)
	}
	for _, w := range warnings {
		t.Errorf("warning: %s:%d: %s: %s", w.File, w.Line, w.Directive, w.Message)
	}
	return out
}

// adaptPretty indents JSON with tabs, as the golden files are written.
func adaptPretty(t *testing.T, raw []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "\t"); err != nil {
		t.Fatalf("indenting JSON: %v\n%s", err, raw)
	}
	return buf.String()
}

// adaptDecode decodes JSON into generic values for comparison.
func adaptDecode(t *testing.T, raw []byte) any {
	t.Helper()
	var v any
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("decoding JSON: %v\n%s", err, raw)
	}
	return v
}

func TestCaddyfileAdaptGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(adaptGoldenDir, "*.caddyfiletest"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no golden files in %s", adaptGoldenDir)
	}
	update := os.Getenv("ADAPT_UPDATE") == "1"
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			text := strings.ReplaceAll(string(data), "\r\n", "\n")
			caddyfileText, expected, ok := strings.Cut(text, adaptSeparator)
			if !ok {
				t.Fatalf("%s: no %q separator line", file, strings.TrimSpace(adaptSeparator))
			}
			caddyfileText = strings.TrimSpace(caddyfileText) + "\n"
			expected = strings.TrimSpace(expected)

			if formatted := string(caddyfile.Format([]byte(caddyfileText))); formatted != caddyfileText {
				t.Errorf("Caddyfile part is not caddy fmt formatted; want:\n%s", formatted)
			}

			out := adaptMustAdapt(t, caddyfileText)
			got := adaptPretty(t, out)
			if update {
				if err := os.WriteFile(file, []byte(strings.TrimSpace(caddyfileText)+adaptSeparator+got+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			if expected == "" || expected[0] != '{' {
				t.Fatalf("expected part is not a JSON object")
			}
			if !reflect.DeepEqual(adaptDecode(t, []byte(expected)), adaptDecode(t, out)) {
				t.Errorf("adapted JSON differs from %s\n--- want\n%s\n--- got\n%s", file, expected, got)
			}
		})
	}
}

// adaptRoutes returns the routes of the only server in an adapted config.
func adaptRoutes(t *testing.T, out []byte) []map[string]any {
	t.Helper()
	var cfg struct {
		Apps struct {
			HTTP struct {
				Servers map[string]struct {
					Routes []map[string]any `json:"routes"`
				} `json:"servers"`
			} `json:"http"`
		} `json:"apps"`
	}
	if err := json.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("decoding adapted config: %v", err)
	}
	if n := len(cfg.Apps.HTTP.Servers); n != 1 {
		t.Fatalf("want 1 server, got %d:\n%s", n, adaptPretty(t, out))
	}
	for _, srv := range cfg.Apps.HTTP.Servers {
		return srv.Routes
	}
	return nil
}

// adaptHandlers returns the handler names used by a route, depth first
// through subroutes, in order.
func adaptHandlers(v any) []string {
	var names []string
	switch x := v.(type) {
	case map[string]any:
		if name, ok := x["handler"].(string); ok {
			names = append(names, name)
		}
		for _, key := range []string{"handle", "routes"} {
			if inner, ok := x[key]; ok {
				names = append(names, adaptHandlers(inner)...)
			}
		}
	case []any:
		for _, e := range x {
			names = append(names, adaptHandlers(e)...)
		}
	}
	return names
}

// adaptSiteRoutes returns the routes inside the site's host-matched
// subroute: Caddy wraps each site's directives in one subroute.
func adaptSiteRoutes(t *testing.T, out []byte) []any {
	t.Helper()
	routes := adaptRoutes(t, out)
	if len(routes) != 1 {
		t.Fatalf("want 1 site route, got %d:\n%s", len(routes), adaptPretty(t, out))
	}
	handle, _ := routes[0]["handle"].([]any)
	if len(handle) != 1 {
		t.Fatalf("want the site route to hold one subroute handler:\n%s", adaptPretty(t, out))
	}
	sub, _ := handle[0].(map[string]any)
	if sub["handler"] != "subroute" {
		t.Fatalf("want a subroute handler, got %v", sub["handler"])
	}
	inner, _ := sub["routes"].([]any)
	return inner
}

// TestCaddyfileAdaptMCPAuthBeforeProxy checks the security property the
// directive order exists for: wherever mcp_auth is written in the site block,
// it runs before the handlers (handle, route, reverse_proxy…) that reach the
// upstream, so no request gets there without passing mcp_auth. Routes run in
// order and the handlers of one route run in order, so "before" is compared
// as (route index, position in that route).
func TestCaddyfileAdaptMCPAuthBeforeProxy(t *testing.T) {
	cases := []struct {
		name      string
		caddyfile string
		after     []string // handlers that must run after mcp_auth
		// subroutes: handle/route/handle_path blocks are subroutes that must
		// be in routes after the mcp_auth route, not merged with it.
		subroutes bool
	}{
		{
			name: "reverse_proxy at top level, written first",
			caddyfile: `mcp.example.com {
	reverse_proxy localhost:9000
	mcp_auth
}
`,
			after: []string{"reverse_proxy"},
		},
		{
			name: "handle and route, mcp_auth written between them",
			caddyfile: `mcp.example.com {
	handle /mcp* {
		reverse_proxy localhost:9000
	}
	mcp_auth
	route /other* {
		respond "other"
	}
	respond "fallback"
}
`,
			after:     []string{"reverse_proxy", "static_response", "subroute"},
			subroutes: true,
		},
		{
			name: "matcher on mcp_auth, written last",
			caddyfile: `mcp.example.com {
	route {
		reverse_proxy /mcp* localhost:9000
	}
	handle_path /api/* {
		reverse_proxy localhost:9001
	}
	mcp_auth /mcp* {
		resource /mcp
	}
}
`,
			after:     []string{"reverse_proxy", "rewrite", "subroute"},
			subroutes: true,
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := adaptMustAdapt(t, tc.caddyfile)
			routes := adaptSiteRoutes(t, out)
			authRoute, authPos := -1, -1
			for i, r := range routes {
				for j, h := range adaptHandlers(r) {
					if h == "mcp_auth" && authRoute < 0 {
						authRoute, authPos = i, j
					}
				}
			}
			if authRoute < 0 {
				t.Fatalf("no mcp_auth route:\n%s", adaptPretty(t, out))
			}
			for _, name := range tc.after {
				found := false
				for i, r := range routes {
					for j, h := range adaptHandlers(r) {
						if h != name {
							continue
						}
						found = true
						if i < authRoute || (i == authRoute && j <= authPos) {
							t.Errorf("%s (route %d, handler %d) runs before mcp_auth (route %d, handler %d):\n%s",
								name, i, j, authRoute, authPos, adaptPretty(t, out))
						}
					}
				}
				if !found {
					t.Errorf("no %s handler:\n%s", name, adaptPretty(t, out))
				}
			}
			if tc.subroutes {
				// The mcp_auth route holds mcp_auth alone, and every
				// subroute (handle, route, handle_path) is a later route.
				if names := adaptHandlers(routes[authRoute]); !reflect.DeepEqual(names, []string{"mcp_auth"}) {
					t.Errorf("mcp_auth route %d holds handlers %v", authRoute, names)
				}
				subs := 0
				for i, r := range routes {
					handle, _ := r.(map[string]any)["handle"].([]any)
					for _, h := range handle {
						if h.(map[string]any)["handler"] == "subroute" {
							subs++
							if i <= authRoute {
								t.Errorf("subroute route %d is not after the mcp_auth route %d:\n%s",
									i, authRoute, adaptPretty(t, out))
							}
						}
					}
				}
				if subs < 2 {
					t.Errorf("want at least 2 subroute routes, got %d:\n%s", subs, adaptPretty(t, out))
				}
			}
		})
	}
}

// adaptHandlerConfig returns the first mcp_auth handler in an adapted config.
func adaptHandlerConfig(t *testing.T, out []byte) Handler {
	t.Helper()
	var find func(v any) map[string]any
	find = func(v any) map[string]any {
		switch x := v.(type) {
		case map[string]any:
			if x["handler"] == "mcp_auth" {
				return x
			}
			for _, e := range x {
				if m := find(e); m != nil {
					return m
				}
			}
		case []any:
			for _, e := range x {
				if m := find(e); m != nil {
					return m
				}
			}
		}
		return nil
	}
	m := find(adaptDecode(t, out))
	if m == nil {
		t.Fatalf("no mcp_auth handler:\n%s", adaptPretty(t, out))
	}
	raw, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var h Handler
	if err := json.Unmarshal(raw, &h); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCaddyfileAdaptIssuerFromSiteAddress(t *testing.T) {
	cases := []struct {
		site, issuer string
	}{
		{"mcp.example.com", "https://mcp.example.com"},
		{"localhost", "https://localhost"},
		{"localhost:8443", "https://localhost:8443"},
		{"http://localhost:9080", "http://localhost:9080"},
		{"http://127.0.0.1:9080", "http://127.0.0.1:9080"},
		{"localhost:80", "http://localhost"},
		{"https://Example.COM:443", "https://example.com"},
		{"https://mcp.example.com:8443", "https://mcp.example.com:8443"},
		{"[::1]:8443", "https://[::1]:8443"},
		{"http://[::1]:8080", "http://[::1]:8080"},
		{"example.com:443", "https://example.com"},
	}
	for _, tc := range cases {
		t.Run(tc.site, func(t *testing.T) {
			for _, body := range []string{
				"\tmcp_auth\n",
				"\thandle /mcp* {\n\t\tmcp_auth\n\t\treverse_proxy localhost:9000\n\t}\n",
			} {
				out := adaptMustAdapt(t, tc.site+" {\n"+body+"}\n")
				if got := adaptHandlerConfig(t, out).Issuer; got != tc.issuer {
					t.Errorf("site %q, block:\n%s\nissuer = %q, want %q", tc.site, body, got, tc.issuer)
				}
			}
		})
	}

	// An explicit issuer wins over the site address; it is kept as written
	// (the handler canonicalizes it when provisioned).
	out := adaptMustAdapt(t, "a.example.com, b.example.com {\n\tmcp_auth {\n\t\tissuer https://auth.example.com\n\t}\n}\n")
	if got := adaptHandlerConfig(t, out).Issuer; got != "https://auth.example.com" {
		t.Errorf("explicit issuer = %q", got)
	}

	// A snippet takes the address of the site that imports it.
	out = adaptMustAdapt(t, "(mcp) {\n\tmcp_auth\n}\n\nmcp.example.com {\n\timport mcp\n\treverse_proxy localhost:9000\n}\n")
	if got := adaptHandlerConfig(t, out).Issuer; got != "https://mcp.example.com" {
		t.Errorf("issuer from a snippet = %q", got)
	}

	// A named route with an explicit issuer adapts.
	out = adaptMustAdapt(t, "&(mcp) {\n\tmcp_auth {\n\t\tissuer https://mcp.example.com\n\t}\n}\n\nmcp.example.com {\n\tinvoke mcp\n}\n")
	if got := adaptHandlerConfig(t, out).Issuer; got != "https://mcp.example.com" {
		t.Errorf("issuer in a named route = %q", got)
	}
}

// adaptLineRE finds the Caddyfile:N position Caddy appends to errors.
var adaptLineRE = regexp.MustCompile(`Caddyfile:(\d+)\b`)

func TestCaddyfileAdaptErrors(t *testing.T) {
	cases := []struct {
		name      string
		caddyfile string
		line      string   // "Caddyfile:N" expected in the error
		want      []string // substrings of the error
	}{
		// Site directive.
		{
			name:      "require_dpop with an argument",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource /mcp {\n\t\t\trequire_dpop yes\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "unknown dpop option",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tdpop {\n\t\t\tnonces\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"unrecognized dpop option 'nonces'"},
		},
		{
			name:      "dpop twice",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tdpop\n\t\tdpop {\n\t\t\tnonce\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"dpop already specified"},
		},
		{
			name:      "unknown upstream provider",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream facebook {\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"unknown upstream provider"},
		},
		{
			name:      "upstream option of another provider",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream github {\n\t\t\tissuer https://x.example.com\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"unrecognized option 'issuer' for upstream github"},
		},
		{
			name:      "trust_preferred_username for github",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream github {\n\t\t\ttrust_preferred_username\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"unrecognized option 'trust_preferred_username' for upstream github"},
		},
		{
			name:      "trust_preferred_username with a value",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream oidc {\n\t\t\ttrust_preferred_username yes\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "upstream_tokens without key",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream_tokens {\n\t\t\told_key x\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"upstream_tokens: key is required"},
		},
		{
			name:      "upstream_tokens key twice",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream_tokens {\n\t\t\tkey a\n\t\t\tkey b\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"key already specified"},
		},
		{
			name:      "upstream_tokens unknown option",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream_tokens {\n\t\t\tkey a\n\t\t\theader X\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"unrecognized upstream_tokens option 'header'"},
		},
		{
			name:      "upstream_tokens twice",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream_tokens {\n\t\t\tkey a\n\t\t}\n\t\tupstream_tokens {\n\t\t\tkey b\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:6",
			want:      []string{"upstream_tokens already specified"},
		},
		{
			name:      "user without hash",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream users {\n\t\t\talice\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"bcrypt hash"},
		},
		{
			name:      "allow of an unknown kind",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tallow teams a\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"use users, emails, hosted_domains, orgs, clients or everyone"},
		},
		{
			name:      "allow emails without @",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tallow emails example.com\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"not an address"},
		},
		{
			name:      "grant_scope without to",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tgrant_scope mcp:read everyone\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"grant_scope <scope...> to"},
		},
		{
			name:      "grant_scope to nobody",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tgrant_scope mcp:read to users\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"must be users, emails, hosted_domains, orgs or clients"},
		},
		{
			name:      "client id that is a URL",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient https://agent.example/id {\n\t\t\tjwks_uri https://agent.example/jwks\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"may only hold letters, digits"},
		},
		{
			name:      "client id of the registered form",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient abcdefghijklmnopqrstuv {\n\t\t\tjwks_uri https://agent.example/jwks\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"form of dynamically registered ids"},
		},
		{
			name:      "client with a plain secret",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient agent-1 {\n\t\t\tsecret_hash hunter2\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"hex SHA-256", "never the secret itself"},
		},
		{
			name:      "client with a bcrypt hash",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient agent-1 {\n\t\t\tsecret_hash $2a$14$ajq8Q7fbtFRQvXpdCq7Jcuy.Rx1h/L4J60Otx.gyNLbAYctGMJ9tK\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"bcrypt hashes are not accepted"},
		},
		{
			name:      "client with a secret and keys",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient agent-1 {\n\t\t\tsecret_hash " + strings.Repeat("ab", 32) + "\n\t\t\tjwks_uri https://agent.example/jwks\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"only one of secret_hash, jwks_uri and jwks"},
		},
		{
			name:      "client without credentials",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient agent-1 {\n\t\t\tscopes mcp:tools\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"give secret_hash, jwks_uri or jwks"},
		},
		{
			name:      "client with a private key in jwks",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient agent-1 {\n\t\t\tjwks `{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2VjcmV0\"}]}`\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"public keys only"},
		},
		{
			name:      "client given twice",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient a.1 {\n\t\t\tjwks_uri https://a.example/jwks\n\t\t}\n\t\tclient a.1 {\n\t\t\tjwks_uri https://a.example/jwks\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:6",
			want:      []string{"client a.1 already specified"},
		},
		{
			name:      "unknown client option",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient agent-1 {\n\t\t\tclient_secret s3cret\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"unrecognized client option 'client_secret'"},
		},
		{
			name:      "tool_scope without scope",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\ttool_scope add\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "scope_includes without narrower scope",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscope_includes admin\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "scope without description",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscopes mcp:tools\n\t\tscope mcp:tools\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{`scope <scope> "<description>"`},
		},
		{
			name:      "scope with an empty description",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscopes mcp:tools\n\t\tscope mcp:tools \"\"\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{`scope <scope> "<description>"`},
		},
		{
			name:      "scope description in words not quoted",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscopes mcp:tools\n\t\tscope mcp:tools Use the tools\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"in quotes"},
		},
		{
			name:      "scope described twice",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscopes mcp:tools\n\t\tscope mcp:tools \"a\"\n\t\tscope mcp:tools \"b\"\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{`scope "mcp:tools" described twice`},
		},
		{
			// Named at its own line although it is only known to be
			// unknown once the whole block is read.
			name:      "description of a scope the site does not use",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscope mcp:tool \"Use the tools\"\n\t\tscopes mcp:tools\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{`scope "mcp:tool" is not a scope of this site`},
		},
		{
			name:      "description of offline_access",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscopes mcp:tools\n\t\tscope offline_access \"Stay signed in\"\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{`scope "offline_access" is not a scope of this site`},
		},
		{
			name:      "grant_all_scopes maybe",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tgrant_all_scopes maybe\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"grant_all_scopes takes on or off"},
		},
		{
			name:      "grant_all_scopes twice",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tgrant_all_scopes\n\t\tgrant_all_scopes off\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"grant_all_scopes already specified"},
		},
		{
			name:      "resource grant_all_scopes twice",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource /mcp {\n\t\t\tgrant_all_scopes\n\t\t\tgrant_all_scopes on\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"grant_all_scopes already specified"},
		},
		{
			name:      "resource grant_all_scopes with two values",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource /mcp {\n\t\t\tgrant_all_scopes on off\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"grant_all_scopes takes on or off"},
		},
		{
			name:      "assertion_optional with a wildcard",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tassertion_optional *.chatgpt.com\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"neither a client_id URL nor a host name"},
		},
		{
			name:      "assertion_optional with an http URL",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tassertion_optional http://chatgpt.com/oauth/client.json\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"not a client metadata document URL"},
		},
		{
			name:      "assertion_optional with a path but no scheme",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tassertion_optional chatgpt.com/oauth\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"neither a client_id URL nor a host name"},
		},
		{
			name:      "assertion_optional without a client",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tassertion_optional\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "bad duration",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\taccess_token_lifetime soon\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"not a positive duration"},
		},
		{
			name:      "unknown registration option",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tregistration {\n\t\t\topen yes\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"unrecognized registration option 'open'"},
		},
		{
			name:      "bad rate limit",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tregistration {\n\t\t\trate_limit -1\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"positive number"},
		},
		{
			name:      "bad global rate limit",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tregistration {\n\t\t\tglobal_rate_limit 0\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"global_rate_limit", "positive number"},
		},
		{
			name:      "source_ipv4_prefix out of range",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tsource_ipv4_prefix 33\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"source_ipv4_prefix", "8 to 32"},
		},
		{
			name:      "client_metadata_documents maybe",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tclient_metadata_documents maybe\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"on or off"},
		},
		{
			name:      "introspection_client without secret",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tintrospection_client rs-1\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "authorization_server over http",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tauthorization_server http://kc.example.com/realms/mcp\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"must use https"},
		},
		{
			name:      "authorization_server option",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tauthorization_server https://kc.example.com {\n\t\t\tcache 1m\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"unrecognized authorization_server option 'cache'"},
		},
		{
			name:      "accept_jwt_typ without a type",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tauthorization_server https://kc.example.com {\n\t\t\taccept_jwt_typ\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"accept_jwt_typ takes one or more JOSE typ values"},
		},
		{
			name:      "directive argument",
			caddyfile: "example.com {\n\tmcp_auth /mcp* extra\n}\n",
			line:      "Caddyfile:2",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "unknown subdirective",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tfrobnicate on\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"unrecognized mcp_auth option 'frobnicate'"},
		},
		{
			name:      "issuer without argument",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tissuer\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "issuer with two arguments",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tissuer https://a.example.com https://b.example.com\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "issuer http non-loopback",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tissuer http://example.com\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"http://example.com", "must use https"},
		},
		{
			name:      "issuer not a URL",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tissuer example.com\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{`"example.com"`, "not an absolute URL"},
		},
		{
			name:      "issuer with another scheme",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tissuer ftp://example.com\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"must be an https URL"},
		},
		{
			name:      "issuer with query",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tissuer https://example.com/?a=b\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"must not have a query"},
		},
		{
			name:      "resource without path",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "resource with relative path",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource mcp\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{`resource "mcp" must be a path`},
		},
		{
			name:      "resource with two paths",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource /mcp /other\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "resource block unknown option",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource /mcp {\n\t\t\tscopes read\n\t\t\trealm x\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"unrecognized resource option 'realm'"},
		},
		{
			name:      "resource block duplicated scopes",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource /mcp {\n\t\t\tscopes read\n\t\t\tscopes write\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"scopes already specified"},
		},
		{
			name:      "resource block scopes without arguments",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource /mcp {\n\t\t\tscopes\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "scopes without arguments",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscopes\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "require_scope with one argument",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\trequire_scope /admin\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "require_scope without arguments",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\trequire_scope\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "require_scope relative path",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\trequire_scope admin admin:write\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{`require_scope path "admin" must start with /`},
		},
		{
			name:      "realm without argument",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\trealm\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "realm with two arguments",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\trealm a b\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "allowed_origins without arguments",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tallowed_origins\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "strip_header without arguments",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tstrip_header\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "pass_authorization with argument",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tpass_authorization yes\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "duplicated issuer",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tissuer https://a.example.com\n\t\tissuer https://b.example.com\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"issuer already specified"},
		},
		{
			name:      "duplicated realm",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\trealm a\n\t\trealm b\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"realm already specified"},
		},
		{
			name:      "duplicated scopes",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscopes read\n\t\tscopes write\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"scopes already specified"},
		},
		{
			name:      "duplicated pass_authorization",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tpass_authorization\n\t\tpass_authorization\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"pass_authorization already specified"},
		},
		{
			name:      "top-level scopes with resources",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tscopes read\n\t\tresource /mcp\n\t}\n}\n",
			line:      "", // a whole-block check: any Caddyfile:N
			want:      []string{"with resources declared, set scopes inside each resource block"},
		},
		{
			name:      "resources then top-level scopes",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tresource /mcp {\n\t\t\tscopes read\n\t\t}\n\t\tscopes write\n\t}\n}\n",
			line:      "", // a whole-block check: any Caddyfile:N
			want:      []string{"with resources declared, set scopes inside each resource block"},
		},

		// Issuer from the site address.
		{
			name:      "two site addresses without issuer",
			caddyfile: "a.example.com, b.example.com {\n\tmcp_auth\n}\n",
			line:      "Caddyfile:2",
			want:      []string{"the site has 2 addresses", "set issuer"},
		},
		{
			name:      "port-only site without issuer",
			caddyfile: ":8080 {\n\tmcp_auth\n}\n",
			line:      "Caddyfile:2",
			want:      []string{`":8080"`, "no single host name", "set issuer"},
		},
		{
			name:      "wildcard site without issuer",
			caddyfile: "*.example.com {\n\tmcp_auth\n}\n",
			line:      "Caddyfile:2",
			want:      []string{`"*.example.com"`, "no single host name", "set issuer"},
		},
		{
			name:      "http non-loopback site without issuer",
			caddyfile: "http://example.com {\n\tmcp_auth\n}\n",
			line:      "Caddyfile:2",
			want:      []string{"http://example.com", "must use https", "set issuer"},
		},
		{
			name:      "port 80 non-loopback site without issuer",
			caddyfile: "example.com:80 {\n\tmcp_auth\n}\n",
			line:      "Caddyfile:2",
			want:      []string{"must use https", "set issuer"},
		},
		{
			name:      "named route without issuer",
			caddyfile: "&(mcp) {\n\tmcp_auth\n}\n\nmcp.example.com {\n\tinvoke mcp\n}\n",
			line:      "Caddyfile:2",
			want:      []string{"named route", "set issuer"},
		},
		{
			name:      "site without issuer, error on the directive line",
			caddyfile: ":8080 {\n\tmcp_auth {\n\t\trealm mcp\n\t\tpass_authorization\n\t}\n}\n",
			line:      "Caddyfile:2",
			want:      []string{"no single host name", "set issuer"},
		},

		// Global option.
		{
			name:      "global unknown option",
			caddyfile: "{\n\tmcp_auth {\n\t\tstorage_dir /var/lib/mcp\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"unrecognized mcp_auth global option 'storage_dir'"},
		},
		{
			name:      "global argument on the option",
			caddyfile: "{\n\tmcp_auth /var/lib/mcp\n}\n",
			line:      "Caddyfile:2",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "global missing value",
			caddyfile: "{\n\tmcp_auth {\n\t\tstorage_path\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "global extra value",
			caddyfile: "{\n\tmcp_auth {\n\t\tsigning_algorithm ES256 RS256\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "global bad signing_algorithm",
			caddyfile: "{\n\tmcp_auth {\n\t\tsigning_algorithm HS256\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{`signing_algorithm "HS256" is not one of`, "ES256"},
		},
		{
			name:      "global key_rotation too short",
			caddyfile: "{\n\tmcp_auth {\n\t\tkey_rotation 10m\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{`key_rotation "10m" must be at least 1h`},
		},
		{
			name:      "global key_rotation not a duration",
			caddyfile: "{\n\tmcp_auth {\n\t\tkey_rotation abc\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{`key_rotation "abc"`, "invalid duration"},
		},
		{
			name:      "global duplicate option",
			caddyfile: "{\n\tmcp_auth {\n\t\tstorage_path /a\n\t\tstorage_path /b\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"storage_path already specified"},
		},
		{
			name:      "enterprise_idp without issuer",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tenterprise_idp\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "enterprise_idp over http to a remote host",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tupstream users {\n\t\t}\n\t\tenterprise_idp http://acme.okta.com\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"enterprise_idp", "must use https"},
		},
		{
			name:      "enterprise_idp with a fragment",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tenterprise_idp https://acme.okta.com#x\n\t}\n}\n",
			line:      "Caddyfile:3",
			want:      []string{"must not have a query, fragment"},
		},
		{
			name:      "enterprise_idp jwks_uri over http to a remote host",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tenterprise_idp https://acme.okta.com {\n\t\t\tjwks_uri http://acme.okta.com/keys\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"jwks_uri", "must use https"},
		},
		{
			name:      "enterprise_idp jwks_uri twice",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tenterprise_idp https://acme.okta.com {\n\t\t\tjwks_uri https://a.example/k\n\t\t\tjwks_uri https://a.example/k2\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"jwks_uri already specified"},
		},
		{
			name:      "enterprise_idp clients without ids",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tenterprise_idp https://acme.okta.com {\n\t\t\tclients\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"wrong argument count"},
		},
		{
			name:      "enterprise_idp unknown option",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tenterprise_idp https://acme.okta.com {\n\t\t\taudience x\n\t\t}\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"unrecognized enterprise_idp option 'audience'"},
		},
		{
			name:      "enterprise_idp given twice for one issuer",
			caddyfile: "example.com {\n\tmcp_auth {\n\t\tenterprise_idp https://acme.okta.com\n\t\tenterprise_idp https://acme.okta.com\n\t}\n}\n",
			line:      "Caddyfile:4",
			want:      []string{"enterprise_idp https://acme.okta.com already specified"},
		},
		{
			name:      "global block given twice",
			caddyfile: "{\n\tmcp_auth {\n\t\tstorage_path /a\n\t}\n\tmcp_auth {\n\t\tkey_rotation 24h\n\t}\n}\n",
			line:      "Caddyfile:5",
			want:      []string{"mcp_auth global option specified more than once"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := adaptCaddyfile(t, tc.caddyfile)
			if err == nil {
				t.Fatalf("adapting:\n%s\nwant an error, got none:\n%s", tc.caddyfile, out)
			}
			msg := err.Error()
			// The first position mentioned must be the expected one (the
			// whole match, so Caddyfile:2 does not accept Caddyfile:20).
			switch m := adaptLineRE.FindString(msg); {
			case m == "":
				t.Errorf("error %q mentions no Caddyfile line", msg)
			case tc.line != "" && m != tc.line:
				t.Errorf("error %q points at %s, want %s", msg, m, tc.line)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

// readmeCaddyfile returns the first Caddyfile of README's section heading.
func readmeCaddyfile(t *testing.T, heading string) string {
	t.Helper()
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, _ := strings.Cut(string(readme), heading)
	_, block, found := strings.Cut(section, "```caddyfile\n")
	block, _, closed := strings.Cut(block, "```")
	if !found || !closed {
		t.Fatalf("README has no Caddyfile under %q", heading)
	}
	return block
}
