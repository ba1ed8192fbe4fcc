package authserver

import (
	"net/http"
	"net/url"
	"path"

	"github.com/caddy-mcp-auth/caddy-mcp-auth/gate"
	"github.com/caddy-mcp-auth/caddy-mcp-auth/oauth"
)

// resourceSet names the protected resources tokens are issued for.
type resourceSet struct {
	// origin is the issuer's; list the resources, the first the default.
	origin string
	list   gate.Resources
	// stepUp are the scopes the gate's rules may ask a token for besides
	// its resource's own (Config.StepUpScopes).
	stepUp []string
}

// resolve maps RFC 8707 resource indicators to the protected
// resource they name. The canonical URL and harmless variants (trailing
// slash, letter case of scheme and host, default port, a URL on the same
// origin below the resource's path) all name it; anything else is
// invalid_target. Without an indicator, the grant's resource applies, or
// the site's default resource.
func (s *resourceSet) resolve(values []string, fallback *gate.Resource) (*gate.Resource, *oauth.Error) {
	if len(values) == 0 {
		if fallback != nil {
			return fallback, nil
		}
		return s.list[0], nil
	}
	var found *gate.Resource
	for _, v := range values {
		res := s.named(v)
		if res == nil || (found != nil && res != found) {
			return nil, oauth.NewError(http.StatusBadRequest, oauth.InvalidTarget, "the resource is not served by this authorization server")
		}
		found = res
	}
	return found, nil
}

// named returns the resource an indicator names, or nil.
func (s *resourceSet) named(indicator string) *gate.Resource {
	if len(indicator) > 2048 {
		return nil
	}
	u, err := url.Parse(indicator)
	if err != nil || u.Fragment != "" || u.User != nil || !u.IsAbs() {
		return nil
	}
	origin, err := CanonicalIssuer(u.Scheme + "://" + u.Host)
	if err != nil || origin != s.origin {
		return nil
	}
	p := path.Clean("/" + u.Path)
	var best *gate.Resource
	for _, r := range s.list {
		if r.Covers(p) && (best == nil || len(r.Path) > len(best.Path)) {
			best = r
		}
	}
	return best
}

// byURL returns the resource with the canonical URL u.
func (s *resourceSet) byURL(u string) *gate.Resource {
	for _, r := range s.list {
		if r.URL == u {
			return r
		}
	}
	return nil
}
