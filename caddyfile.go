package mcpauth

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/authserver"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/clients"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_auth", parseCaddyfile)
	// After forward_auth, with the other authentication handlers: before
	// handle, route and reverse_proxy, so `handle /mcp* { reverse_proxy … }`
	// is guarded without an `order` line.
	httpcaddyfile.RegisterDirectiveOrder("mcp_auth", httpcaddyfile.After, "forward_auth")
	httpcaddyfile.RegisterGlobalOption("mcp_auth", parseGlobalOption)
}

// parseCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_auth [<matcher>] {
//		issuer          <url>
//		resource        <path> [{
//			scopes <scope...>
//			grant_all_scopes [on|off]
//			require_dpop
//		}]
//		require_dpop
//		dpop {
//			nonce
//		}
//		scopes          <scope...>
//		scope           <scope> <description>
//		grant_all_scopes [on|off]
//		require_scope   <path> <scope...>
//		tool_scope      <tool> <scope...>
//		scope_includes  <scope> <narrower scope...>
//		realm           <name>
//		allowed_origins <origin...>
//		strip_header    <name...>
//		pass_authorization
//		identity_audience <backend identifier>
//		upstream        oidc|google|github|users { ... }
//		allow           users|emails|hosted_domains|orgs|clients <value...> | everyone
//		grant_scope     <scope...> to users|emails|hosted_domains|orgs|clients <value...> | everyone
//		client          <id> {
//			secret_hash <hex SHA-256 of the secret> | jwks_uri <url> | jwks <file or JSON>
//			scopes      <scope...>
//			resources   <path...>
//			access_token_lifetime <duration>
//		}
//		enterprise_idp  <issuer> [{
//			jwks_uri <url>
//			clients  <client_id...>
//		}]
//		access_token_lifetime  <duration>
//		refresh_token_lifetime <duration>
//		refresh_token_idle     <duration>
//		remember_consent       <duration>
//		registration { ... }
//		source_ipv4_prefix     <bits>
//		client_metadata_documents on|off
//		assertion_optional     <client_id URL|host...>
//		introspection_client   <id> <secret>
//		authorization_server   <issuer url> [{
//			introspection  <client id> <client secret>
//			accept_jwt_typ <typ>...
//		}]
//	}
//
// Without issuer, the issuer is the site's address: `mcp.example.com` gives
// https://mcp.example.com. A site with several addresses, or one without a
// host, must set issuer.
func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(Handler)
	if err := handler.UnmarshalCaddyfile(h.Dispenser); err != nil {
		return nil, err
	}
	if handler.Issuer == "" {
		issuer, err := issuerFromSiteAddress(h)
		if err != nil {
			// Point the error at the directive's line, not the end of its block.
			h.Reset()
			h.Next()
			return nil, h.Errf("%v", err)
		}
		handler.Issuer = issuer
	}
	return handler, nil
}

// UnmarshalCaddyfile implements caddyfile.Unmarshaler.
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	// described holds where each scope description was given, so that
	// one of a scope the site does not use is reported at its line.
	var described []caddyfile.Token
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] && !slices.Contains([]string{"resource", "require_scope", "allow", "introspection_client", "assertion_optional", "tool_scope", "grant_scope", "scope_includes", "client", "scope", "enterprise_idp"}, opt) {
			return d.Errf("%s already specified", opt)
		}
		seen[opt] = true
		switch opt {
		case "issuer":
			if !d.NextArg() {
				return d.ArgErr()
			}
			iss := d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			if _, err := authserver.CanonicalIssuer(iss); err != nil {
				return d.Errf("%v", err)
			}
			h.Issuer = iss
		case "resource":
			if !d.NextArg() {
				return d.ArgErr()
			}
			res := Resource{Path: d.Val()}
			if !strings.HasPrefix(res.Path, "/") {
				return d.Errf("resource %q must be a path such as /mcp", res.Path)
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "scopes":
					if res.Scopes != nil {
						return d.Err("scopes already specified")
					}
					if res.Scopes = d.RemainingArgs(); len(res.Scopes) == 0 {
						return d.ArgErr()
					}
				case "grant_all_scopes":
					if res.GrantAllScopes != nil {
						return d.Err("grant_all_scopes already specified")
					}
					on, err := parseOnOff(d)
					if err != nil {
						return err
					}
					res.GrantAllScopes = &on
				case "require_dpop":
					if res.RequireDPoP {
						return d.Err("require_dpop already specified")
					}
					if d.NextArg() {
						return d.ArgErr()
					}
					res.RequireDPoP = true
				default:
					return d.Errf("unrecognized resource option '%s'", d.Val())
				}
			}
			h.Resources = append(h.Resources, res)
		case "scopes":
			if h.Scopes = d.RemainingArgs(); len(h.Scopes) == 0 {
				return d.ArgErr()
			}
		case "scope":
			// scope <scope> <description>
			usage := `scope <scope> "<description>": a scope and what it allows, in quotes`
			if !d.NextArg() {
				return d.Err(usage)
			}
			name := d.Token()
			args := d.RemainingArgs()
			if len(args) != 1 || args[0] == "" {
				return d.Err(usage)
			}
			if _, dup := h.ScopeDescriptions[name.Text]; dup {
				return d.Errf("scope %q described twice", name.Text)
			}
			if h.ScopeDescriptions == nil {
				h.ScopeDescriptions = map[string]string{}
			}
			h.ScopeDescriptions[name.Text] = args[0]
			described = append(described, name)
		case "grant_all_scopes":
			on, err := parseOnOff(d)
			if err != nil {
				return err
			}
			h.GrantAllScopes = on
		case "require_dpop":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.RequireDPoP = true
		case "dpop":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.DPoP = new(DPoP)
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "nonce":
					if h.DPoP.Nonce {
						return d.Err("nonce already specified")
					}
					if d.NextArg() {
						return d.ArgErr()
					}
					h.DPoP.Nonce = true
				default:
					return d.Errf("unrecognized dpop option '%s'", d.Val())
				}
			}
		case "require_scope":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.ArgErr()
			}
			if !strings.HasPrefix(args[0], "/") {
				return d.Errf("require_scope path %q must start with /", args[0])
			}
			h.RequireScopes = append(h.RequireScopes, ScopeRequirement{Path: args[0], Scopes: args[1:]})
		case "realm":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.Realm = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "allowed_origins":
			if h.AllowedOrigins = d.RemainingArgs(); len(h.AllowedOrigins) == 0 {
				return d.ArgErr()
			}
		case "strip_header":
			if h.StripHeaders = d.RemainingArgs(); len(h.StripHeaders) == 0 {
				return d.ArgErr()
			}
		case "upstream_tokens":
			if h.UpstreamTokens != nil {
				return d.Err("upstream_tokens already specified")
			}
			ut, err := parseUpstreamTokens(d)
			if err != nil {
				return err
			}
			h.UpstreamTokens = ut
		case "upstream":
			u, err := parseUpstream(d)
			if err != nil {
				return err
			}
			h.Upstream = u
		case "allow":
			if err := parseAllow(d, h); err != nil {
				return err
			}
		case "client":
			c, err := parseMachineClient(d, h.Clients)
			if err != nil {
				return err
			}
			h.Clients = append(h.Clients, c)
		case "enterprise_idp":
			idp, err := parseEnterpriseIdP(d)
			if err != nil {
				return err
			}
			if slices.ContainsFunc(h.EnterpriseIdPs, func(o EnterpriseIdP) bool { return o.Issuer == idp.Issuer }) {
				return d.Errf("enterprise_idp %s already specified", idp.Issuer)
			}
			h.EnterpriseIdPs = append(h.EnterpriseIdPs, idp)
		case "access_token_lifetime", "refresh_token_lifetime", "refresh_token_idle", "remember_consent":
			dur, err := parseDuration(d)
			if err != nil {
				return err
			}
			switch opt {
			case "access_token_lifetime":
				h.AccessTokenLifetime = dur
			case "refresh_token_lifetime":
				h.RefreshTokenLifetime = dur
			case "refresh_token_idle":
				h.RefreshTokenIdle = dur
			default:
				h.RememberConsent = dur
			}
		case "grant_scope":
			// grant_scope <scope...> to users|emails|hosted_domains|orgs|clients <value...> | everyone
			args := d.RemainingArgs()
			to := slices.Index(args, "to")
			if to < 1 || to == len(args)-1 {
				return d.Err("grant_scope <scope...> to users|emails|hosted_domains|orgs|clients <value...>, or to everyone")
			}
			g := ScopeGrant{Scopes: args[:to]}
			kind, values := args[to+1], args[to+2:]
			switch {
			case kind == "everyone" && len(values) == 0:
				g.To.Everyone = true
			case kind == "users" && len(values) > 0:
				g.To.Users = values
			case kind == "emails" && len(values) > 0:
				g.To.Emails = values
			case kind == "hosted_domains" && len(values) > 0:
				g.To.HostedDomains = values
			case kind == "orgs" && len(values) > 0:
				g.To.Orgs = values
			case kind == "clients" && len(values) > 0:
				g.To.Clients = values
			default:
				return d.Errf("grant_scope: %q must be users, emails, hosted_domains, orgs or clients followed by values, or everyone", kind)
			}
			h.ScopeGrants = append(h.ScopeGrants, g)
		case "scope_includes":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.ArgErr()
			}
			if _, dup := h.ScopeIncludes[args[0]]; dup {
				return d.Errf("scope_includes for %q given twice", args[0])
			}
			if h.ScopeIncludes == nil {
				h.ScopeIncludes = map[string][]string{}
			}
			h.ScopeIncludes[args[0]] = args[1:]
		case "tool_scope":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.ArgErr()
			}
			if _, dup := h.ToolScopes[args[0]]; dup {
				return d.Errf("tool_scope for %q given twice", args[0])
			}
			if h.ToolScopes == nil {
				h.ToolScopes = map[string][]string{}
			}
			h.ToolScopes[args[0]] = args[1:]
		case "authorization_server":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.AuthorizationServer = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
			if _, err := authserver.CanonicalIssuer(h.AuthorizationServer); err != nil {
				return d.Errf("authorization_server: %v", err)
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "introspection":
					args := d.RemainingArgs()
					if len(args) != 2 {
						return d.Errf("introspection takes a client id and a client secret")
					}
					h.Introspection = &IntrospectionCredentials{ClientID: args[0], ClientSecret: args[1]}
				case "accept_jwt_typ":
					args := d.RemainingArgs()
					if len(args) == 0 {
						return d.Errf("accept_jwt_typ takes one or more JOSE typ values, such as JWT, or \"\" for none")
					}
					h.AcceptJWTTypes = append(h.AcceptJWTTypes, args...)
				default:
					return d.Errf("unrecognized authorization_server option '%s'", d.Val())
				}
			}
		case "introspection_client":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.ArgErr()
			}
			if _, dup := h.IntrospectionClients[args[0]]; dup {
				return d.Errf("introspection_client %q listed twice", args[0])
			}
			if h.IntrospectionClients == nil {
				h.IntrospectionClients = map[string]string{}
			}
			h.IntrospectionClients[args[0]] = args[1]
		case "registration":
			reg, err := parseRegistration(d)
			if err != nil {
				return err
			}
			h.Registration = reg
		case "client_metadata_documents":
			if !d.NextArg() {
				return d.ArgErr()
			}
			switch d.Val() {
			case "on":
			case "off":
				h.DisableClientMetadataDocuments = true
			default:
				return d.Errf("client_metadata_documents must be on or off, not %q", d.Val())
			}
			if d.NextArg() {
				return d.ArgErr()
			}
		case "source_ipv4_prefix":
			if !d.NextArg() {
				return d.ArgErr()
			}
			bits, err := strconv.Atoi(strings.TrimPrefix(d.Val(), "/"))
			if err != nil || bits < 8 || bits > 32 {
				return d.Errf("source_ipv4_prefix %q must be a prefix length from 8 to 32", d.Val())
			}
			h.SourceIPv4Prefix = bits
			if d.NextArg() {
				return d.ArgErr()
			}
		case "assertion_optional":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.ArgErr()
			}
			for _, arg := range args {
				if _, err := assertionOptionalEntry(arg); err != nil {
					return d.Errf("assertion_optional: %v", err)
				}
			}
			h.AssertionOptional = append(h.AssertionOptional, args...)
		case "identity_audience":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.IdentityAudience = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "pass_authorization":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.PassAuthorization = true
		default:
			return d.Errf("unrecognized mcp_auth option '%s'", opt)
		}
	}
	if len(h.Resources) > 0 && len(h.Scopes) > 0 {
		return d.Err("with resources declared, set scopes inside each resource block")
	}
	known := h.knownScopes(h.declaredResources())
	for _, tok := range described {
		if sc := tok.Text; !slices.Contains(known, sc) {
			return fmt.Errorf("scope %q is not a scope of this site (its resources, require_scope, tool_scope, grant_scope, scope_includes, or openid, profile, email), at %s:%d", sc, tok.File, tok.Line)
		}
	}
	return nil
}

// parseOnOff parses the optional on|off argument of a flag; the flag
// alone means on.
func parseOnOff(d *caddyfile.Dispenser) (bool, error) {
	opt := d.Val()
	args := d.RemainingArgs()
	switch {
	case len(args) == 0:
		return true, nil
	case len(args) == 1 && args[0] == "on":
		return true, nil
	case len(args) == 1 && args[0] == "off":
		return false, nil
	}
	return false, d.Errf("%s takes on or off, or nothing for on", opt)
}

// parseUpstream parses an upstream block:
//
//	upstream oidc|google|github {
//		issuer        <url>
//		client_id     <id>
//		client_secret <secret>
//		scopes        <scope...>
//		base_url      <url>
//		api_url       <url>
//		trust_preferred_username
//	}
//	upstream users {
//		<username> <bcrypt hash>
//	}
func parseUpstream(d *caddyfile.Dispenser) (*Upstream, error) {
	if !d.NextArg() {
		return nil, d.ArgErr()
	}
	u := &Upstream{Provider: d.Val()}
	if !slices.Contains([]string{"oidc", "google", "github", "users"}, u.Provider) {
		return nil, d.Errf("unknown upstream provider %q (use oidc, google, github or users)", u.Provider)
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		args := d.RemainingArgs()
		if u.Provider == "users" {
			if len(args) != 1 {
				return nil, d.Errf("user %q: give one bcrypt hash (from caddy hash-password)", key)
			}
			if _, dup := u.Users[key]; dup {
				return nil, d.Errf("user %q listed twice", key)
			}
			if u.Users == nil {
				u.Users = map[string]string{}
			}
			u.Users[key] = args[0]
			continue
		}
		if seen[key] {
			return nil, d.Errf("%s already specified", key)
		}
		seen[key] = true
		allowed := map[string][]string{
			"issuer": {"oidc", "google"}, "client_id": {"oidc", "google", "github"}, "client_secret": {"oidc", "google", "github"},
			"scopes": {"oidc", "google", "github"}, "base_url": {"github"}, "api_url": {"github"}, "trust_preferred_username": {"oidc"},
		}
		if !slices.Contains(allowed[key], u.Provider) {
			return nil, d.Errf("unrecognized option '%s' for upstream %s", key, u.Provider)
		}
		if key == "trust_preferred_username" {
			if len(args) != 0 {
				return nil, d.ArgErr()
			}
			u.TrustPreferredUsername = true
			continue
		}
		if len(args) == 0 || (key != "scopes" && len(args) != 1) {
			return nil, d.ArgErr()
		}
		switch key {
		case "issuer":
			u.Issuer = args[0]
		case "client_id":
			u.ClientID = args[0]
		case "client_secret":
			u.ClientSecret = args[0]
		case "scopes":
			u.Scopes = args
		case "base_url":
			u.BaseURL = args[0]
		case "api_url":
			u.APIURL = args[0]
		}
	}
	return u, nil
}

// parseUpstreamTokens parses an upstream_tokens block:
//
//	upstream_tokens {
//		key     <base64 key>
//		old_key <base64 key>   # repeatable
//	}
func parseUpstreamTokens(d *caddyfile.Dispenser) (*UpstreamTokens, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	ut := new(UpstreamTokens)
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		args := d.RemainingArgs()
		if len(args) != 1 {
			return nil, d.ArgErr()
		}
		switch key {
		case "key":
			if ut.Key != "" {
				return nil, d.Err("key already specified")
			}
			ut.Key = args[0]
		case "old_key":
			ut.OldKeys = append(ut.OldKeys, args[0])
		default:
			return nil, d.Errf("unrecognized upstream_tokens option '%s'", key)
		}
	}
	if ut.Key == "" {
		return nil, d.Err("upstream_tokens: key is required")
	}
	return ut, nil
}

// parseAllow parses `allow users|emails|hosted_domains|orgs|clients <value...>` and
// `allow everyone`.
func parseAllow(d *caddyfile.Dispenser, h *Handler) error {
	if !d.NextArg() {
		return d.ArgErr()
	}
	kind := d.Val()
	values := d.RemainingArgs()
	if h.Allow == nil {
		h.Allow = new(Allow)
	}
	switch kind {
	case "everyone":
		if len(values) > 0 {
			return d.ArgErr()
		}
		h.Allow.Everyone = true
		return nil
	case "users":
		h.Allow.Users = append(h.Allow.Users, values...)
	case "emails":
		for _, e := range values {
			if !strings.Contains(e, "@") {
				return d.Errf("allow emails: %q is not an address or *@domain pattern", e)
			}
		}
		h.Allow.Emails = append(h.Allow.Emails, values...)
	case "hosted_domains":
		h.Allow.HostedDomains = append(h.Allow.HostedDomains, values...)
	case "orgs":
		h.Allow.Orgs = append(h.Allow.Orgs, values...)
	case "clients":
		h.Allow.Clients = append(h.Allow.Clients, values...)
	default:
		return d.Errf("allow %q: use users, emails, hosted_domains, orgs, clients or everyone", kind)
	}
	if len(values) == 0 {
		return d.ArgErr()
	}
	return nil
}

// parseMachineClient parses a client block:
//
//	client <id> {
//		secret_hash <hex SHA-256 of the secret>   # or:
//		jwks_uri    <https URL of its JWK Set>    # or:
//		jwks        <file holding its JWK Set, or the JSON in backquotes>
//		scopes      <scope...>
//		resources   <path...>
//		access_token_lifetime <duration>
//	}
//
// What can be checked alone is checked here, so errors name the line;
// earlier are the clients parsed before.
func parseMachineClient(d *caddyfile.Dispenser, earlier []MachineClient) (MachineClient, error) {
	var c MachineClient
	if !d.NextArg() {
		return c, d.ArgErr()
	}
	c.ID = d.Val()
	if err := clients.CheckConfiguredID(c.ID); err != nil {
		return c, d.Errf("%v", err)
	}
	if slices.ContainsFunc(earlier, func(other MachineClient) bool { return other.ID == c.ID }) {
		return c, d.Errf("client %s already specified", c.ID)
	}
	if d.NextArg() {
		return c, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if seen[key] {
			return c, d.Errf("%s already specified", key)
		}
		seen[key] = true
		switch key {
		case "secret_hash", "jwks_uri", "jwks":
			if !d.NextArg() {
				return c, d.ArgErr()
			}
			value := d.Val()
			if d.NextArg() {
				return c, d.ArgErr()
			}
			if c.SecretHash != "" || c.JWKSURI != "" || c.JWKS != nil {
				return c, d.Errf("client %s: give only one of secret_hash, jwks_uri and jwks", c.ID)
			}
			switch key {
			case "secret_hash":
				if err := clients.CheckSecretHash(value); err != nil {
					return c, d.Errf("client %s: %v", c.ID, err)
				}
				c.SecretHash = value
			case "jwks_uri":
				c.JWKSURI = value
			default:
				raw, err := jwksValue(value)
				if err != nil {
					return c, d.Errf("client %s: jwks: %v", c.ID, err)
				}
				c.JWKS = raw
			}
		case "scopes", "resources":
			values := d.RemainingArgs()
			if len(values) == 0 {
				return c, d.ArgErr()
			}
			if key == "scopes" {
				c.Scopes = values
			} else {
				c.Resources = values
			}
		case "access_token_lifetime":
			dur, err := parseDuration(d)
			if err != nil {
				return c, err
			}
			c.AccessTokenLifetime = dur
		default:
			return c, d.Errf("unrecognized client option '%s'", key)
		}
	}
	if c.SecretHash == "" && c.JWKSURI == "" && c.JWKS == nil {
		return c, d.Errf("client %s: give secret_hash, jwks_uri or jwks", c.ID)
	}
	return c, nil
}

// jwksValue is a JWK Set given in the Caddyfile: the JSON itself (in
// backquotes), or the name of a file holding it, read now. Either way it
// must be one to 20 public keys.
func jwksValue(value string) ([]byte, error) {
	raw := []byte(value)
	if !strings.HasPrefix(strings.TrimSpace(value), "{") {
		var err error
		if raw, err = os.ReadFile(value); err != nil {
			return nil, err
		}
	}
	if err := clients.CheckJWKS(raw); err != nil {
		return nil, err
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, raw); err != nil {
		return nil, err
	}
	return compact.Bytes(), nil
}

// parseRegistration parses a registration block:
//
//	registration {
//		initial_access_token   <token>
//		unused_client_lifetime <duration>
//		rate_limit             <registrations per hour per source>
//		global_rate_limit      <registrations per hour from all sources>
//	}
func parseRegistration(d *caddyfile.Dispenser) (*Registration, error) {
	reg := new(Registration)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		key := d.Val()
		if seen[key] {
			return nil, d.Errf("%s already specified", key)
		}
		seen[key] = true
		switch key {
		case "initial_access_token":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			reg.InitialAccessToken = d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		case "unused_client_lifetime":
			dur, err := parseDuration(d)
			if err != nil {
				return nil, err
			}
			reg.UnusedClientLifetime = dur
		case "rate_limit", "global_rate_limit":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return nil, d.Errf("%s %q must be a positive number of registrations per hour", key, d.Val())
			}
			if key == "rate_limit" {
				reg.RateLimit = n
			} else {
				reg.GlobalRateLimit = n
			}
			if d.NextArg() {
				return nil, d.ArgErr()
			}
		default:
			return nil, d.Errf("unrecognized registration option '%s'", key)
		}
	}
	return reg, nil
}

// parseDuration reads the one duration argument of the current option.
func parseDuration(d *caddyfile.Dispenser) (caddy.Duration, error) {
	if !d.NextArg() {
		return 0, d.ArgErr()
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil || dur <= 0 {
		return 0, d.Errf("%q is not a positive duration", d.Val())
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return caddy.Duration(dur), nil
}

// issuerFromSiteAddress derives the issuer from the address of the site
// block the directive is in. httpcaddyfile does not expose the block to
// directives, so its keys are read through reflection (read-only); a Caddy
// that changes this shows as a clear adapt error asking for `issuer`.
func issuerFromSiteAddress(h httpcaddyfile.Helper) (string, error) {
	if h.IsNamedRoute() {
		// Its key is the route's name, &(name), not an address.
		return "", fmt.Errorf("in a named route the issuer cannot come from a site address; set issuer")
	}
	keys := reflect.ValueOf(h).FieldByName("parentBlock")
	if keys.IsValid() {
		keys = keys.FieldByName("Keys")
	}
	if !keys.IsValid() || keys.Kind() != reflect.Slice {
		return "", fmt.Errorf("cannot read the site address; set issuer")
	}
	if keys.Len() != 1 {
		return "", fmt.Errorf("the site has %d addresses; set issuer to the one MCP clients use", keys.Len())
	}
	text := keys.Index(0).FieldByName("Text")
	if !text.IsValid() || text.Kind() != reflect.String {
		return "", fmt.Errorf("cannot read the site address; set issuer")
	}
	addr, err := httpcaddyfile.ParseAddress(text.String())
	if err != nil {
		return "", fmt.Errorf("site address %q: %v", text.String(), err)
	}
	if addr.Host == "" || strings.ContainsAny(addr.Host, "*{}") {
		return "", fmt.Errorf("site address %q has no single host name; set issuer", addr.Original)
	}
	scheme := "https"
	if addr.Scheme == "http" || (addr.Scheme == "" && addr.Port == "80") {
		scheme = "http"
	}
	host := addr.Host
	if strings.Contains(host, ":") {
		host = "[" + host + "]" // IPv6 literal: ParseAddress drops the brackets
	}
	issuer := scheme + "://" + host
	if addr.Port != "" {
		issuer += ":" + addr.Port
	}
	canonical, err := authserver.CanonicalIssuer(issuer)
	if err != nil {
		return "", fmt.Errorf("from site address %q: %v; set issuer", addr.Original, err)
	}
	return canonical, nil
}

// parseGlobalOption sets up the mcp_auth app. Syntax:
//
//	mcp_auth {
//		storage_path      <dir>
//		redis             <url>
//		redis_prefix      <prefix>
//		signing_algorithm ES256|RS256|EdDSA
//		key_rotation      <duration>
//	}
//
// storage_path and redis are mutually exclusive; redis_prefix needs redis.
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	d.Next() // option name; before any error, so errors carry its line
	if existing != nil {
		return nil, d.Err("mcp_auth global option specified more than once")
	}
	app := new(App)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	seen := map[string]bool{}
	var prefixAlone error // redis_prefix without redis, at its line
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("%s already specified", opt)
		}
		seen[opt] = true
		if !d.NextArg() {
			return nil, d.ArgErr()
		}
		val := d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		switch opt {
		case "storage_path":
			if seen["redis"] {
				return nil, d.Err("storage_path and redis are mutually exclusive")
			}
			app.StoragePath = val
		case "redis":
			if seen["storage_path"] {
				return nil, d.Err("storage_path and redis are mutually exclusive")
			}
			app.Redis = val
		case "redis_prefix":
			app.RedisPrefix = val
			prefixAlone = d.Err("redis_prefix requires redis")
		case "signing_algorithm":
			if !slices.Contains(tokens.Algorithms, val) {
				return nil, d.Errf("signing_algorithm %q is not one of %v", val, tokens.Algorithms)
			}
			app.SigningAlgorithm = val
		case "key_rotation":
			dur, err := caddy.ParseDuration(val)
			if err != nil {
				return nil, d.Errf("key_rotation %q: %v", val, err)
			}
			if dur < time.Hour {
				return nil, d.Errf("key_rotation %q must be at least 1h", val)
			}
			app.KeyRotation = caddy.Duration(dur)
		default:
			return nil, d.Errf("unrecognized mcp_auth global option '%s'", opt)
		}
	}
	if prefixAlone != nil && app.Redis == "" {
		return nil, prefixAlone
	}
	return httpcaddyfile.App{Name: "mcp_auth", Value: caddyconfig.JSON(app, nil)}, nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*Handler)(nil)
