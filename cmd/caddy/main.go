// Command caddy is a Caddy build that includes the mcp_auth plugin, so the
// repository can be built and run with plain `go build ./cmd/caddy`.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddy-mcp-auth/caddy-mcp-auth"
)

func main() {
	caddycmd.Main()
}
