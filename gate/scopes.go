package gate

import (
	"fmt"
	"slices"
	"strings"
)

// ScopeRule requires scopes for requests whose path matches Pattern.
type ScopeRule struct {
	// Pattern is a path, or a path prefix ending in "*", matched as
	// Caddy's path matcher does, ignoring case. An exact path also
	// matches with a trailing slash, which backends commonly ignore.
	Pattern string
	Scopes  []string
}

// scopeRule is a ScopeRule compiled for matching gatePath's paths.
type scopeRule struct {
	path     string // lower-cased, without the "*"
	isPrefix bool
	scopes   []string
}

func compileScopeRule(r ScopeRule) (scopeRule, error) {
	p, isPrefix := strings.CutSuffix(r.Pattern, "*")
	if strings.ContainsAny(p, "*?[]{}") {
		return scopeRule{}, fmt.Errorf("require_scope path %q: only an exact path or a prefix ending in * is supported", r.Pattern)
	}
	if err := checkPlainPath(p); err != nil {
		return scopeRule{}, fmt.Errorf("require_scope %v", err)
	}
	return scopeRule{path: strings.ToLower(p), isPrefix: isPrefix, scopes: r.Scopes}, nil
}

func (r scopeRule) matches(path string) bool {
	rest, ok := strings.CutPrefix(path, r.path)
	return ok && (r.isPrefix || rest == "" || rest == "/")
}

// requiredScopes returns the scopes a request to path needs: every
// matching rule's.
func (g *Gate) requiredScopes(path string) []string {
	var need []string
	for _, rule := range g.scopeRules {
		if rule.matches(path) {
			for _, sc := range rule.scopes {
				if !slices.Contains(need, sc) {
					need = append(need, sc)
				}
			}
		}
	}
	return need
}

// effectiveScopes adds to granted every scope a granted one includes,
// following ScopeIncludes transitively.
func (g *Gate) effectiveScopes(granted []string) []string {
	if len(g.cfg.ScopeIncludes) == 0 {
		return granted
	}
	have := slices.Clone(granted)
	for i := 0; i < len(have); i++ { // have grows while it is walked
		for _, implied := range g.cfg.ScopeIncludes[have[i]] {
			if !slices.Contains(have, implied) {
				have = append(have, implied)
			}
		}
	}
	return have
}

func missingScopes(have, need []string) []string {
	var missing []string
	for _, sc := range need {
		if !slices.Contains(have, sc) {
			missing = append(missing, sc)
		}
	}
	return missing
}

// Union returns the scopes of a, then those of b not in a.
func Union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}
