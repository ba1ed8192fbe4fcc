package mcpauth

import (
	"fmt"
	"net/url"
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/authserver"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/tokens"
)

// EnterpriseIdP is an enterprise identity provider (Okta, Entra, ...) whose
// identity assertion grants (ID-JAG) clients may exchange at /token for
// access tokens, with grant_type urn:ietf:params:oauth:grant-type:jwt-bearer
// (the MCP extension Enterprise-Managed Authorization). The users it
// asserts pass the allow and grant_scope rules like users who log in:
// name them by email (`allow emails *@acme.com`, when its ID-JAGs carry
// email) or by `<issuer>#<sub>` (`allow users https://acme.okta.com#00u1ab`).
type EnterpriseIdP struct {
	// Issuer is the provider's issuer identifier, compared exactly with
	// the iss of its ID-JAGs. https is required, except for loopback
	// hosts.
	Issuer string `json:"issuer"`
	// JWKSURI is where the provider publishes its signing keys. Default:
	// the jwks_uri of its metadata, discovered from Issuer (RFC 8414, then
	// OpenID Connect Discovery).
	JWKSURI string `json:"jwks_uri,omitempty"`
	// Clients, if set, are the only client_ids that may present the
	// provider's ID-JAGs. Default: any client the ID-JAG names.
	Clients []string `json:"clients,omitempty"`
}

// parseEnterpriseIdP parses an enterprise_idp block:
//
//	enterprise_idp <issuer> [{
//		jwks_uri <url>
//		clients  <client_id...>
//	}]
func parseEnterpriseIdP(d *caddyfile.Dispenser) (EnterpriseIdP, error) {
	var idp EnterpriseIdP
	if !d.NextArg() {
		return idp, d.ArgErr()
	}
	idp.Issuer = d.Val()
	if d.NextArg() {
		return idp, d.ArgErr()
	}
	// Checked, but used as written: iss is compared as a string.
	if _, err := authserver.CanonicalIssuer(idp.Issuer); err != nil {
		return idp, d.Errf("enterprise_idp: %v", err)
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "jwks_uri":
			if idp.JWKSURI != "" {
				return idp, d.Err("jwks_uri already specified")
			}
			if !d.NextArg() {
				return idp, d.ArgErr()
			}
			idp.JWKSURI = d.Val()
			if d.NextArg() {
				return idp, d.ArgErr()
			}
			if err := checkKeysURL(idp.JWKSURI); err != nil {
				return idp, d.Errf("enterprise_idp jwks_uri: %v", err)
			}
		case "clients":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return idp, d.ArgErr()
			}
			idp.Clients = append(idp.Clients, args...)
		default:
			return idp, d.Errf("unrecognized enterprise_idp option '%s'", d.Val())
		}
	}
	return idp, nil
}

// checkKeysURL checks a key set URL: https, or http for loopback hosts.
func checkKeysURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case err != nil || u.Host == "" || u.User != nil || u.Fragment != "":
		return fmt.Errorf("%q is not an absolute URL", raw)
	case u.Scheme == "https":
	case u.Scheme == "http" && authserver.IsLoopbackHost(strings.ToLower(u.Hostname())):
	default:
		return fmt.Errorf("%q must use https (http is only for loopback hosts)", raw)
	}
	return nil
}

// enterpriseIdPs checks the configured identity providers and sets up
// their key sets.
func (h *Handler) enterpriseIdPs() ([]authserver.EnterpriseIdP, error) {
	var out []authserver.EnterpriseIdP
	for _, idp := range h.EnterpriseIdPs {
		if _, err := authserver.CanonicalIssuer(idp.Issuer); err != nil {
			return nil, fmt.Errorf("enterprise_idps: %v", err)
		}
		if idp.JWKSURI != "" {
			if err := checkKeysURL(idp.JWKSURI); err != nil {
				return nil, fmt.Errorf("enterprise_idps %s: jwks_uri: %v", idp.Issuer, err)
			}
		}
		if slices.ContainsFunc(out, func(o authserver.EnterpriseIdP) bool { return o.Issuer == idp.Issuer }) {
			return nil, fmt.Errorf("enterprise_idps: %s is listed twice", idp.Issuer)
		}
		if slices.Contains(idp.Clients, "") {
			return nil, fmt.Errorf("enterprise_idps %s: clients: a client_id is empty", idp.Issuer)
		}
		keys := tokens.NewRemoteVerifier(tokens.RemoteConfig{Issuer: idp.Issuer, JWKSURI: idp.JWKSURI, HTTPClient: externalHTTPClient})
		out = append(out, authserver.EnterpriseIdP{Issuer: idp.Issuer, Keys: keys.SigningKeys, Clients: idp.Clients})
	}
	return out, nil
}

// enterpriseIssuers are the issuers of the configured identity providers.
func (h *Handler) enterpriseIssuers() []string {
	out := make([]string, len(h.EnterpriseIdPs))
	for i, idp := range h.EnterpriseIdPs {
		out[i] = idp.Issuer
	}
	return out
}
