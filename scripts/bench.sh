#!/usr/bin/env bash
# Runs the benchmarks and writes their figures to BENCHMARKS.md.
# Usage: scripts/bench.sh [count]   (default count: 8; medians are reported)
# BENCH_GRANTS lists the counts of stored grants the token endpoint's store
# work is measured at (default "1000 100000 1000000"): each count has a
# store filled to it, and both operations run at every count in turn,
# count times. Filling Badger with 1 million grants takes most of the
# running time: about 11 minutes on a quiet 2-core VM, 45 on a busy one.
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-8}
grants=${BENCH_GRANTS:-1000 100000 1000000}
raw=$(mktemp)
store_raw=$(mktemp)
trap 'rm -f "$raw" "$store_raw"' EXIT

go test -run '^$' -bench 'BenchmarkVerify|BenchmarkMintAccessToken' -benchmem -count "$count" ./tokens/ | tee -a "$raw"
go test -run '^$' -bench 'BenchmarkGateDecision' -benchmem -count "$count" ./gate/ | tee -a "$raw"
go test -run '^$' -bench 'BenchmarkGateVsReverseProxy' -benchmem -count "$count" . | grep -v '^{' | tee -a "$raw"
# Once: it fills a store for each count of grants, then runs its rounds.
MCP_AUTH_BENCH_GRANTS=$grants MCP_AUTH_BENCH_ROUNDS=$count go test -run '^$' -bench 'BenchmarkTokenStore' -benchmem -timeout 6h ./state/ | grep -v '^{' | tee -a "$store_raw"

# median(s, m) sorts s[1..m] in place and returns their median; both
# tables below use it.
median_awk='
function median(s, m,   a, b, t) {
	for (a = 1; a <= m; a++) for (b = a + 1; b <= m; b++) if (s[b] < s[a]) { t = s[a]; s[a] = s[b]; s[b] = t }
	return (m % 2) ? s[(m + 1) / 2] : (s[m / 2] + s[m / 2 + 1]) / 2
}'

# Median ns/op per benchmark, in first-seen order.
medians=$(awk "$median_awk"'/^Benchmark/ {
	name=$1; sub(/-[0-9]+$/, "", name)
	if (!(name in n)) order[++k]=name
	v[name, ++n[name]]=$3; bytes[name]=$5; allocs[name]=$7
}
END {
	for (i=1; i<=k; i++) {
		name=order[i]; c=n[name]
		for (a=1; a<=c; a++) s[a]=v[name, a]
		med = median(s, c)
		printf "%s %.0f %s %s\n", name, med, bytes[name], allocs[name]
	}
}' "$raw")

# Gate throughput relative to plain reverse_proxy, per store and traffic
# (BenchmarkGateVsReverseProxy/<store>/<traffic>/{reverse_proxy,mcp_auth+reverse_proxy}).
ratios=$(awk '
$1 ~ /^BenchmarkGateVsReverseProxy\/.*\/reverse_proxy$/ && $1 !~ /mcp_auth/ { k=$1; sub(/\/reverse_proxy$/, "", k); plain[k]=$2 }
$1 ~ /^BenchmarkGateVsReverseProxy\/.*\/mcp_auth\+reverse_proxy$/ { k=$1; sub(/\/mcp_auth\+reverse_proxy$/, "", k); gated[k]=$2; order[++n]=k }
END {
	for (i=1; i<=n; i++) {
		k=order[i]; name=k; sub(/^BenchmarkGateVsReverseProxy\//, "", name)
		printf "%s %.1f\n", name, 100 * plain[k] / gated[k]
	}
}' <<<"$medians")
if [ -z "$ratios" ]; then
	echo "no BenchmarkGateVsReverseProxy pairs found" >&2
	exit 1
fi
# Token endpoint store work per second, per store and operation, at each
# count of stored grants (BenchmarkTokenStore/<store>/grants=<n>/<operation>,
# its rounds' counts suffixed #01, #02, ...): "store operation cell-at-first ...
# cell-at-last last/first", a cell being "median (min–max)" of the rounds'
# rates and the ratio one of medians.
store_rates=$(awk "$median_awk"'
$1 ~ /^BenchmarkTokenStore\// {
	split($1, part, "/"); store = part[2]; n = part[3]; sub(/^grants=/, "", n); sub(/#[0-9]+$/, "", n); op = part[4]; sub(/-[0-9]+$/, "", op)
	for (f = 2; f < NF; f++) if ($(f + 1) ~ /\/s$/) r = $f
	if (!((store, op) in seen)) { seen[store, op] = 1; rows[++k] = store SUBSEP op }
	if (!(n in counted)) { counted[n] = 1; counts[++c] = n }
	rate[store, op, n, ++runs[store, op, n]] = r
}
END {
	printf "counts"; for (j = 1; j <= c; j++) printf " %s", counts[j]; print ""
	for (i = 1; i <= k; i++) {
		split(rows[i], so, SUBSEP); printf "%s %s", so[1], so[2]
		for (j = 1; j <= c; j++) {
			m = runs[so[1], so[2], counts[j]]
			for (a = 1; a <= m; a++) s[a] = rate[so[1], so[2], counts[j], a]
			med[j] = median(s, m)
			printf " %.0f_(%.0f–%.0f)", med[j], s[1], s[m]
		}
		printf " %.2f\n", med[c] / med[1]
	}
}' "$store_raw")
if [ "$(wc -l <<<"$store_rates")" -lt 2 ]; then
	echo "no BenchmarkTokenStore results found" >&2
	exit 1
fi

# The A/B section written by scripts/bench-ab.sh is kept.
ab_section=$(awk '/^## A\/B against plain reverse_proxy/ { keep=1 } keep' BENCHMARKS.md 2>/dev/null || true)

{
	echo "# Benchmarks"
	echo
	echo "Written by \`scripts/bench.sh $count\` on $(date -u +%Y-%m-%d) ($(go version | cut -d' ' -f3), $(nproc) cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo))."
	echo "Each figure is the median of $count runs. Reproduce with \`scripts/bench.sh\`."
	echo
	echo "| benchmark | ns/op | B/op | allocs/op |"
	echo "|---|---:|---:|---:|"
	awk '{ printf "| %s | %s | %s | %s |\n", $1, $2, $3, $4 }' <<<"$medians"
	echo
	echo "Throughput of mcp_auth + reverse_proxy relative to plain reverse_proxy on the same backend and request:"
	echo
	awk '{ printf "- %s: **%s%%**\n", $1, $2 }' <<<"$ratios"
	echo
	echo "- \`BenchmarkVerifyRepeated\` is a token the gate has seen before (target: under 2 µs);"
	echo "  \`BenchmarkVerifyFirstUse\` includes the signature check."
	echo "- \`BenchmarkGateVsReverseProxy\` sends the same POSTs (no session, with \`Mcp-Session-Id\`, a \`tools/call\`) with the same bearer token, with Badger and with Redis, through one"
	echo "  in-process Caddy, over loopback HTTP/1.1 with keep-alive; plain reverse_proxy forwards the"
	echo "  Authorization header, the gate verifies and removes it."
	echo "  The load and Caddy share the process and its cores, so these ratios swing by 10–25% from run to run; the A/B"
	echo "  section below, with Caddy and the load on separate cores and many interleaved rounds, is the measurement of record."
	echo "- \`BenchmarkGateDecision\` is the gate's own work for a bearer \`tools/call\` in a session (token seen before);"
	echo "  \`BenchmarkGateDecisionDPoP\` the same with a DPoP-bound token and a fresh proof, whose signature, claims and"
	echo "  \`jti\` are checked on every request (making the proofs is not timed). A token without \`cnf\` costs the bearer path"
	echo "  one nil check: the verified-token cache holds \`cnf\` with the other claims. A DPoP request costs one ES256 signature"
	echo "  check of the proof (compare \`BenchmarkVerifyFirstUse/ES256\`), the parsing of its key and thumbprint, and a"
	echo "  replay-cache insert, with no store round trip; the A/B section's \`dpop_session\` row measures it through Caddy."
	echo
	echo "## Token endpoint store work (testing.B)"
	echo
	echo "\`BenchmarkTokenStore\` (state/throughput_bench_test.go): what a code exchange and a refresh rotation ask of the store"
	echo "(signing aside), per second, from GOMAXPROCS goroutines at once, over Badger with its synced writes and over a real"
	echo "redis-server, with a store for each count, first filled with other users' grants (\`MCP_AUTH_BENCH_GRANTS=\"$grants\"\`);"
	echo "then both operations run at every count in turn, $count times (\`MCP_AUTH_BENCH_ROUNDS=$count\`), so a slow spell of the machine"
	echo "or the compactions that follow the largest fill fall on every count alike: median (min–max) of those rounds."
	echo "Throughput should not depend on the count (target: the last median over the first within 10%)."
	echo
	awk 'NR == 1 {
		printf "| store | operation |"; for (f = 2; f <= NF; f++) printf " %s grants |", $f; printf " %s/%s |\n", $NF, $2
		printf "|---|---|"; for (f = 2; f <= NF + 1; f++) printf "---:|"; print ""
		next
	}
	{ sub(/_/, " ", $2); printf "| %s | %ss/s |", $1, $2; for (f = 3; f < NF; f++) { sub(/_/, " ", $f); printf " %s |", $f }; printf " %s |\n", $NF }' <<<"$store_rates"
	echo
	echo "## Raw output"
	echo
	echo '```'
	grep -h '^Benchmark' "$raw" "$store_raw"
	echo '```'
	if [ -n "$ab_section" ]; then
		echo
		echo "$ab_section"
	fi
} > BENCHMARKS.md
echo "wrote BENCHMARKS.md (gate throughput relative to reverse_proxy: $(tr '\n' ' ' <<<"$ratios"))"
