#!/usr/bin/env bash
# Runs every test: installs what the end-to-end tests need (Chromium,
# certutil, the Node packages in e2e/ and conformance/), then the Go tests
# with the race detector. Extra arguments go to go test.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-e2e.sh
go test -race "$@" ./...
