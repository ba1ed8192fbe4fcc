package gate

import (
	"errors"
	"fmt"
	"strings"
)

// Resource is one protected resource (RFC 9728): an MCP endpoint on the site.
// The authorization server publishes its metadata and issues tokens for it;
// the gate admits requests to it.
type Resource struct {
	// URL is the canonical resource identifier, the exact "aud" of its tokens.
	URL string
	// Path is the URL path that the resource covers, "" for the whole origin.
	Path string
	// Scopes are the scopes advertised for the resource and asked for in
	// challenges when a route requires nothing more specific.
	Scopes []string
	// GrantAllScopes makes the authorization server grant, at every
	// authorization, every scope of the resource the user may have,
	// whatever the client asks: for clients that cannot step up. A
	// refresh grants no more than the user consented to.
	GrantAllScopes bool
	// MetadataURL is the absolute URL of the resource's metadata document.
	MetadataURL string
	// MetadataPath is MetadataURL's path, where the document is served.
	MetadataPath string
	// RequireDPoP refuses tokens that are not DPoP-bound (RFC 9449).
	RequireDPoP bool
	// matchPath is Path lower-cased: requests are matched the way Caddy's
	// path matcher matches them, ignoring case.
	matchPath string
}

// ResourceConfig declares a protected resource.
type ResourceConfig struct {
	// Path is the resource's URL path; "" or "/" is the whole origin.
	Path           string
	Scopes         []string
	GrantAllScopes bool
	// RequireDPoP refuses bearer tokens: only DPoP-bound ones are accepted.
	RequireDPoP bool
}

// Resources are the protected resources of one origin in declaration
// order; the first is the default resource.
type Resources []*Resource

// NewResources checks the declared resources and derives their URLs from
// origin (a canonical scheme://host[:port]), so that metadata, challenges
// and tokens agree byte for byte. None declared means the whole origin is
// one resource, without scopes.
func NewResources(origin string, declared []ResourceConfig) (Resources, error) {
	if len(declared) == 0 {
		declared = []ResourceConfig{{}}
	}
	var rs Resources
	seen := map[string]bool{}
	for _, rc := range declared {
		p, err := cleanResourcePath(rc.Path)
		if err != nil {
			return nil, err
		}
		// Caddy routes /MCP and /mcp alike, so they are one resource.
		if seen[strings.ToLower(p)] {
			return nil, fmt.Errorf("resource %q declared twice (paths are matched ignoring case)", p)
		}
		seen[strings.ToLower(p)] = true
		wellKnown := "/.well-known/oauth-protected-resource" + p
		rs = append(rs, &Resource{
			URL:            origin + p,
			Path:           p,
			Scopes:         rc.Scopes,
			GrantAllScopes: rc.GrantAllScopes,
			MetadataURL:    origin + wellKnown,
			MetadataPath:   wellKnown,
			RequireDPoP:    rc.RequireDPoP,
			matchPath:      strings.ToLower(p),
		})
	}
	return rs, nil
}

func cleanResourcePath(p string) (string, error) {
	if p == "" || p == "/" {
		return "", nil
	}
	if err := checkPlainPath(p); err != nil || strings.ContainsAny(p, "?#*{}[] ") {
		return "", fmt.Errorf("resource path %q must be a plain absolute path such as /mcp", p)
	}
	if strings.Contains(p, "/.well-known") {
		return "", errors.New("resource path must not be under /.well-known")
	}
	return strings.TrimRight(p, "/"), nil
}

// For returns the resource that a request path, as gatePath returns it,
// addresses: the one with the longest path that is a prefix of it, the
// way `handle /todos/mcp*` routes /todos/mcp, /todos/mcp/x and /todos/mcpx
// alike. A path outside every resource belongs to the one it shares most
// leading segments with, since routes such as `handle_path /todos/*` send
// /todos/sse to the todos backend too; of several that share as many, the
// one whose path leads to all the others (/todos/mcp before
// /todos/mcp/admin), and none (nil) if no such one exists, as no token can
// be chosen for the path. Only a path that shares no segment with any
// resource is guarded by the default (first declared) resource, so nothing
// is left unguarded.
func (rs Resources) For(path string) *Resource {
	var best *Resource
	for _, r := range rs {
		if strings.HasPrefix(path, r.matchPath) && (best == nil || len(r.matchPath) > len(best.matchPath)) {
			best = r
		}
	}
	if best != nil {
		return best
	}
	most := 0
	for _, r := range rs {
		if n := sharedSegments(path, r.matchPath); n > most || n == most && best != nil && len(r.matchPath) < len(best.matchPath) {
			best, most = r, n
		}
	}
	if most == 0 {
		return rs[0]
	}
	for _, r := range rs {
		if !covers(best.matchPath, r.matchPath) && sharedSegments(path, r.matchPath) == most {
			return nil
		}
	}
	return best
}

// sharedSegments counts the leading path segments a and b have in common.
func sharedSegments(a, b string) int {
	a, b = strings.TrimPrefix(a, "/"), strings.TrimPrefix(b, "/")
	n := 0
	for a != "" && b != "" {
		var segA, segB string
		segA, a, _ = strings.Cut(a, "/")
		segB, b, _ = strings.Cut(b, "/")
		if segA != segB {
			break
		}
		n++
	}
	return n
}

func covers(prefix, path string) bool {
	return prefix == "" || path == prefix || strings.HasPrefix(path, prefix+"/")
}

// Covers reports whether path, compared exactly, is the resource's path or
// below it: how a resource indicator (RFC 8707) names the resource.
func (r *Resource) Covers(path string) bool {
	return covers(r.Path, path)
}
