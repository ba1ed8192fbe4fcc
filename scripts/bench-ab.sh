#!/usr/bin/env bash
# A/B benchmark of the gate against plain reverse_proxy, with an external
# load generator (wrk), and writes the figures into BENCHMARKS.md and a
# latency plot into docs/bench-ab-latency.svg.
#
# One Caddy binary runs two sites on loopback, plain reverse_proxy and
# mcp_auth + reverse_proxy, in front of one trivial backend; a second Caddy
# does the same with its state in a throwaway redis-server. The token is a
# real one, from a login through the consent and login forms. Each gated
# run sits between two plain runs in the same Caddy; its ratio is its
# throughput over the mean of those neighbours. Caddy CPU per request is
# the process's utime+stime over each run divided by its requests.
#
# DPoP traffic is measured with a Go load generator (internal/benchab),
# since wrk cannot sign: each request carries a proof made for it, with a
# fresh jti, which the gate checks (signature, claims, replay). Plain
# reverse_proxy gets the same requests, proofs included, from the same
# generator, so its signing cost falls on both sides alike.
#
# The token endpoint is measured the same way against a Caddy `respond`
# site in the same process, with a Go load generator (internal/benchab),
# for refresh rotations and code exchanges: each connection rotates a
# refresh token family, from its own login, and takes a fresh one before
# the server's bound on a grant's usable access tokens stops it, or
# redeems codes, each from its own login; `respond` gets the same
# requests. Before each /token run, families or codes are made (outside
# the measurement) for half as many requests again as the last run made.
# These rows run fewer, longer rounds ($token_rounds of $token_secs s): a
# run's logins are made before it, and a ratio of a few percent against
# `respond` does not need the gate rows' precision.
#
# Memory is the Badger Caddy's resident set idle, then after a round of
# at least $BENCH_AB_REQUESTS gated requests (those of the runs above
# count) and $BENCH_AB_REGISTRATIONS client registrations, then after
# each of two more rounds as large (flat after warm-up: the last round
# adds nothing but what it stores), against a third Caddy of the same
# binary serving only plain reverse_proxy, idle and after as many
# requests. Each figure is split into private memory (RssAnon) and
# file-backed pages (RssFile: the binary and Badger's memory-mapped files,
# which the kernel may drop), with the Go heap live after a collection,
# read from Caddy's admin endpoint (/debug/pprof/heap?gc=1, then
# /debug/vars).
#
# Usage: scripts/bench-ab.sh [rounds] [seconds per run]   (default 41 and 1)
# Many short rounds: a VM's CPU can be a quarter slower for stretches of
# ten seconds or more, so the three runs of a round, within about 4
# seconds, mostly share one such stretch, and the median over many rounds
# sets the rare round that straddles two aside. With the defaults, and 1
# million requests and 100 thousand registrations for memory, it takes
# about 45 minutes on a 2-core VM; registrations, at a few hundred a second
# on Badger, take most of the memory rounds. For a quick check:
#   BENCH_AB_REQUESTS=20000 BENCH_AB_REGISTRATIONS=500 scripts/bench-ab.sh 1 2
# Needs go, wrk (installed with apt-get if missing) and redis-server (the Redis rows are skipped without it).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-41}
secs=${2:-1}
conns=32
# Connections of the token endpoint rows, each rotating refresh token families.
token_conns=16
token_rounds=9
token_secs=5
mem_requests=${BENCH_AB_REQUESTS:-1000000}
mem_registrations=${BENCH_AB_REGISTRATIONS:-100000}
mem_rounds=3

work=$(mktemp -d)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

if ! command -v wrk >/dev/null; then
	echo "installing wrk" >&2
	if [ "$(id -u)" = 0 ]; then apt-get install -y wrk >/dev/null; else sudo apt-get install -y wrk >/dev/null; fi
fi

go build -o "$work/caddy" ./cmd/caddy
go build -o "$work/benchab" ./internal/benchab

# Caddy runs on the upper half of the CPUs, everything else (this script
# and what it starts: the load generators, the backend, redis-server) on
# the lower half, so Caddy never waits for a core wrk holds and its CPU
# per request is its own work, not contention; Caddy's GOMAXPROCS follows.
on_caddy=()
cpus=$(nproc)
if [ "$cpus" -ge 2 ] && command -v taskset >/dev/null; then
	half=$((cpus / 2))
	load_cpus="0-$((half - 1))" caddy_cpus="$half-$((cpus - 1))"
	taskset -pc "$load_cpus" $$ >/dev/null
	on_caddy=(taskset -c "$caddy_cpus")
	pinning="Caddy on CPUs $caddy_cpus, the load generators, backend and Redis on CPUs $load_cpus"
else
	pinning="not pinned to CPUs (taskset missing or 1 CPU)"
fi
read -r backend_port badger_plain badger_gated redis_plain redis_gated redis_port plain_only badger_respond redis_respond badger_admin plain_admin < <("$work/benchab" ports 11)

"$work/benchab" backend "127.0.0.1:$backend_port" &
pids+=($!)

password="bench-ab password"
# The lowest bcrypt cost: the logins are not measured, and every code
# exchanged takes one, made in the minute a code lives.
hash=$("$work/caddy" hash-password --algorithm bcrypt --bcrypt-cost 4 --plaintext "$password")

# caddyfile <plain port> <gated port> <mcp_auth global storage line> <respond port> <admin address or off>
caddyfile() {
	cat <<CADDY
{
	admin $5
	persist_config off
	storage file_system $work/caddy-$1
	mcp_auth {
		$3
	}
}
http://127.0.0.1:$1 {
	reverse_proxy 127.0.0.1:$backend_port
}
http://127.0.0.1:$2 {
	mcp_auth {
		resource /mcp {
			scopes mcp:tools mcp:search
		}
		tool_scope search mcp:search
		registration {
			rate_limit 1000000
			global_rate_limit 1000000
		}
		upstream users {
			alice $hash
		}
	}
	reverse_proxy 127.0.0.1:$backend_port
}
http://127.0.0.1:$4 {
	respond "ok" 200
}
CADDY
}

# start_caddy <name> <plain port> <gated port> <storage line> <respond port> <admin>: sets caddy_pid.
start_caddy() {
	caddyfile "$2" "$3" "$4" "$5" "$6" >"$work/Caddyfile.$1"
	"${on_caddy[@]}" "$work/caddy" run --adapter caddyfile --config "$work/Caddyfile.$1" >"$work/caddy-$1.log" 2>&1 &
	caddy_pid=$!
	pids+=("$caddy_pid")
	for _ in $(seq 100); do
		curl -fs -o /dev/null "http://127.0.0.1:$3/.well-known/oauth-authorization-server" && return
		sleep 0.1
	done
	echo "caddy ($1) did not start; log:" >&2
	cat "$work/caddy-$1.log" >&2
	exit 1
}

start_caddy badger "$badger_plain" "$badger_gated" "storage_path $work/badger" "$badger_respond" "127.0.0.1:$badger_admin"
badger_pid=$caddy_pid

# Memory: the Badger Caddy's, and that of the same binary serving only
# the plain site, for comparison.
# memory_of <pid> <admin port>: prints "resident private file-backed
# live-heap kept-free" in MiB, kept-free being heap the Go runtime holds
# free, not yet returned to the OS (HeapIdle - HeapReleased): room for the
# next collection cycle's garbage, counted in private memory.
memory_of() {
	curl -fs -o /dev/null "http://127.0.0.1:$2/debug/pprof/heap?gc=1"
	local vars
	vars=$(curl -fs "http://127.0.0.1:$2/debug/vars")
	awk -v heap="$(stat_of HeapAlloc)" -v idle="$(stat_of HeapIdle)" -v released="$(stat_of HeapReleased)" \
		'/^(VmRSS|RssAnon|RssFile):/ { m[$1] = $2 / 1024 }
		END { printf "%.1f %.1f %.1f %.1f %.1f\n", m["VmRSS:"], m["RssAnon:"], m["RssFile:"], heap / 1048576, (idle - released) / 1048576 }' "/proc/$1/status"
}
# stat_of <name>: a memstats figure from $vars, memory_of's /debug/vars.
stat_of() { grep -o "\"$1\": *[0-9]*" <<<"$vars" | grep -o '[0-9]*$'; }
printf '{\n\tadmin 127.0.0.1:%s\n\tpersist_config off\n\tstorage file_system %s/caddy-only\n}\nhttp://127.0.0.1:%s {\n\treverse_proxy 127.0.0.1:%s\n}\n' \
	"$plain_admin" "$work" "$plain_only" "$backend_port" >"$work/Caddyfile.plain"
"${on_caddy[@]}" "$work/caddy" run --adapter caddyfile --config "$work/Caddyfile.plain" >"$work/caddy-plain.log" 2>&1 &
plain_pid=$!
pids+=("$plain_pid")
for _ in $(seq 100); do curl -fs -o /dev/null "http://127.0.0.1:$plain_only/" && break; sleep 0.1; done
sleep 1
# memory: "round gated-requests registrations plain-requests", then
# memory_of the plain Caddy and of the Badger Caddy, then the MiB of
# Badger's files, per round (0: idle).
memory_line() {
	echo "$* $(memory_of "$plain_pid" "$plain_admin") $(memory_of "$badger_pid" "$badger_admin") $(du -sk "$work/badger" | awk '{ printf "%.1f", $1 / 1024 }')" >>"$work/memory"
}
memory_line 0 0 0 0

redis_pid=
if command -v redis-server >/dev/null; then
	redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
	pids+=($!)
	for _ in $(seq 50); do redis-cli -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
	start_caddy redis "$redis_plain" "$redis_gated" "redis redis://127.0.0.1:$redis_port/0" "$redis_respond" off
	redis_pid=$caddy_pid
else
	echo "redis-server not found: skipping the Redis rows" >&2
fi

# The logins, once every server is up.
badger_token=$("$work/benchab" login "http://127.0.0.1:$badger_gated" alice "$password")
"$work/benchab" dpop-login "http://127.0.0.1:$badger_gated" alice "$password" >"$work/dpop.badger"
"$work/benchab" families "http://127.0.0.1:$badger_gated" alice "$password" "$work/families.badger" 0 "$token_conns"
"$work/benchab" codes "http://127.0.0.1:$badger_gated" alice "$password" "$work/codes.badger" "$token_conns"
if [ -n "$redis_pid" ]; then
	redis_token=$("$work/benchab" login "http://127.0.0.1:$redis_gated" alice "$password")
	"$work/benchab" families "http://127.0.0.1:$redis_gated" alice "$password" "$work/families.redis" 0 "$token_conns"
	"$work/benchab" codes "http://127.0.0.1:$redis_gated" alice "$password" "$work/codes.redis" "$token_conns"
fi

session=4f1d2c9e-6b7a-4d3e-9a8b-0c1d2e3f4a5b
ping='{"jsonrpc":"2.0","id":2,"method":"ping"}'
tools_call='{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"search","arguments":{"query":"caddy mcp auth","limit":10}}}'

# lua <file> <token> <session> <body>: the wrk script of one request shape.
# Plain reverse_proxy gets the same request, Authorization header included.
lua() {
	{
		echo 'wrk.method = "POST"'
		echo "wrk.body = [[$4]]"
		echo 'wrk.headers["Content-Type"] = "application/json"'
		echo "wrk.headers[\"Authorization\"] = \"Bearer $2\""
		[ -z "$3" ] || echo "wrk.headers[\"Mcp-Session-Id\"] = \"$3\""
	} >"$1"
}

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }
clk_tck=$(getconf CLK_TCK)

# run <pid> <conns> <url> <lua>: one wrk run; prints
# "requests req/s cpu-µs-per-request p50 p75 p90 p99" (latencies in µs).
run() {
	local before after out
	before=$(cpu_ticks "$1")
	out=$(wrk -t "$(( $2 < 2 ? 1 : 2 ))" -c "$2" -d "${secs}s" --latency -s "$4" "$3")
	after=$(cpu_ticks "$1")
	if grep -q 'Non-2xx\|Socket errors' <<<"$out"; then
		echo "errors in a run against $3:" >&2
		echo "$out" >&2
		exit 1
	fi
	awk -v cpu=$((after - before)) -v hz="$clk_tck" '
		function us(v) {
			if (v ~ /us$/) return v + 0
			if (v ~ /ms$/) return v * 1000
			if (v ~ /s$/) return v * 1000000
			return v
		}
		/requests in/ { n = $1 }
		/Requests\/sec/ { rps = $2 }
		/^ +50%/ { p50 = us($2) } /^ +75%/ { p75 = us($2) } /^ +90%/ { p90 = us($2) } /^ +99%/ { p99 = us($2) }
		END { printf "%d %.1f %.2f %.1f %.1f %.1f %.1f\n", n, rps, cpu / hz * 1e6 / n, p50, p75, p90, p99 }' <<<"$out"
}

# run_token <pid> <conns> <url> <families or codes file>: one run of the Go
# load generator at a /token URL, rotating the families' refresh tokens or
# redeeming the codes, or sending the same requests to another URL; prints
# what run prints. Before a /token run, the file gets families or codes for
# 1.5 times the requests of the last one (at first, 2000 a second); at most
# max_codes codes, as many as are made well within their minute. A run
# that uses them all (the rate jumped) ends early, and its rate is over
# its own length.
max_codes=4000
run_token() {
	local before after out n rps p50 p75 p90 p99 mode=replay want
	if [[ $3 == */token ]]; then
		want=$(awk -v r="$(cat "$4.rate" 2>/dev/null || echo 2000)" -v s="$secs" 'BEGIN { printf "%d", r * s * 1.5 }')
		if [[ $4 == */codes.* ]]; then
			mode=exchange
			"$work/benchab" codes "${3%/token}" alice "$password" "$4" "$(( want < max_codes ? want : max_codes ))" || exit 1
		else
			mode=refresh
			"$work/benchab" families "${3%/token}" alice "$password" "$4" "$want" "$2" || exit 1
		fi
	fi
	before=$(cpu_ticks "$1")
	out=$("$work/benchab" "$mode" "$4" "$3" "$secs" "$2") || exit 1
	after=$(cpu_ticks "$1")
	[ "$mode" = replay ] || awk '{ print $2 }' <<<"$out" >"$4.rate"
	read -r n rps p50 p75 p90 p99 <<<"$out"
	awk -v n="$n" -v cpu=$((after - before)) -v hz="$clk_tck" -v rps="$rps" -v lat="$p50 $p75 $p90 $p99" \
		'BEGIN { printf "%d %.1f %.2f %s\n", n, rps, cpu / hz * 1e6 / n, lat }'
}

# run_dpop <pid> <conns> <url> <dpop file>: one run of the Go load
# generator sending DPoP-bound pings with fresh proofs; prints what run prints.
run_dpop() {
	local before after out n rps p50 p75 p90 p99
	before=$(cpu_ticks "$1")
	out=$("$work/benchab" dpop "$4" "$3" "$secs" "$2") || exit 1
	after=$(cpu_ticks "$1")
	read -r n rps p50 p75 p90 p99 <<<"$out"
	awk -v n="$n" -v cpu=$((after - before)) -v hz="$clk_tck" -v rest="$rps" -v lat="$p50 $p75 $p90 $p99" \
		'BEGIN { printf "%d %.1f %.2f %s\n", n, rest, cpu / hz * 1e6 / n, lat }'
}

results="$work/results"
# ab <row> <pid> <conns> <plain url> <gated url> <script> [runner]: plain,
# then rounds of gated + plain, each run by runner (default run); records
# "row round ratio cpu_plain cpu_gated p50..p99 plain p50..p99 gated
# cpu_added": cpu_added is gated minus the mean of its neighbours, paired
# within the round so slow drifts of the machine cancel. The throughputs
# go to rates as "row round gated plain-mean".
ab() {
	local row=$1 pid=$2 c=$3 plain=$4 gated=$5 script=$6 runner=${7:-run} prev cur g r
	echo "== $row" >&2
	prev=$($runner "$pid" "$c" "$plain" "$script")
	for r in $(seq "$rounds"); do
		g=$($runner "$pid" "$c" "$gated" "$script")
		echo "$row ${g%% *}" >>"$work/requests"
		cur=$($runner "$pid" "$c" "$plain" "$script")
		read -r _ prps pcpu p50 p75 p90 p99 <<<"$prev"
		read -r _ crps ccpu _ <<<"$cur"
		read -r _ grps gcpu g50 g75 g90 g99 <<<"$g"
		awk -v row="$row" -v r="$r" -v p="$prps" -v c="$crps" -v g="$grps" -v pc="$pcpu" -v cc="$ccpu" -v gc="$gcpu" \
			-v pl="$p50 $p75 $p90 $p99" -v gl="$g50 $g75 $g90 $g99" \
			'BEGIN { printf "%s %d %.3f %.2f %.2f %s %s %.2f\n", row, r, g / ((p + c) / 2), (pc + cc) / 2, gc, pl, gl, gc - (pc + cc) / 2 }' | tee -a "$results" >&2
		echo "$row $r $grps $(awk -v p="$prps" -v c="$crps" 'BEGIN { printf "%.1f", (p + c) / 2 }')" >>"$work/rates"
		prev=$cur
	done
}

lua "$work/no_session.lua" "$badger_token" "" "$ping"
lua "$work/session.lua" "$badger_token" "$session" "$ping"
lua "$work/tools_call.lua" "$badger_token" "$session" "$tools_call"
b_plain="http://127.0.0.1:$badger_plain/mcp" b_gated="http://127.0.0.1:$badger_gated/mcp"
ab no_session "$badger_pid" "$conns" "$b_plain" "$b_gated" "$work/no_session.lua"
ab session "$badger_pid" "$conns" "$b_plain" "$b_gated" "$work/session.lua"
ab tools_call "$badger_pid" "$conns" "$b_plain" "$b_gated" "$work/tools_call.lua"
if [ -n "$redis_pid" ]; then
	lua "$work/redis.lua" "$redis_token" "$session" "$ping"
	ab redis_session "$redis_pid" "$conns" "http://127.0.0.1:$redis_plain/mcp" "http://127.0.0.1:$redis_gated/mcp" "$work/redis.lua"
fi
ab dpop_session "$badger_pid" "$conns" "$b_plain" "$b_gated" "$work/dpop.badger" run_dpop
ab latency_1conn "$badger_pid" 1 "$b_plain" "$b_gated" "$work/session.lua"

# The token endpoint: refresh rotations and code exchanges against respond
# in the same Caddy, each ab call with its own rounds and run length.
token_ab() { rounds=$token_rounds secs=$token_secs ab "$@"; }
token_ab token_refresh_badger "$badger_pid" "$token_conns" "http://127.0.0.1:$badger_respond/" "http://127.0.0.1:$badger_gated/token" "$work/families.badger" run_token
token_ab token_code_badger "$badger_pid" "$token_conns" "http://127.0.0.1:$badger_respond/" "http://127.0.0.1:$badger_gated/token" "$work/codes.badger" run_token
if [ -n "$redis_pid" ]; then
	token_ab token_refresh_redis "$redis_pid" "$token_conns" "http://127.0.0.1:$redis_respond/" "http://127.0.0.1:$redis_gated/token" "$work/families.redis" run_token
	token_ab token_code_redis "$redis_pid" "$token_conns" "http://127.0.0.1:$redis_respond/" "http://127.0.0.1:$redis_gated/token" "$work/codes.redis" run_token
fi

# send <url> <n>: at least n requests of session.lua's shape, in wrk runs
# sized by the rate of the one before, of at most 30 s: the rate changes
# when the concurrent registrations end, and a long run would then
# overshoot; prints how many were sent.
send() {
	local sent=0 secs=5 out n
	while [ "$sent" -lt "$2" ]; do
		out=$(wrk -t 2 -c "$conns" -d "${secs}s" -s "$work/session.lua" "$1")
		if grep -q 'Non-2xx\|Socket errors' <<<"$out" || ! n=$(awk '/requests in/ && $1 > 0 { print $1; ok = 1 } END { exit !ok }' <<<"$out"); then
			echo "errors in a run against $1:" >&2
			echo "$out" >&2
			return 1
		fi
		sent=$((sent + n))
		secs=$(( (($2 - sent) * secs + n - 1) / n + 1 ))
		secs=$(( secs < 30 ? secs : 30 ))
	done
	echo "$sent"
}

# memory_round <round> <gated requests already sent>: at once, gated
# requests to the Badger Caddy until mem_requests have been sent (counting
# those already sent), mem_registrations registrations with it, and as
# many plain requests to the plain-only Caddy as the Badger one will have
# had; then the resident sets.
memory_round() {
	local need=$(( mem_requests > $2 ? mem_requests - $2 : 0 )) gated registered plain
	echo "== memory round $1: $need gated requests and $mem_registrations registrations; $(( need + $2 )) plain requests" >&2
	send "$b_gated" "$need" >"$work/sent.gated" &
	gated=$!
	"$work/benchab" register "http://127.0.0.1:$badger_gated" "$mem_registrations" "$conns" >"$work/registered" &
	registered=$!
	send "http://127.0.0.1:$plain_only/mcp" "$(( need + $2 ))" >"$work/sent.plain" &
	plain=$!
	wait "$gated"
	wait "$registered"
	wait "$plain"
	memory_line "$1" "$(cat "$work/sent.gated")" "$(cut -d' ' -f1 "$work/registered")" "$(cat "$work/sent.plain")"
}
gated_requests=$(awk '$1 != "redis_session" && $1 !~ /^token_/ { n += $NF } END { print n + 0 }' "$work/requests")
memory_round 1 "$gated_requests"
for r in $(seq 2 "$mem_rounds"); do memory_round "$r" 0; done

# Per row: median and range of the ratio, median CPU µs/request, median latencies.
summary=$(awk '
	function median(key, n,   a, i, j, t) {
		for (i = 1; i <= n; i++) a[i] = v[key, i]
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
		lo[key] = a[1]; hi[key] = a[n]
		return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
	}
	{
		if (!($1 in n)) order[++k] = $1
		i = ++n[$1]
		for (f = 3; f <= NF; f++) v[$1 SUBSEP f, i] = $f
	}
	END {
		for (x = 1; x <= k; x++) {
			row = order[x]; c = n[row]; line = row
			for (f = 3; f <= 14; f++) line = line " " median(row SUBSEP f, c)
			printf "%s %s %s\n", line, lo[row SUBSEP 3], hi[row SUBSEP 3]
		}
	}' "$results")
# summary fields: row ratio cpu_plain cpu_gated p50 p75 p90 p99 (plain) p50 p75 p90 p99 (gated) cpu_added ratio_min ratio_max

awk '$1 == "latency_1conn" { print "plain", $5, $6, $7, $8; print "mcp_auth", $9, $10, $11, $12 }' <<<"$summary" |
	"$work/benchab" svg "1 connection, POST with Mcp-Session-Id, Badger: latency (median of $rounds runs)" >docs/bench-ab-latency.svg

section=$(
	echo "## A/B against plain reverse_proxy (wrk)"
	echo
	echo "Written by \`scripts/bench-ab.sh $rounds $secs\` on $(date -u +%Y-%m-%d) ($(go version | cut -d' ' -f3), $cpus cores, $(awk -F': ' '/model name/ {print $2; exit}' /proc/cpuinfo), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2), $(redis-server --version 2>/dev/null | cut -d' ' -f1-3))."
	echo "wrk, HTTP/1.1 keep-alive, $conns connections (2 threads), ${secs} s per run, a trivial Go backend, a token from a real login; $pinning;"
	echo "each gated run is between two plain reverse_proxy runs in the same Caddy and its ratio is its throughput over their mean;"
	echo "$rounds interleaved rounds, median (min–max). CPU is Caddy's utime+stime per request, median over the rounds;"
	echo "*added* is the median of each round's gated CPU minus its neighbours' mean."
	echo
	echo "| traffic | throughput ratio | target | CPU µs/req plain | CPU µs/req gated | added | target |"
	echo "|---|---|---|---:|---:|---:|---|"
	awk '
		BEGIN {
			name["no_session"] = "POST, no `Mcp-Session-Id`, Badger"; target["no_session"] = "≥ 0.98"
			name["session"] = "POST with `Mcp-Session-Id`, Badger"; target["session"] = "≥ 0.97"
			name["tools_call"] = "`tools/call` body with `tool_scope`, with session, Badger"; target["tools_call"] = "≥ 0.95"
			name["redis_session"] = "with session, Redis store"; target["redis_session"] = "≥ 0.95"
			name["dpop_session"] = "DPoP-bound token, a fresh proof per request (Go load generator), with session, Badger"; target["dpop_session"] = "report"
		}
		$1 in name { printf "| %s | %.2f (%.2f–%.2f) | %s | %.1f | %.1f | %+.1f | %s |\n", name[$1], $2, $14, $15, target[$1], $3, $4, $13, $1 == "dpop_session" ? "report" : "≤ +5 µs" }' <<<"$summary"
	echo
	awk '$1 != "latency_1conn" && $1 !~ /^token_/ { if (lo == "" || $4 < lo) lo = $4; if ($4 > hi) hi = $4 }
		END { printf "Noise: plain reverse_proxy alone, same request shapes, ranged from %.0f to %.0f µs of CPU per request over these runs; compare each row with the spread of its ratio.\n", lo, hi }' "$results"
	echo
	echo "1 connection, POST with \`Mcp-Session-Id\`, Badger (target: p50 ≤ +20 µs, p99 ≤ +60 µs):"
	echo
	echo "| | p50 µs | p75 µs | p90 µs | p99 µs |"
	echo "|---|---:|---:|---:|---:|"
	awk '$1 == "latency_1conn" {
		printf "| plain reverse_proxy | %.0f | %.0f | %.0f | %.0f |\n", $5, $6, $7, $8
		printf "| mcp_auth + reverse_proxy | %.0f | %.0f | %.0f | %.0f |\n", $9, $10, $11, $12
		printf "| added | %+.0f | %+.0f | %+.0f | %+.0f |\n", $9 - $5, $10 - $6, $11 - $7, $12 - $8 }' <<<"$summary"
	echo
	echo "![latency percentiles, 1 connection](docs/bench-ab-latency.svg)"
	echo
	if grep -q '^token_' "$results"; then
		echo "Token endpoint, with the Go load generator (\`benchab refresh\`, \`benchab exchange\`), $token_conns connections: refresh"
		echo "token rotations, each connection rotating refresh token families (each from its own login), and code exchanges, each"
		echo "code from its own login (logins are made before the run, outside the measurement); each run between two runs of Caddy"
		echo "\`respond\` in the same process getting the same requests; median (min–max) of $token_rounds rounds of $token_secs s. Badger writes"
		echo "are synced. A client rotates about once per access token lifetime (1 hour); here each family rotates many times a"
		echo "second, 31 times, and then its connection takes a fresh one: a grant keeps at most 32 usable access tokens, the"
		echo "login's included, and refuses a refresh beyond that until the oldest expires. Each rotation reads and writes a grant's"
		echo "record that lists up to 32 token IDs, where a real client's lists one or two: these rotation figures are a lower bound."
		echo "Codes live a minute, so a code run gets at most $max_codes, as many as are made well within it, and ends early when they are"
		echo "used up; its rate is over its own length. The store work of both grants, with 1 thousand to 1 million stored grants,"
		echo "is in the testing.B table above."
		echo
		echo "| grant, store | /token requests/s | \`respond\` requests/s | ratio | CPU µs/req \`respond\` | CPU µs/req /token | p50 µs | p99 µs |"
		echo "|---|---:|---:|---|---:|---:|---:|---:|"
		awk '
			function median(a, n,   i, j, t) {
				for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (a[j] < a[i]) { t = a[i]; a[i] = a[j]; a[j] = t }
				return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
			}
			FNR == 1 { file++ }
			file == 1 && $1 ~ /^token_/ { i = ++n[$1]; g[$1, i] = $3; p[$1, i] = $4 }
			file == 2 && $1 ~ /^token_/ {
				for (i = 1; i <= n[$1]; i++) { gs[i] = g[$1, i]; ps[i] = p[$1, i] }
				split($1, w, "_")
				printf "| %s, %s | %.0f | %.0f | %.3f (%.3f–%.3f) | %.1f | %.1f | %.0f | %.0f |\n", w[2] == "code" ? "authorization code" : "refresh token", w[3], median(gs, n[$1]), median(ps, n[$1]), $2, $14, $15, $3, $4, $9, $12
			}' "$work/rates" - <<<"$summary"
		echo
	fi
	echo "Memory (target: ≤ +30 MiB idle, flat after warm-up). Each round sends, at once, gated requests (POST with"
	echo "\`Mcp-Session-Id\`) to the Badger Caddy, registers clients with it over $conns connections, and sends as many plain requests"
	echo "to a Caddy serving only plain reverse_proxy; the first round counts the gated requests of the runs above. Resident is"
	echo "VmRSS; it is private memory (RssAnon) plus file-backed pages (RssFile: the binary, and Badger's memory-mapped tables and"
	echo "value log, which grow with what is stored and which the kernel drops under pressure). The live heap is Go's after a"
	echo "collection; kept free is heap the Go runtime holds free for the garbage of its next cycle, not yet returned to the OS"
	echo "(HeapIdle − HeapReleased), part of private memory."
	echo
	echo "| | resident, plain only | resident, mcp_auth (Badger) | added | private, plain / mcp_auth | file-backed, plain / mcp_auth | live heap, plain / mcp_auth | heap kept free, plain / mcp_auth | Badger files |"
	echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
	# Fields: round, gated requests, registrations, plain requests; plain
	# Caddy's resident, private, file-backed, live heap, kept free ($5-$9);
	# the Badger Caddy's ($10-$14); Badger's files ($15).
	awk -v before="$gated_requests" '
		function row(what) { printf "| %s | %.1f MiB | %.1f MiB | %+.1f MiB | %.1f / %.1f MiB | %.1f / %.1f MiB | %.1f / %.1f MiB | %.1f / %.1f MiB | %.1f MiB |\n", what, $5, $10, $10 - $5, $6, $11, $7, $12, $8, $13, $9, $14, $15 }
		$1 == 0 { row("idle") }
		$1 == 1 { row(sprintf("round 1: after %d gated requests in all and %d registrations (plain: %d requests)", before + $2, $3, $4)) }
		$1 >= 2 { row(sprintf("round %d: after %d more gated requests and %d more registrations (plain: %d more requests)", $1, $2, $3, $4)) }
		{ for (i = 5; i <= 15; i++) { d[i] = $i - last[i]; last[i] = $i } }
		$1 >= 2 { printf "| growth in round %d | %+.1f MiB | %+.1f MiB | | %+.1f / %+.1f MiB | %+.1f / %+.1f MiB | %+.1f / %+.1f MiB | %+.1f / %+.1f MiB | %+.1f MiB |\n", $1, d[5], d[10], d[6], d[11], d[7], d[12], d[8], d[13], d[9], d[14], d[15] }' "$work/memory"
	echo
	echo "Per round (row, round, ratio, CPU µs/req plain and gated, p50 p75 p90 p99 µs plain, then gated, CPU µs/req added):"
	echo
	echo '```'
	cat "$results"
	echo '```'
)

# Replace the previous A/B section (it runs to the end of the file), keep the rest.
{
	[ -f BENCHMARKS.md ] && awk '/^## A\/B against plain reverse_proxy/ { exit } /^$/ { blank++; next } { for (; blank; blank--) print ""; print }' BENCHMARKS.md
	echo
	echo "$section"
} >"$work/BENCHMARKS.md"
mv "$work/BENCHMARKS.md" BENCHMARKS.md
echo "wrote BENCHMARKS.md and docs/bench-ab-latency.svg" >&2
