package gate

import (
	"regexp"
	"strings"
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// bearerSyntax is RFC 6750 section 2.1's credentials, with RFC 9110's
// case-insensitive scheme and one or more spaces after it.
var bearerSyntax = regexp.MustCompile(`^(?i:bearer) +([A-Za-z0-9\-._~+/]+=*)$`)

// FuzzBearerToken checks the gate's reading of an Authorization header
// against the RFC 6750 grammar: it accepts exactly the values the grammar
// accepts (within the size bound) and extracts the same token.
func FuzzBearerToken(f *testing.F) {
	for _, seed := range []string{
		"Bearer abc.def-ghi_jkl~+/==", "bearer  x", "Basic YWxpY2U6c2VjcmV0", "Bearer ", "Bearer a b", "Bearer\tx",
		"Bearer a=b", "BEARER ===", "Bearerx y", " Bearer x", "Bearer x\x00",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, header string) {
		token, ok := BearerToken(header)
		accepted := ok && isToken68(token)
		m := bearerSyntax.FindStringSubmatch(header)
		want := m != nil && len(m[1]) <= tokens.MaxTokenLength
		if accepted != want {
			t.Fatalf("%q: accepted = %v, the grammar says %v", header, accepted, want)
		}
		if accepted && token != m[1] {
			t.Fatalf("%q: token %q, the grammar's %q", header, token, m[1])
		}
	})
}

func TestIsToken68(t *testing.T) {
	for s, want := range map[string]bool{
		"abc.DEF-_~+/": true, "abc==": true, "abc=d": false, "a b": false, "": false, "===": false,
		"a\"b": false, strings.Repeat("a", 9000): false,
	} {
		if got := isToken68(s); got != want {
			t.Errorf("isToken68(%.20q) = %v, want %v", s, got, want)
		}
	}
}
