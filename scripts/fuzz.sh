#!/usr/bin/env bash
# Runs every Go fuzz target of the module, each for the given duration
# (default 30s):
#
#	scripts/fuzz.sh         # 30s per target
#	scripts/fuzz.sh 5m      # a long run
#
# Targets are discovered when it runs (go test -list), so new ones need no
# change here. Every target runs even if an earlier one fails; the script
# fails if any did. A failing input is saved by go test under the
# package's testdata/fuzz/<target>/: commit it with the fix, it then runs
# with the package's ordinary tests.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-30s}

# go test -list prints each package's matching test names, then its "ok"
# line.
if ! listing=$(go test -list '^Fuzz' ./...); then
	echo "$listing"
	echo "cannot list the fuzz targets" >&2
	exit 1
fi
targets=$(awk '
	/^Fuzz/ { names[n++] = $1; next }
	/^ok/   { for (i = 0; i < n; i++) print $2, names[i]; n = 0 }
' <<<"$listing")

if [ -z "$targets" ]; then
	echo "no fuzz targets found"
	exit 0
fi

# corpus_files lists the inputs saved for a target; go test adds one when it
# finds a failing input.
corpus_files() {
	ls "$1/testdata/fuzz/$2" 2>/dev/null || true
}

failed=()
flaked=()
while read -r pkg target; do
	echo "=== fuzz $target in $pkg for $duration"
	dir=$(go list -f '{{.Dir}}' "$pkg")
	before=$(corpus_files "$dir" "$target")
	log=$(mktemp)
	if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$duration" "$pkg" 2>&1 | tee "$log"; then
		rm -f "$log"
		continue
	fi
	# Go's fuzz coordinator can report the end of -fuzztime itself as
	# "context deadline exceeded" (golang/go#75804, fixed in Go 1.27). That
	# failure saves no input and carries no other message; anything else,
	# or a saved input, is a real failure.
	reasons=$(sed -n "/^--- FAIL: ${target} /,/^FAIL\$/p" "$log" | sed '1d;$d' | sed 's/^[[:space:]]*//')
	if [ "$reasons" = "context deadline exceeded" ] && [ "$before" = "$(corpus_files "$dir" "$target")" ]; then
		flaked+=("$target in $pkg")
	else
		failed+=("$target in $pkg")
	fi
	rm -f "$log"
done <<<"$targets"

if [ ${#flaked[@]} -gt 0 ]; then
	printf 'fuzz target stopped by the Go fuzzing deadline race (golang/go#75804), no failing input: %s\n' "${flaked[@]}" >&2
fi

if [ ${#failed[@]} -gt 0 ]; then
	printf 'fuzz target failed: %s\n' "${failed[@]}" >&2
	exit 1
fi
echo "all $(wc -l <<<"$targets") fuzz targets passed"
