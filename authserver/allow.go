package authserver

import (
	"net/mail"
	"slices"
	"strings"

	"golang.org/x/net/idna"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
)

// AllowList decides which users may finish a login, and in a ScopeGrant
// who gets the scopes. A user matching any entry is allowed. Entries match
// only what stays with one person: stable ids, verified addresses,
// organizations, and names only where they cannot pass to someone else.
type AllowList struct {
	// Everyone lets in every user the upstream authenticates.
	Everyone bool
	// Subjects are users' stable ids as tokens carry them in sub:
	// github:583231, google:<sub>, oidc:<sub>, users:alice.
	Subjects []string
	// Logins are GitHub logins, compared case-insensitively. A renamed
	// login can be registered by someone else, so a login matches only the
	// account it is pinned to (see state.Users.PinLogin).
	Logins []string
	// PreferredUsernames are OIDC preferred_username values, compared
	// exactly: for providers whose users cannot choose or change them.
	PreferredUsernames []string
	// Emails are verified addresses in CanonicalEmail form.
	Emails []string
	// EmailDomains match every verified address whose domain is exactly
	// one of these (CanonicalDomain form); subdomains are not included.
	EmailDomains []string
	// HostedDomains are Google Workspace domains (the ID token's hd).
	HostedDomains []string
	// Orgs are GitHub organizations, compared case-insensitively.
	Orgs []string
	// Clients are configured machine clients by client_id. They are not
	// users: only these entries match them, and these match no user.
	Clients []string
}

// ScopeGrant grants scopes to the users an allow list matches.
type ScopeGrant struct {
	Scopes []string
	To     AllowList
}

// Allows reports whether the user may finish a login.
func (a *AllowList) Allows(u *state.User) bool {
	if a.Everyone || slices.Contains(a.Subjects, u.Subject) {
		return true
	}
	provider, _, _ := strings.Cut(u.Subject, ":")
	if u.Username != "" {
		if provider == "github" && u.LoginPinned && slices.ContainsFunc(a.Logins, func(l string) bool { return strings.EqualFold(l, u.Username) }) {
			return true
		}
		if provider == "oidc" && slices.Contains(a.PreferredUsernames, u.Username) {
			return true
		}
	}
	if email, domain, ok := CanonicalEmail(u.Email); ok && (slices.Contains(a.Emails, email) || slices.Contains(a.EmailDomains, domain)) {
		return true
	}
	if u.HostedDomain != "" && slices.Contains(a.HostedDomains, strings.ToLower(u.HostedDomain)) {
		return true
	}
	for _, org := range a.Orgs {
		if slices.ContainsFunc(u.Orgs, func(have string) bool { return strings.EqualFold(org, have) }) {
			return true
		}
	}
	return false
}

// CanonicalEmail parses an address that must be exactly one bare
// addr-spec, as net/mail reads it: no display name, group, comment, angle
// brackets, quoted local part or surrounding space, so that one string
// cannot name two addresses. It returns the address lowercased with its
// domain in IDNA ASCII form, and that domain.
func CanonicalEmail(s string) (email, domain string, ok bool) {
	if s == "" || len(s) > 254 {
		return "", "", false
	}
	addr, err := mail.ParseAddress(s)
	if err != nil || addr.Name != "" || addr.Address != s {
		return "", "", false
	}
	at := strings.LastIndexByte(s, '@')
	if at < 1 {
		return "", "", false
	}
	if domain, ok = CanonicalDomain(s[at+1:]); !ok {
		return "", "", false
	}
	return strings.ToLower(s[:at]) + "@" + domain, domain, true
}

// CanonicalDomain returns a DNS domain name in lowercase IDNA ASCII form,
// refusing anything that is not a plain host name with at least two labels
// (address literals, trailing dots, empty labels).
func CanonicalDomain(s string) (string, bool) {
	d, err := idna.Lookup.ToASCII(s)
	if err != nil || d == "" || !strings.Contains(d, ".") || strings.HasSuffix(d, ".") || strings.HasPrefix(d, ".") || strings.Contains(d, "..") {
		return "", false
	}
	return strings.ToLower(d), true
}

// policy is the allow and scope_grants rules of the server, applied to the
// identity a login recorded.
type policy struct {
	// upstream is Config.UpstreamIdentity.
	upstream string
	// enterprise are the identities of the enterprise identity providers
	// (EnterpriseIdP.Upstream), which vouch for users too.
	enterprise []string
	allow      AllowList
	grants     []ScopeGrant
}

// admit applies the current allow and grant_scope rules to a user, at
// login and again at every refresh: ok is false when the user may not use
// the server (any more), else scopes are those of requested the user may
// have. A user another upstream vouched for is refused: its ids mean
// nothing to the configured one, which this server trusts instead, or to
// the enterprise identity providers it trusts too.
func (a *policy) admit(u *state.User, requested []string) (scopes []string, ok bool) {
	if (u.Upstream != a.upstream && !slices.Contains(a.enterprise, u.Upstream)) || !a.allow.Allows(u) {
		return nil, false
	}
	return a.grantedScopes(requested, u), true
}

// grantedScopes narrows requested to what the user may have. OpenID
// Connect scopes are not governed by grants.
func (a *policy) grantedScopes(requested []string, u *state.User) []string {
	if len(a.grants) == 0 {
		return requested
	}
	var out []string
	for _, sc := range requested {
		if slices.Contains(oidcScopes, sc) {
			out = append(out, sc)
			continue
		}
		for _, g := range a.grants {
			if slices.Contains(g.Scopes, sc) && g.To.Allows(u) {
				out = append(out, sc)
				break
			}
		}
	}
	return out
}

// admitClient applies the allow and grant_scope rules to a configured
// machine client, at every token request: ok is false when allow rules
// name clients but not this one (without such rules, configuring a client
// admits it), else scopes are those of requested the client may have.
// When grant_scope rules exist, a client gets only scopes granted to it by
// name: rules about users, everyone included, never match a client.
func (a *policy) admitClient(clientID string, requested []string) (scopes []string, ok bool) {
	if len(a.allow.Clients) > 0 && !slices.Contains(a.allow.Clients, clientID) {
		return nil, false
	}
	if len(a.grants) == 0 {
		return requested, true
	}
	granted := func(sc string) bool {
		return slices.ContainsFunc(a.grants, func(g ScopeGrant) bool {
			return slices.Contains(g.Scopes, sc) && slices.Contains(g.To.Clients, clientID)
		})
	}
	return slices.DeleteFunc(slices.Clone(requested), func(sc string) bool { return !granted(sc) }), true
}

// namesLogin reports whether any rule names the GitHub login.
func (a *policy) namesLogin(login string) bool {
	named := func(l AllowList) bool {
		return slices.ContainsFunc(l.Logins, func(n string) bool { return strings.EqualFold(n, login) })
	}
	return named(a.allow) || slices.ContainsFunc(a.grants, func(g ScopeGrant) bool { return named(g.To) })
}
