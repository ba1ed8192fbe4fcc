package authserver

import (
	"testing"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// Name rules match only the provider whose names they are, and GitHub
// logins only once pinned; every other rule matches what it names exactly.
func TestAllowListMatchesOnlyStableIdentity(t *testing.T) {
	rules := AllowList{
		Subjects:           []string{"github:583231", "users:alice"},
		Logins:             []string{"OctoCat"},
		PreferredUsernames: []string{"carol"},
		Emails:             []string{"bob@example.org"},
		EmailDomains:       []string{"example.com", "xn--bcher-kva.example"},
		HostedDomains:      []string{"corp.example"},
		Orgs:               []string{"Acme"},
	}
	for _, tc := range []struct {
		name string
		user state.User
		want bool
	}{
		{"subject", state.User{Subject: "github:583231"}, true},
		{"subject of another provider", state.User{Subject: "oidc:583231"}, false},
		{"subject in another case", state.User{Subject: "users:Alice"}, false},
		{"pinned login", state.User{Subject: "github:1", Username: "octocat", LoginPinned: true}, true},
		{"unpinned login", state.User{Subject: "github:2", Username: "octocat"}, false},
		{"login at another provider", state.User{Subject: "oidc:3", Username: "octocat", LoginPinned: true}, false},
		{"preferred_username", state.User{Subject: "oidc:4", Username: "carol"}, true},
		{"preferred_username in another case", state.User{Subject: "oidc:4", Username: "Carol"}, false},
		{"preferred_username as a GitHub login", state.User{Subject: "github:5", Username: "carol", LoginPinned: true}, false},
		{"preferred_username as a built-in user", state.User{Subject: "users:carol", Username: "carol"}, false},
		{"address", state.User{Subject: "oidc:6", Email: "BOB@example.org"}, true},
		{"domain", state.User{Subject: "oidc:7", Email: "x@Example.COM"}, true},
		{"IDN domain", state.User{Subject: "oidc:8", Email: "x@bücher.example"}, true},
		{"subdomain", state.User{Subject: "oidc:9", Email: "x@a.example.com"}, false},
		{"address list", state.User{Subject: "oidc:10", Email: "a@evil.test, b@example.com"}, false},
		{"display name", state.User{Subject: "oidc:11", Email: "B <b@example.com>"}, false},
		{"hosted domain", state.User{Subject: "google:12", HostedDomain: "corp.example"}, true},
		{"hosted domain's subdomain", state.User{Subject: "google:13", HostedDomain: "x.corp.example"}, false},
		{"org", state.User{Subject: "github:14", Orgs: []string{"other", "acme"}}, true},
		{"no match", state.User{Subject: "github:15", Username: "someone", Orgs: []string{"other"}}, false},
	} {
		if got := rules.Allows(&tc.user); got != tc.want {
			t.Errorf("%s: Allows(%+v) = %v, want %v", tc.name, tc.user, got, tc.want)
		}
	}
}
