#!/usr/bin/env bash
# Builds this repository's Caddy and the demo MCP backend, then runs both:
# the backend on 127.0.0.1:9000, Caddy with mcp_auth in front of it on
# https://localhost (override with MCP_DEMO_SITE, e.g. localhost:8443), with
# a demo user whose password is printed below.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .demo
go build -o .demo/caddy ./cmd/caddy
go build -o .demo/demo-backend ./example/demo-backend

.demo/demo-backend -listen "${MCP_DEMO_BACKEND:-127.0.0.1:9000}" &
backend=$!
trap 'kill $backend 2>/dev/null' EXIT

export MCP_DEMO_USER=${MCP_DEMO_USER:-demo}
password=${MCP_DEMO_PASSWORD:-$(head -c 12 /dev/urandom | base64 | tr -d '/+=')}
MCP_DEMO_HASH=$(.demo/caddy hash-password --plaintext "$password")
export MCP_DEMO_HASH
site=${MCP_DEMO_SITE:-localhost}
cat <<MSG

  MCP server:  https://${site}/mcp
  Log in as:   ${MCP_DEMO_USER} / ${password}

  Connect any MCP client to the URL above, for example:
    npx @modelcontextprotocol/inspector      (Transport: Streamable HTTP)
    claude mcp add --transport http demo https://${site}/mcp
  Caddy's local CA signs the certificate; run '.demo/caddy trust' once if
  your client does not trust it.

MSG
.demo/caddy run --config example/Caddyfile --adapter caddyfile
