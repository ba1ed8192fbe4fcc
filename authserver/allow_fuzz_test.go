package authserver

import (
	"strings"
	"testing"

	"golang.org/x/net/idna"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// FuzzEmailRule checks the email rules of an allow list against a simpler
// reading: an address a rule accepts is one bare address (one "@", none of
// the characters that make names, lists, comments or quoting), and its
// domain, read on its own, is exactly the rule's domain; an exact rule
// accepts only its own address.
func FuzzEmailRule(f *testing.F) {
	for _, seed := range [][2]string{
		{"*@example.com", "bob@example.com"},
		{"*@example.com", "a@evil.com, b@example.com"},
		{"*@example.com", "Bob <bob@example.com>"},
		{"*@example.com", "bob@evil.com (x@example.com)"},
		{"*@example.com", `"b@example.com"@evil.com`},
		{"*@example.com", "bob@EXAMPLE.com"},
		{"*@example.com", "bob@sub.example.com"},
		{"*@example.com", "bob@evilexample.com"},
		{"*@bücher.example", "bob@xn--bcher-kva.example"},
		{"*@xn--bcher-kva.example", "bob@BÜCHER.example"},
		{"bob@example.com", "Bob@Example.com"},
		{"bob@example.com", "bob@example.com."},
		{"*@example.com", "bob@[127.0.0.1]"},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, rule, email string) {
		var list AllowList
		ruleDomain, wildcard := strings.CutPrefix(rule, "*@")
		if wildcard {
			d, ok := CanonicalDomain(ruleDomain)
			if !ok {
				return
			}
			list.EmailDomains = []string{d}
		} else {
			e, _, ok := CanonicalEmail(rule)
			if !ok {
				return
			}
			list.Emails = []string{e}
			ruleDomain = rule[strings.LastIndexByte(rule, '@')+1:]
		}
		if !list.Allows(&state.User{Subject: "oidc:x", Email: email}) {
			return
		}
		if strings.Count(email, "@") != 1 || strings.ContainsAny(email, " \t\r\n,;:<>()[]\"\\") {
			t.Fatalf("rule %q accepted %q, which is not one bare address", rule, email)
		}
		local, domain, _ := strings.Cut(email, "@")
		if !sameDomain(domain, ruleDomain) {
			t.Fatalf("rule %q accepted %q, whose domain %q is not the rule's", rule, email, domain)
		}
		if !wildcard && !strings.EqualFold(local, rule[:strings.LastIndexByte(rule, '@')]) {
			t.Fatalf("rule %q accepted another address %q", rule, email)
		}
	})
}

// sameDomain compares two domain names in lowercase Punycode.
func sameDomain(a, b string) bool {
	a, errA := idna.ToASCII(strings.ToLower(a))
	b, errB := idna.ToASCII(strings.ToLower(b))
	return errA == nil && errB == nil && a != "" && a == b
}
