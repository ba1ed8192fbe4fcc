#!/usr/bin/env bash
# Builds this repository's Caddy and the demo MCP backend, then runs both:
# the backend on 127.0.0.1:9000, Caddy with mcp_auth in front of it on
# https://localhost (override with MCP_DEMO_SITE, e.g. localhost:8443).
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .demo
go build -o .demo/caddy ./cmd/caddy
go build -o .demo/demo-backend ./example/demo-backend

.demo/demo-backend -listen "${MCP_DEMO_BACKEND:-127.0.0.1:9000}" &
backend=$!
trap 'kill $backend 2>/dev/null' EXIT

site=${MCP_DEMO_SITE:-localhost}
cat <<MSG

  MCP endpoint:   https://${site}/mcp
  Try:            curl -i https://${site}/mcp            (401 with a WWW-Authenticate challenge)
                  curl https://${site}/.well-known/oauth-protected-resource/mcp

MSG
.demo/caddy run --config example/Caddyfile --adapter caddyfile
