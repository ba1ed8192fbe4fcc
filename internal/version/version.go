// Package version says which build of this module is running, for records
// it writes and for the User-Agent of its outbound requests.
package version

import "runtime/debug"

// ModulePath is this module's import path, to find its version in the
// build information.
const ModulePath = "github.com/caddy-mcp-auth/caddy-mcp-auth"

// RepositoryURL is where the module's source and documentation live.
const RepositoryURL = "https://github.com/caddy-mcp-auth/caddy-mcp-auth"

// Module returns this module's version in the running binary: "(devel)"
// when built from a checkout, "(unknown)" without build information.
func Module() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "(unknown)"
	}
	if info.Main.Path == ModulePath {
		return info.Main.Version
	}
	for _, dep := range info.Deps {
		if dep.Path == ModulePath {
			if dep.Replace != nil {
				return dep.Replace.Version
			}
			return dep.Version
		}
	}
	return "(unknown)"
}
