// Package mcpauth is a Caddy module that makes a site an OAuth 2.1
// authorization server for MCP clients and a bearer-token gate in front of
// the MCP servers it proxies to.
package mcpauth

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/authserver"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/dpop"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/state"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler serves the discovery and authorization-server endpoints of a site
// and lets every other request through only with a valid access token
// issued for the protected resource it addresses.
//
// On success it removes the client's Authorization header (tokens are never
// passed through to the backend), removes inbound headers that mimic
// identity headers, and sets these placeholders for `header_up`:
//
//	{http.auth.user.id}     the token's subject (a machine client's own id)
//	{http.auth.user.email}  the user's email, when known
//	{http.auth.client_id}   the OAuth client the token was issued to
//	{http.auth.scopes}      the granted scopes, space-separated
//	{http.auth.upstream.access_token}  the user's token at the identity
//	                        provider, with upstream_tokens only
type Handler struct {
	// Issuer is the authorization server's issuer identifier: an https URL
	// (http only for loopback hosts), normally the site's origin. Every
	// published URL is built from it; it is never taken from request
	// headers. The Caddyfile sets it from the site address.
	Issuer string `json:"issuer"`

	// Resources are the protected resources on this site. Without any, the
	// site's origin is the one protected resource.
	Resources []Resource `json:"resources,omitempty"`

	// Scopes are advertised for the site's origin when it is the protected
	// resource, and asked for in its challenges.
	Scopes []string `json:"scopes,omitempty"`

	// RequireDPoP makes the site's origin, when it is the protected
	// resource, accept only DPoP-bound tokens (RFC 9449): bearer tokens
	// are refused. With resources declared, set it per resource.
	RequireDPoP bool `json:"require_dpop,omitempty"`

	// DPoP configures sender-constrained tokens. Clients that send DPoP
	// proofs get DPoP-bound tokens without it.
	DPoP *DPoP `json:"dpop,omitempty"`

	// RequireScopes lists scopes that requests to matching paths need;
	// a token without them gets 403 insufficient_scope.
	RequireScopes []ScopeRequirement `json:"require_scopes,omitempty"`

	// ToolScopes maps MCP tool names to the scopes a `tools/call` of the
	// tool needs. The gate reads the JSON-RPC body of POST requests (up to
	// 4 MiB, batches included) to find the calls; a token without the
	// scopes gets 403 insufficient_scope naming them, so the client can ask
	// for more. Other requests and all responses pass untouched.
	ToolScopes map[string][]string `json:"tool_scopes,omitempty"`

	// GrantAllScopes makes every resource that does not decide otherwise
	// grant up front, at each authorization, every scope the user may
	// have for it (its scopes and those of require_scopes and
	// tool_scopes, within ScopeGrants), whatever the client asks for. For
	// clients that cannot step up after a 403 insufficient_scope; the
	// price is that every token carries all the user's permissions.
	GrantAllScopes bool `json:"grant_all_scopes,omitempty"`

	// ScopeDescriptions say on the consent page what scopes allow, by
	// scope: {"mcp:tools": "Use the tools"}. The scope's name is shown
	// alongside. Every key must be a scope the site uses.
	ScopeDescriptions map[string]string `json:"scope_descriptions,omitempty"`

	// ScopeIncludes declares scope hierarchies: a token with a key scope
	// also meets requirements for the scopes it lists, for example
	// {"admin": ["mcp:write", "mcp:read"]}. It applies transitively.
	ScopeIncludes map[string][]string `json:"scope_includes,omitempty"`

	// Realm is the realm of bearer challenges. Default: mcp.
	Realm string `json:"realm,omitempty"`

	// AllowedOrigins restricts the browser origins (the Origin request
	// header) allowed to call the site; requests from others get 403.
	// Requests without an Origin header, from non-browser clients, are
	// not affected. Default: any origin.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`

	// StripHeaders are request headers removed from every request that
	// passes the gate, in addition to the defaults (X-MCP-User,
	// X-MCP-Email, X-MCP-Client, X-MCP-Scopes, X-MCP-Identity,
	// X-Forwarded-User, X-Forwarded-Email, X-Auth-Request-User,
	// X-Auth-Request-Email, X-Remote-User, Remote-User), so a client cannot
	// pass off identity headers of its own. Name here any header your
	// `header_up` sets from the identity placeholders.
	StripHeaders []string `json:"strip_headers,omitempty"`

	// Upstream is the identity provider users log in with.
	Upstream *Upstream `json:"upstream,omitempty"`

	// EnterpriseIdPs are enterprise identity providers whose identity
	// assertion grants (ID-JAG) clients may exchange for access tokens.
	EnterpriseIdPs []EnterpriseIdP `json:"enterprise_idps,omitempty"`

	// UpstreamTokens keeps users' tokens at the identity provider for the
	// backend. Off unless set.
	UpstreamTokens *UpstreamTokens `json:"upstream_tokens,omitempty"`

	// AuthorizationServer switches the site to external mode: instead of
	// being an authorization server itself, it accepts the access tokens of
	// this external one (its issuer URL), found through RFC 8414 or OpenID
	// Connect discovery. JWTs are checked against its published keys, with
	// exact issuer and audience (the resource's canonical URL). No
	// authorization endpoints are served.
	AuthorizationServer string `json:"authorization_server,omitempty"`

	// Introspection lets external mode accept opaque tokens by asking the
	// external server's introspection endpoint (RFC 7662) with these
	// client credentials.
	Introspection *IntrospectionCredentials `json:"introspection,omitempty"`

	// AcceptJWTTypes are JOSE "typ" header values accepted on the external
	// server's JWT access tokens besides at+jwt, the type RFC 9068 gives
	// them. Keycloak, Auth0 and Entra type their access tokens "JWT", as
	// they do their ID tokens: name "JWT" here for such a server (the
	// token's audience must still be the resource). The empty string
	// accepts tokens without typ, as Okta issues them. Default: at+jwt
	// only.
	AcceptJWTTypes []string `json:"accept_jwt_types,omitempty"`

	// Allow decides who may finish a login. Required for github and
	// google, which anyone can have an account at.
	Allow *Allow `json:"allow,omitempty"`

	// ScopeGrants decide which of the resources' scopes each user may be
	// granted, for role-based access: for example everyone gets
	// todos:read, the admins org also todos:delete. Without any, every
	// user may be granted every scope. A scope no grant names is granted
	// to nobody. Tokens carry the requested scopes the user may have.
	ScopeGrants []ScopeGrant `json:"scope_grants,omitempty"`

	// Clients are machine clients: programs that get tokens for themselves,
	// without a user, by the client credentials grant.
	Clients []MachineClient `json:"clients,omitempty"`

	// AccessTokenLifetime is how long access tokens are valid. It must be
	// shorter than the key rotation period. Default: 1h.
	AccessTokenLifetime caddy.Duration `json:"access_token_lifetime,omitempty"`

	// RefreshTokenLifetime is the absolute lifetime of a grant: refresh
	// tokens rotate on every use but stop working this long after the
	// login. Default: 30 days.
	RefreshTokenLifetime caddy.Duration `json:"refresh_token_lifetime,omitempty"`

	// RefreshTokenIdle is how long a refresh token stays valid unused;
	// each refresh starts it anew. Default: 7 days (never more than
	// RefreshTokenLifetime).
	RefreshTokenIdle caddy.Duration `json:"refresh_token_idle,omitempty"`

	// Registration configures dynamic client registration.
	Registration *Registration `json:"registration,omitempty"`

	// SourceIPv4Prefix is how many leading bits of a client's IPv4
	// address name one source for the limits on unauthenticated work
	// (registrations, authorization requests, failed logins), like the /64
	// an IPv6 source is. Lower it (24, say) when attackers can use many
	// addresses of one network. Default: 32, each address alone.
	SourceIPv4Prefix int `json:"source_ipv4_prefix,omitempty"`

	// DisableClientMetadataDocuments refuses client_ids that are URLs of
	// Client ID Metadata Documents, leaving dynamic registration.
	DisableClientMetadataDocuments bool `json:"disable_client_metadata_documents,omitempty"`

	// AssertionOptional lists Client ID Metadata Document clients that
	// declare private_key_jwt but may leave out their client assertion at
	// /token and /revoke: each entry is a client_id URL (compared exactly)
	// or the host of client_ids (with its port, if the URLs have one, for
	// example "chatgpt.com"). Such a request is accepted as from a public
	// client protected by PKCE alone, and its grant records that the client
	// did not authenticate: it never lets such a client introspect, nor
	// refresh a grant that was made with an assertion. Default: none, every
	// private_key_jwt client must send a verified assertion.
	AssertionOptional []string `json:"assertion_optional,omitempty"`

	// IntrospectionClients are resource servers allowed to introspect any
	// token at /introspect with HTTP Basic: client id → secret.
	// Placeholders are expanded when the config loads.
	IntrospectionClients map[string]string `json:"introspection_clients,omitempty"`

	// RememberConsent is how long a browser's approval of a client, for
	// one redirect URI, resource and set of scopes, is remembered. Default:
	// 0, ask every time.
	RememberConsent caddy.Duration `json:"remember_consent,omitempty"`

	// IdentityAudience, when set, makes the gate add an X-MCP-Identity
	// header to requests it lets through: a JWT signed with the server's
	// keys (verify it with /jwks), typ identity+jwt, whose aud is this value
	// (your backend), with sub, email, preferred_username, client_id and
	// scope, valid for at most 5 minutes. Backends can trust it without
	// seeing the client's access token.
	IdentityAudience string `json:"identity_audience,omitempty"`

	// PassAuthorization forwards the client's Authorization header to the
	// backend. The MCP specification forbids token passthrough; enable this
	// only for a backend that verifies the token itself and never forwards it.
	PassAuthorization bool `json:"pass_authorization,omitempty"`

	// as is the site's authorization server; nil in external mode.
	as *authserver.Server
	// upstreamTokens finds users' tokens at the identity provider; nil
	// unless UpstreamTokens is set.
	upstreamTokens *gate.UpstreamTokens
	gate           *gate.Gate
	cors           gate.CORS
	logger         *zap.Logger
}

// Resource declares a protected resource: an MCP endpoint path on the site.
type Resource struct {
	// Path is the URL path of the MCP endpoint, such as /mcp. Its canonical
	// resource URL is the issuer's origin followed by the path. Requests
	// are matched to it as Caddy's path matcher matches `/mcp*`: by prefix,
	// ignoring case.
	Path string `json:"path"`
	// Scopes are advertised in the resource's metadata and asked for in its
	// challenges.
	Scopes []string `json:"scopes,omitempty"`
	// GrantAllScopes overrides the site's GrantAllScopes for this resource.
	GrantAllScopes *bool `json:"grant_all_scopes,omitempty"`
	// RequireDPoP refuses bearer tokens at this resource: only DPoP-bound
	// tokens, each request with a proof, are accepted.
	RequireDPoP bool `json:"require_dpop,omitempty"`
}

// DPoP configures DPoP (RFC 9449) for the site.
type DPoP struct {
	// Nonce requires server nonces in proofs (RFC 9449 section 8), at the
	// token endpoint and the protected resources: a proof must carry a
	// nonce the server gave out within the last 5 minutes, which bounds
	// how long a proof made in advance is good for, whatever the client's
	// clock. It costs clients a round trip for their first request and
	// whenever their nonce gets old.
	Nonce bool `json:"nonce,omitempty"`
}

// Allow lists who may finish a login; a user matching any entry may. Rules
// name what stays with one person: stable ids, verified addresses,
// organizations, and names only where they cannot pass to someone else.
type Allow struct {
	// Everyone lets in every user the upstream authenticates.
	Everyone bool `json:"everyone,omitempty"`
	// Users are users' stable ids as `<provider>:<id>`, the sub of their
	// tokens: `github:583231` (the numeric id), `google:<sub>`,
	// `oidc:<sub>`, `users:alice`, or `<issuer>#<sub>` for a user of an
	// enterprise identity provider. A bare name is a built-in user
	// (users); a GitHub login (github), pinned to the account that first
	// logs in with it and refused for any other, since renamed logins can
	// be registered again by anyone; or an OIDC preferred_username (oidc,
	// only with the upstream's trust_preferred_username).
	Users []string `json:"users,omitempty"`
	// Emails are verified email addresses, or `*@example.com` for every
	// address in exactly that domain (not its subdomains). An entry must
	// be one bare address. With google, only addresses Google is
	// authoritative for count: Gmail addresses and those in the account's
	// own Workspace domain. With github, domains are refused: GitHub
	// accounts keep addresses their owners verified long ago.
	Emails []string `json:"emails,omitempty"`
	// HostedDomains are Google Workspace domains: the accounts Google
	// reports (in the ID token's hd claim) as managed by that Workspace.
	// google only.
	HostedDomains []string `json:"hosted_domains,omitempty"`
	// Orgs are GitHub organizations. github only.
	Orgs []string `json:"orgs,omitempty"`
	// Clients are configured machine clients by id. Rules about users
	// (everyone included) never match a machine client, nor these a user.
	// Without any, every configured client is allowed.
	Clients []string `json:"clients,omitempty"`
}

// ScopeGrant grants scopes to the users it matches.
type ScopeGrant struct {
	Scopes []string `json:"scopes"`
	// To says who gets the scopes, like an allow list.
	To Allow `json:"to"`
}

// allowList checks the config form of an allow list against the provider
// users log in with and the issuers of the enterprise identity providers,
// and converts it.
func (a *Allow) allowList(u *Upstream, enterprise []string) (authserver.AllowList, error) {
	if a == nil {
		return authserver.AllowList{}, nil
	}
	provider := u.Provider
	l := authserver.AllowList{Everyone: a.Everyone, Orgs: a.Orgs, Clients: a.Clients}
	for _, user := range a.Users {
		if slices.ContainsFunc(enterprise, func(iss string) bool { return len(user) > len(iss)+1 && strings.HasPrefix(user, iss+"#") }) {
			l.Subjects = append(l.Subjects, user) // an enterprise user, <issuer>#<sub>
			continue
		}
		prefix, id, qualified := strings.Cut(user, ":")
		if qualified && slices.Contains(providers, prefix) {
			switch {
			case prefix != provider:
				return l, fmt.Errorf("users: %q names a %s account, but users log in with %s", user, prefix, provider)
			case id == "":
				return l, fmt.Errorf("users: %q has no id", user)
			case prefix == "github" && strings.Trim(id, "0123456789") != "":
				return l, fmt.Errorf("users: %q: GitHub ids are numbers (https://api.github.com/users/<login> shows a login's id)", user)
			}
			l.Subjects = append(l.Subjects, user)
			continue
		}
		switch {
		case provider == "users":
			l.Subjects = append(l.Subjects, "users:"+user)
		case provider == "github":
			l.Logins = append(l.Logins, user)
		case provider == "oidc" && u.TrustPreferredUsername:
			l.PreferredUsernames = append(l.PreferredUsernames, user)
		case provider == "oidc":
			return l, fmt.Errorf("users: %q would match the preferred_username, which users of most OIDC providers can choose or change; name the user by subject (oidc:<sub>), or set trust_preferred_username in the upstream if your provider guarantees it", user)
		default:
			return l, fmt.Errorf("users: %q: Google accounts have no usernames; name the user by subject (google:<sub>), or use emails or hosted_domains", user)
		}
	}
	for _, e := range a.Emails {
		if domain, ok := strings.CutPrefix(e, "*@"); ok {
			canonical, ok := authserver.CanonicalDomain(domain)
			if !ok {
				return l, fmt.Errorf("emails: %q is not *@ followed by a domain name", e)
			}
			l.EmailDomains = append(l.EmailDomains, canonical)
			continue
		}
		canonical, _, ok := authserver.CanonicalEmail(e)
		if !ok {
			return l, fmt.Errorf("emails: %q is not one bare email address (no name, brackets, comments or lists) or *@domain", e)
		}
		l.Emails = append(l.Emails, canonical)
	}
	for _, d := range a.HostedDomains {
		canonical, ok := authserver.CanonicalDomain(d)
		if !ok {
			return l, fmt.Errorf("hosted_domains: %q is not a domain name", d)
		}
		l.HostedDomains = append(l.HostedDomains, canonical)
	}
	switch {
	case len(a.Emails) > 0 && provider == "users" && len(enterprise) == 0:
		return l, fmt.Errorf("emails: built-in users have no email addresses; name them in users")
	case len(l.EmailDomains) > 0 && provider == "github":
		// GitHub verified the address once; it does not know whether its
		// owner still belongs to the organization behind the domain.
		return l, fmt.Errorf("emails: %q: GitHub accounts keep addresses of organizations their owners have left; use orgs for membership", "*@"+l.EmailDomains[0])
	case len(a.HostedDomains) > 0 && provider != "google":
		return l, fmt.Errorf("hosted_domains: Google Workspace domains apply to upstream google only")
	case len(a.Orgs) > 0 && provider != "github":
		return l, fmt.Errorf("orgs: organizations apply to upstream github only")
	}
	return l, nil
}

// providers are the upstream providers, also the prefixes of subjects.
var providers = []string{"oidc", "google", "github", "users"}

// IntrospectionCredentials authenticate at an external introspection endpoint.
type IntrospectionCredentials struct {
	ClientID string `json:"client_id"`
	// ClientSecret; placeholders are expanded when the config loads.
	ClientSecret string `json:"client_secret"`
}

// Registration configures dynamic client registration (RFC 7591).
type Registration struct {
	// InitialAccessToken, when set, must be presented as a bearer token to
	// register, closing registration to the public. Placeholders are
	// expanded when the config loads.
	InitialAccessToken string `json:"initial_access_token,omitempty"`
	// UnusedClientLifetime is how long a registered client that never
	// obtained a token is kept. Default: 24h.
	UnusedClientLifetime caddy.Duration `json:"unused_client_lifetime,omitempty"`
	// RateLimit is how many registrations one source may make per hour:
	// one IPv4 address (see SourceIPv4Prefix) or one IPv6 /64. Default: 20.
	RateLimit int `json:"rate_limit,omitempty"`
	// GlobalRateLimit is how many registrations all sources together may
	// make per hour, counted in the shared store, so that many addresses
	// cannot fill it with clients. Clients with a metadata document do not
	// register and are not limited. Default: 500.
	GlobalRateLimit int `json:"global_rate_limit,omitempty"`
}

// ScopeRequirement requires scopes for the request paths it matches.
type ScopeRequirement struct {
	// Path is a request path, or a prefix followed by `*`, matched as
	// Caddy's path matcher does, ignoring case; an exact path also
	// matches with a trailing slash.
	Path string `json:"path"`
	// Scopes are all needed.
	Scopes []string `json:"scopes"`
}

// defaultStripHeaders are identity headers commonly trusted by backends.
var defaultStripHeaders = []string{
	"X-MCP-User", "X-MCP-Email", "X-MCP-Client", "X-MCP-Scopes", "X-MCP-Identity",
	"X-Forwarded-User", "X-Forwarded-Email", "X-Auth-Request-User", "X-Auth-Request-Email",
	"X-Remote-User", "Remote-User",
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_auth",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision checks the configuration and joins the shared store and keys.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if h.Issuer == "" {
		return fmt.Errorf("issuer is required")
	}
	if len(h.Resources) > 0 && len(h.Scopes) > 0 {
		return fmt.Errorf("scopes: set them per resource when resources are declared")
	}
	if len(h.Resources) > 0 && h.RequireDPoP {
		return fmt.Errorf("require_dpop: set it per resource when resources are declared")
	}
	declared := h.declaredResources()
	if err := h.checkScopes(declared); err != nil {
		return err
	}
	gc := gate.Config{
		Realm:             h.Realm,
		ToolScopes:        h.ToolScopes,
		ScopeIncludes:     h.ScopeIncludes,
		PassAuthorization: h.PassAuthorization,
		StripHeaders:      append(slices.Clone(defaultStripHeaders), h.StripHeaders...),
		ForeignSession:    func() { metrics.gateRefused["foreign_session"].Inc() },
		RequestScheme:     requestScheme,
		Logger:            h.logger,
	}
	for _, rs := range h.RequireScopes {
		if !strings.HasPrefix(rs.Path, "/") || len(rs.Scopes) == 0 {
			return fmt.Errorf("require_scopes: path %q must start with / and name at least one scope", rs.Path)
		}
		gc.ScopeRules = append(gc.ScopeRules, gate.ScopeRule{Pattern: rs.Path, Scopes: rs.Scopes})
	}
	for tool, scopes := range h.ToolScopes {
		if tool == "" || len(scopes) == 0 {
			return fmt.Errorf("tool_scopes: tool %q must name at least one scope", tool)
		}
	}
	for broad, narrow := range h.ScopeIncludes {
		if broad == "" || len(narrow) == 0 {
			return fmt.Errorf("scope_includes: scope %q must include at least one other scope", broad)
		}
	}
	for _, o := range h.AllowedOrigins {
		if o != strings.TrimRight(o, "/") || !strings.Contains(o, "://") {
			return fmt.Errorf("allowed_origins: %q is not an origin such as https://app.example.com", o)
		}
	}
	initMetrics()
	if reg := ctx.GetMetricsRegistry(); reg != nil {
		if err := registerMetrics(reg); err != nil {
			return fmt.Errorf("registering metrics: %v", err)
		}
	}

	// Every site binds MCP sessions to their users in the shared store,
	// also in external mode.
	app, err := appFrom(ctx)
	if err != nil {
		return err
	}
	var as *authserver.Config
	if h.AuthorizationServer != "" {
		if gc.Verifier, err = h.provisionExternal(); err != nil {
			return err
		}
		gc.AuthorizationServer = h.AuthorizationServer
	} else {
		if len(h.AcceptJWTTypes) > 0 {
			return fmt.Errorf("accept_jwt_types: applies to the tokens of an external authorization_server only")
		}
		if as, err = h.provisionAuthServer(ctx, app); err != nil {
			return err
		}
	}
	issuer, err := authserver.CanonicalIssuer(h.Issuer)
	if err != nil {
		return err
	}
	if gc.Realm == "" {
		gc.Realm = "mcp"
	}
	u, _ := url.Parse(issuer)
	if gc.Resources, err = gate.NewResources(u.Scheme+"://"+u.Host, declared); err != nil {
		return err
	}
	gc.Sessions = state.NewSessions(app.store, issuer)
	if gc.DPoP, err = h.provisionDPoP(ctx, app, issuer); err != nil {
		return err
	}
	h.cors = gate.CORS{AllowedOrigins: h.AllowedOrigins}
	if as != nil {
		// The authorization server and the gate check its tokens with one
		// verifier, and so one cache.
		gc.AuthorizationServer = issuer
		gc.Verifier = tokens.NewVerifier(app.ring, issuer)
		gc.Revocations = as.State.Revocations
		gc.UpstreamTokens = h.upstreamTokens
		as.Issuer, as.Realm, as.Resources, as.Ring, as.Verifier = issuer, gc.Realm, gc.Resources, app.ring, gc.Verifier
		as.DPoPNonces = gc.DPoP.Nonces
		if h.as, err = authserver.New(*as); err != nil {
			return err
		}
		h.cors.Navigated = h.as.IsPage
	}
	if h.IdentityAudience != "" {
		if as == nil {
			return fmt.Errorf("identity_audience: identity tokens are signed with this server's keys, which external mode does not have")
		}
		if gc.Identity, err = gate.NewIdentityTokens(app.ring, issuer, gc.Resources, h.IdentityAudience); err != nil {
			return fmt.Errorf("identity_audience: %v", err)
		}
	}
	h.gate, err = gate.New(gc)
	return err
}

// gateProofsPerSpan bounds the DPoP proofs a gate remembers: this many
// per span of a proof's acceptance (2 minutes), some 4,000 proofs a
// second, in some 16 MB at most. More are refused with a 503 until the span
// turns over, rather than let a replay through.
const gateProofsPerSpan = 1 << 19

// provisionDPoP returns the verifier of the proofs sent with DPoP-bound
// tokens, with the site's nonces if they are on.
func (h *Handler) provisionDPoP(ctx caddy.Context, app *App, issuer string) (*dpop.Verifier, error) {
	v := &dpop.Verifier{}
	// In memory: a round trip to the store per request would cost more
	// than the signature check. A proof replayed to another instance
	// within its iat window passes there once; see docs/security.md.
	v.Replay = dpop.NewMemoryReplay(v.Span(), gateProofsPerSpan)
	if h.DPoP != nil && h.DPoP.Nonce {
		key, err := state.DPoPNonceKey(ctx, app.store)
		if err != nil {
			return nil, fmt.Errorf("dpop: loading the nonce key: %v", err)
		}
		v.Nonces = dpop.NewNonces(key, issuer)
	}
	return v, nil
}

// requestScheme is the scheme the client used: https over TLS, else what
// a trusted proxy says in X-Forwarded-Proto (Caddy's trusted_proxies).
func requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	if trusted, _ := caddyhttp.GetVar(r.Context(), caddyhttp.TrustedProxyVarKey).(bool); trusted {
		if proto := r.Header.Values("X-Forwarded-Proto"); len(proto) == 1 && (proto[0] == "https" || proto[0] == "http") {
			return proto[0]
		}
	}
	return "http"
}

// provisionExternal sets up external mode: the gate checks the tokens of
// the external authorization server, and the site has none of its own.
func (h *Handler) provisionExternal() (*tokens.RemoteVerifier, error) {
	if h.Upstream != nil || h.Allow != nil || h.Registration != nil || len(h.Clients) > 0 || len(h.EnterpriseIdPs) > 0 || h.UpstreamTokens != nil {
		return nil, fmt.Errorf("authorization_server: with an external authorization server, upstream, upstream_tokens, allow, registration, client and enterprise_idp do not apply")
	}
	if len(h.AssertionOptional) > 0 {
		return nil, fmt.Errorf("authorization_server: with an external authorization server, assertion_optional does not apply")
	}
	if h.grantsAllScopes() || len(h.ScopeDescriptions) > 0 {
		return nil, fmt.Errorf("authorization_server: with an external authorization server, which issues the tokens and asks the consent, grant_all_scopes and scope descriptions do not apply")
	}
	// Issuers compare as exact strings (RFC 8414 section 3.3): the
	// operator's spelling is used as is, once checked.
	issuer := h.AuthorizationServer
	if _, err := authserver.CanonicalIssuer(issuer); err != nil {
		return nil, fmt.Errorf("authorization_server: %v", err)
	}
	rc := tokens.RemoteConfig{Issuer: issuer, AcceptedTypes: h.AcceptJWTTypes, HTTPClient: externalHTTPClient}
	if in := h.Introspection; in != nil {
		rc.IntrospectionClientID = in.ClientID
		rc.IntrospectionSecret = caddy.NewReplacer().ReplaceAll(in.ClientSecret, "")
		if rc.IntrospectionClientID == "" || rc.IntrospectionSecret == "" {
			return nil, fmt.Errorf("introspection: client_id and client_secret are required")
		}
	}
	return tokens.NewRemoteVerifier(rc), nil
}

// externalHTTPClient talks to external authorization servers.
var externalHTTPClient = &http.Client{Timeout: 10 * time.Second}

// provisionAuthServer checks the authorization server's options and
// returns its configuration, less what it shares with the gate.
func (h *Handler) provisionAuthServer(ctx caddy.Context, app *App) (*authserver.Config, error) {
	if h.Upstream == nil {
		return nil, fmt.Errorf("upstream is required: the identity provider users log in with (oidc, google, github or users)")
	}
	if h.AccessTokenLifetime == 0 {
		h.AccessTokenLifetime = caddy.Duration(time.Hour)
	}
	if h.RefreshTokenLifetime == 0 {
		h.RefreshTokenLifetime = caddy.Duration(30 * 24 * time.Hour)
	}
	if h.AccessTokenLifetime < caddy.Duration(time.Minute) || h.AccessTokenLifetime >= app.KeyRotation {
		return nil, fmt.Errorf("access_token_lifetime (%s) must be at least 1m and shorter than key_rotation (%s)",
			time.Duration(h.AccessTokenLifetime), time.Duration(app.KeyRotation))
	}
	if h.RefreshTokenIdle == 0 {
		h.RefreshTokenIdle = min(caddy.Duration(7*24*time.Hour), h.RefreshTokenLifetime)
	}
	if h.RefreshTokenLifetime < h.AccessTokenLifetime {
		return nil, fmt.Errorf("refresh_token_lifetime (%s) must not be shorter than access_token_lifetime (%s)",
			time.Duration(h.RefreshTokenLifetime), time.Duration(h.AccessTokenLifetime))
	}
	enterprise := h.enterpriseIssuers()
	allow, err := h.Allow.allowList(h.Upstream, enterprise)
	if err != nil {
		return nil, fmt.Errorf("allow %v", err)
	}
	var grants []authserver.ScopeGrant
	wantOrgs := len(allow.Orgs) > 0
	for _, g := range h.ScopeGrants {
		if len(g.Scopes) == 0 {
			return nil, fmt.Errorf("scope_grants: each grant names at least one scope")
		}
		to, err := g.To.allowList(h.Upstream, enterprise)
		if err != nil {
			return nil, fmt.Errorf("scope_grants %v: %v", g.Scopes, err)
		}
		grants = append(grants, authserver.ScopeGrant{Scopes: g.Scopes, To: to})
		wantOrgs = wantOrgs || len(to.Orgs) > 0
	}
	redirector, passwords, err := h.Upstream.build(wantOrgs, h.UpstreamTokens != nil)
	if err != nil {
		return nil, err
	}
	restricted := allow.Everyone || len(allow.Subjects)+len(allow.Logins)+len(allow.PreferredUsernames)+
		len(allow.Emails)+len(allow.EmailDomains)+len(allow.HostedDomains)+len(allow.Orgs) > 0
	if passwords == nil && !restricted && h.Upstream.Provider != "oidc" {
		return nil, fmt.Errorf("upstream %s lets anyone with an account log in: add allow rules (users, emails, orgs), or `allow everyone`", h.Upstream.Provider)
	}
	if !restricted {
		allow.Everyone = true // the oidc provider or the user list decides who can log in
	}
	issuer, err := authserver.CanonicalIssuer(h.Issuer)
	if err != nil {
		return nil, err
	}
	site, err := app.siteStore(ctx, issuer, time.Duration(h.AccessTokenLifetime))
	if err != nil {
		return nil, err
	}
	if h.UpstreamTokens != nil {
		if h.upstreamTokens, err = h.UpstreamTokens.provision(site.State, redirector, h.logger); err != nil {
			return nil, err
		}
	}
	reg := h.Registration
	if reg == nil {
		reg = new(Registration)
	}
	if reg.UnusedClientLifetime == 0 {
		reg.UnusedClientLifetime = caddy.Duration(24 * time.Hour)
	}
	if reg.RateLimit == 0 {
		reg.RateLimit = 20
	}
	if reg.GlobalRateLimit == 0 {
		reg.GlobalRateLimit = 500
	}
	if reg.RateLimit < 0 || reg.GlobalRateLimit < 0 {
		return nil, fmt.Errorf("registration: rate_limit and global_rate_limit must be positive")
	}
	if h.SourceIPv4Prefix == 0 {
		h.SourceIPv4Prefix = 32
	}
	if h.SourceIPv4Prefix < 8 || h.SourceIPv4Prefix > 32 {
		return nil, fmt.Errorf("source_ipv4_prefix %d must be between 8 and 32", h.SourceIPv4Prefix)
	}
	as := &authserver.Config{
		State:                site.State,
		Upstream:             redirector,
		Passwords:            passwords,
		UpstreamIdentity:     h.Upstream.identity(),
		Allow:                allow,
		ScopeGrants:          grants,
		StepUpScopes:         h.stepUpScopes(),
		ScopeDescriptions:    h.ScopeDescriptions,
		AccessTokenLifetime:  time.Duration(h.AccessTokenLifetime),
		RefreshTokenLifetime: time.Duration(h.RefreshTokenLifetime),
		RefreshTokenIdle:     time.Duration(h.RefreshTokenIdle),
		UnusedClientLifetime: time.Duration(reg.UnusedClientLifetime),
		RegistrationToken:    caddy.NewReplacer().ReplaceAll(reg.InitialAccessToken, ""),
		RegistrationLimit:    authserver.NewRateLimiter(reg.RateLimit, time.Hour, reg.RateLimit),
		RegistrationsPerHour: reg.GlobalRateLimit,
		SourceIPv4Prefix:     h.SourceIPv4Prefix,
		SecretFailureLimit:   authserver.NewRateLimiter(10, time.Minute, 10),
		// A browser needs one authorization request per login; a whole
		// office behind one address rarely needs more than this.
		AuthorizeLimit:  authserver.NewRateLimiter(authorizeRequestsPerHour, time.Hour, authorizeRequestsBurst),
		RememberConsent: time.Duration(h.RememberConsent),
		ClientIP:        clientIP,
		Logger:          h.logger,
		Audit:           h.logger.Named("audit"),
		Observer:        observer{},
	}
	if as.MachineClients, err = h.machineClients(app.KeyRotation, allow, grants); err != nil {
		return nil, err
	}
	site.MachineClients = as.MachineClients
	if !h.DisableClientMetadataDocuments || h.needsKeys() {
		opts := clientMetadataOptions
		opts.Logger = h.logger.Named("client_metadata")
		if len(h.EnterpriseIdPs) > 0 {
			opts.OfferedGrants = []string{authserver.GrantJWTBearer}
		}
		as.Keys = clients.NewFetcher(opts)
	}
	if !h.DisableClientMetadataDocuments {
		as.Metadata = as.Keys
	}
	if as.EnterpriseIdPs, err = h.enterpriseIdPs(); err != nil {
		return nil, err
	}
	if h.UpstreamTokens != nil {
		as.UpstreamAccess = h.Upstream.access(wantOrgs)
	}
	if as.AssertionOptional, err = h.assertionOptional(); err != nil {
		return nil, err
	}
	if len(h.IntrospectionClients) > 0 {
		as.IntrospectionCredentials = make(map[string]string, len(h.IntrospectionClients))
		repl := caddy.NewReplacer()
		for id, secret := range h.IntrospectionClients {
			secret = repl.ReplaceAll(secret, "")
			if id == "" || len(secret) < 16 {
				return nil, fmt.Errorf("introspection client %q: the secret must have at least 16 characters", id)
			}
			as.IntrospectionCredentials[id] = clients.HashSecret(secret)
		}
	}
	return as, nil
}

// assertionOptional validates AssertionOptional.
func (h *Handler) assertionOptional() ([]string, error) {
	if len(h.AssertionOptional) > 0 && h.DisableClientMetadataDocuments {
		return nil, fmt.Errorf("assertion_optional applies to Client ID Metadata Documents, which are off")
	}
	out := make([]string, 0, len(h.AssertionOptional))
	for _, entry := range h.AssertionOptional {
		normal, err := assertionOptionalEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("assertion_optional: %v", err)
		}
		out = append(out, normal)
	}
	return out, nil
}

// assertionOptionalEntry checks one assertion_optional entry, a client_id
// URL or a host, and returns it as it is compared (hosts in lower case).
// Wildcards are refused: the exception must stay as narrow as written.
func assertionOptionalEntry(entry string) (string, error) {
	if strings.Contains(entry, "://") {
		if !clients.IsMetadataURL(entry) {
			return "", fmt.Errorf("%q is not a client metadata document URL", entry)
		}
		return entry, nil
	}
	u, err := url.Parse("https://" + entry)
	if err != nil || entry == "" || u.Host != entry || u.Hostname() == "" || strings.Contains(entry, "*") {
		return "", fmt.Errorf("%q is neither a client_id URL nor a host name", entry)
	}
	return strings.ToLower(entry), nil
}

// Limits on new authorization requests per source: each stores a pending
// request for 10 minutes, so this bounds what one source can store.
const (
	authorizeRequestsPerHour = 300
	authorizeRequestsBurst   = 60
)

// clientMetadataOptions configures the fetching of Client ID Metadata
// Documents: SSRF-safe defaults.
var clientMetadataOptions = clients.FetcherOptions{}

// clientIP is the client address Caddy determined, honouring trusted_proxies.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	return r.RemoteAddr
}

// ServeHTTP serves the site's own endpoints and gates everything else.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	if gate.IsPreflight(r) {
		h.cors.ServePreflight(w, r)
		return nil
	}
	if !h.cors.Allow(w, r) {
		return caddyhttp.Error(http.StatusForbidden, fmt.Errorf("origin %q is not allowed", r.Header.Get("Origin")))
	}
	if endpoint, serve := h.route(cleanPath(r.URL.Path)); serve != nil {
		start := time.Now()
		repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
		serve.ServeHTTP(w, r.WithContext(authserver.WithRequestID(r.Context(), repl.ReplaceAll("{http.request.uuid}", ""))))
		observeDuration(endpoint, start)
		return nil
	}

	d := h.gate.Decide(r)
	if d.Nonce != "" {
		w.Header().Set(dpop.NonceHeader, d.Nonce)
	}
	if d.Claims == nil {
		return h.refuse(w, d)
	}
	upstreamToken, err := h.gate.UpstreamToken(r, d)
	if err == nil {
		var next http.ResponseWriter
		if next, err = h.gate.Apply(w, r, d); err == nil {
			w = next
		}
	}
	if err != nil {
		status := http.StatusServiceUnavailable
		var stopped *gate.ApplyError
		if errors.As(err, &stopped) {
			status = stopped.Status
			if stopped.Challenge != "" {
				w.Header().Set("WWW-Authenticate", stopped.Challenge)
			}
		}
		return caddyhttp.Error(status, err)
	}
	metrics.gateAllowed.Inc()
	repl := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	repl.Set("http.auth.user.id", d.Claims.Subject)
	repl.Set("http.auth.user.email", d.Claims.Email)
	repl.Set("http.auth.client_id", d.Claims.ClientID)
	repl.Set("http.auth.scopes", d.Claims.Scope)
	if upstreamToken != "" {
		repl.Set("http.auth.upstream.access_token", upstreamToken)
	}
	return next.ServeHTTP(w, r)
}

// cleanPath is path.Clean("/" + p), without building "/" + p when p
// already starts with a slash, as it does in every request but "*".
func cleanPath(p string) string {
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return path.Clean(p)
}

// route returns the site's own endpoint at p, with its metric name: the
// authorization server's, then the resources' discovery documents; nil
// for a request to the protected backend.
func (h *Handler) route(p string) (string, http.Handler) {
	if h.as != nil {
		if name, serve := h.as.Route(p); serve != nil {
			return name, serve
		}
	}
	if name, serve := h.gate.Discovery(p); serve != nil {
		return name, serve
	}
	return "", nil
}

// refuse answers a request the gate refused, counting and logging why.
func (h *Handler) refuse(w http.ResponseWriter, d gate.Decision) error {
	metrics.gateRefused[gateOutcome(d.Status, d.Code)].Inc()
	if d.Challenge != "" {
		w.Header().Set("WWW-Authenticate", d.Challenge)
	}
	if c := h.logger.Check(zapcore.DebugLevel, "request refused"); c != nil {
		resource := ""
		if d.Resource != nil {
			resource = d.Resource.URL
		}
		c.Write(zap.Int("status", d.Status), zap.String("reason", d.Reason), zap.String("resource", resource))
	}
	return caddyhttp.Error(d.Status, fmt.Errorf("mcp_auth: %s", d.Reason))
}

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
