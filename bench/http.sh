#!/usr/bin/env bash
# bench/http.sh: eddy's HTTP service against nginx, the floor (bench/floor.c,
# the cheapest epoll loop: this machine's syscall limit) and tutorial 000's
# Python epoll server, on 127.0.0.1 only, each server pinned to one CPU and
# the load generator to the other.
#
#   bench/http.sh                     # about 2-3 minutes
#   DURATION=5 ROUNDS=1 bench/http.sh # quicker, noisier
#   OUT=results.md bench/http.sh      # also write the table as markdown
#
# Environment (defaults in brackets):
#   DURATION  seconds per wrk run [$BENCH_SECONDS, else 8]
#   ROUNDS    repetitions of every run [3]
#   CONNS     wrk connections [100]          DEPTH   requests per pipelined write [16]
#   AB_N      requests per ab run [20000]    AB_C    ab concurrency [50]
#   SERVER_CPU / CLIENT_CPU  CPUs for the servers / for wrk and ab [0 / 1]
#   OUT       optional markdown file for the table
#   RESULTS   optional file that gets the medians as tab-separated lines
#             (bench/run.sh collects them for docs/benchmarks.md)
#
# Modes:
#   keep-alive    wrk -t1 -c$CONNS: one request in flight per connection
#   pipelined     the same with bench/pipeline.lua: $DEPTH requests per write
#   conn/request  ab -n $AB_N -c $AB_C without -k: HTTP/1.0, a new TCP
#                 connection for every request (accept + close dominate)
# The Python server (bench/peers/seed000_http.py) answers one request per
# connection and then shuts the connection down, so only conn/request makes
# sense for it; it is not driven with wrk.
#
# Figures: requests/s as the client reports it, and the server's own CPU time
# (utime + stime from /proc/PID/stat, before and after the run) divided by the
# requests completed, also split into user time (the server's code) and
# system time (the kernel's, for its system calls). Each figure is the median over ROUNDS; the machine is
# shared and noisy, so only the ratios between servers measured in the same
# run mean anything, never the absolute numbers.
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-${BENCH_SECONDS:-8}}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-100}
DEPTH=${DEPTH:-16}
AB_N=${AB_N:-20000}
AB_C=${AB_C:-50}
OUT=${OUT:-}
WARNINGS=()

"$ROOT/scripts/ensure-deps" bench || die "tools are missing (above)"
need_tools wrk ab nginx taskset
[ -x "$PYTHON" ] || die "$PYTHON is needed for the tutorial's server"
build_bench

# --- servers ---------------------------------------------------------------

SERVERS=(eddy nginx floor python)
for s in "${SERVERS[@]}"; do start_http "$s"; done
declare -A RPS=() CPU=() USR=() SYS=() SRV=() CLI=()

echo "bench: eddy :${PORT[eddy]}  nginx :${PORT[nginx]}  floor :${PORT[floor]}  python :${PORT[python]}  (servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU)"
echo "bench: DURATION=${DURATION}s ROUNDS=$ROUNDS CONNS=$CONNS DEPTH=$DEPTH AB_N=$AB_N AB_C=$AB_C CLK_TCK=$TICK"

warn() {
    WARNINGS+=("$1")
    echo "WARNING: $1" >&2
}

# "busy total" jiffies of one CPU from /proc/stat. Busy counts user, nice,
# system, irq and softirq time: on loopback much of TCP's receive work runs
# as softirq, which /proc/PID/stat does not charge to any process.
cpu_jiffies() {
    awk -v c="cpu$1" '$1 == c { b = $2 + $3 + $4 + $7 + $8; print b, b + $5 + $6 + $9 }' /proc/stat
}
snapshot() { echo "$(cpu_jiffies "$SERVER_CPU") $(cpu_jiffies "$CLIENT_CPU")"; }

# Records one run: requests/s, µs of the server's CPU time per request (all,
# user, system), and how busy each CPU was. A client CPU near 100% with the
# server's CPU well below means the single-threaded client set the pace: req/s
# then measures the client, and only µs CPU/req compares the servers.
# $5 and $6 are the server's "user sys" ticks before and after the run, $7
# and $8 the CPU snapshots.
record() {
    local server=$1 mode=$2 rps=$3 requests=$4 us us_u us_s srv cli c0 c1 s0 s1
    read -r -a c0 <<<"$5"
    read -r -a c1 <<<"$6"
    read -r -a s0 <<<"$7"
    read -r -a s1 <<<"$8"
    us_u=$(per_us $((c1[0] - c0[0])) "$requests")
    us_s=$(per_us $((c1[1] - c0[1])) "$requests")
    us=$(per_us $((c1[0] + c1[1] - c0[0] - c0[1])) "$requests")
    srv=$(awk -v b=$((s1[0] - s0[0])) -v t=$((s1[1] - s0[1])) 'BEGIN { printf "%.0f", (t > 0) ? 100 * b / t : 0 }')
    cli=$(awk -v b=$((s1[2] - s0[2])) -v t=$((s1[3] - s0[3])) 'BEGIN { printf "%.0f", (t > 0) ? 100 * b / t : 0 }')
    RPS[$server|$mode]+="$rps "
    CPU[$server|$mode]+="$us "
    USR[$server|$mode]+="$us_u "
    SYS[$server|$mode]+="$us_s "
    SRV[$server|$mode]+="$srv "
    CLI[$server|$mode]+="$cli "
    printf '  %-6s %-12s %10.0f req/s %8s µs CPU/req (%s user, %s sys)  CPU busy: server %3s%% client %3s%%  (%d requests)\n' \
        "$server" "$mode" "$rps" "$us" "$us_u" "$us_s" "$srv" "$cli" "$requests"
}

# wrk against one server; $2 is keep-alive or pipelined.
run_wrk() {
    local server=$1 mode=$2 before after s0 s1 out="$TMP/wrk.out" rc=0
    s0=$(snapshot)
    before=$(cpu_user_sys "${PID[$server]}")
    wrk_run "$out" "${PORT[$server]}" "$mode" "$DURATION" || rc=$?
    after=$(cpu_user_sys "${PID[$server]}")
    s1=$(snapshot)
    alive "$server"
    if [ "$rc" -ne 0 ]; then
        warn "$server $mode: wrk exited with status $rc: $(tr '\n' ' ' <"$out")"
        return
    fi
    local requests rps
    requests=$(client_figure "$out" requests)
    rps=$(client_figure "$out" rps)
    if grep -q 'Socket errors' "$out"; then
        warn "$server $mode: wrk $(grep 'Socket errors' "$out" | sed 's/^ *//')"
    fi
    if grep -q 'Non-2xx' "$out"; then
        warn "$server $mode: wrk $(grep 'Non-2xx' "$out" | sed 's/^ *//')"
    fi
    record "$server" "$mode" "$rps" "$requests" "$before" "$after" "$s0" "$s1"
}

# ab without -k: a new connection per request.
run_ab() {
    local server=$1 before after s0 s1 out="$TMP/ab.out" rc=0
    s0=$(snapshot)
    before=$(cpu_user_sys "${PID[$server]}")
    ab_run "$out" "${PORT[$server]}" "$AB_N" || rc=$?
    after=$(cpu_user_sys "${PID[$server]}")
    s1=$(snapshot)
    alive "$server"
    if [ "$rc" -ne 0 ]; then
        warn "$server conn/request: ab exited with status $rc: $(tail -n 3 "$out" | tr '\n' ' ')"
        return
    fi
    local requests rps failed non2xx
    requests=$(client_figure "$out" requests)
    rps=$(client_figure "$out" rps)
    failed=$(client_figure "$out" failed)
    non2xx=$(client_figure "$out" non2xx)
    [ "${failed:-0}" -eq 0 ] || warn "$server conn/request: ab reports $failed failed requests ($(grep -A3 '^Failed requests' "$out" | tail -n +2 | tr -s ' \n' ' '))"
    [ "${non2xx:-0}" -eq 0 ] || warn "$server conn/request: ab reports $non2xx non-2xx responses"
    record "$server" conn/request "$rps" "$requests" "$before" "$after" "$s0" "$s1"
}

# --- runs ------------------------------------------------------------------

echo "bench: warming up"
for s in eddy nginx floor; do
    run_client "$TMP/warm.out" wrk -t1 -c"$CONNS" -d1s "http://127.0.0.1:${PORT[$s]}/" || true
done
run_client "$TMP/warm.out" ab -q -n 1000 -c 10 "http://127.0.0.1:${PORT[python]}/" || true

for ((round = 1; round <= ROUNDS; round++)); do
    # Alternate who goes first, so a drift in the machine's load does not
    # always favour the same server.
    if ((round % 2)); then order=(eddy nginx floor); else order=(floor nginx eddy); fi
    echo "round $round/$ROUNDS"
    for mode in keep-alive pipelined; do
        for s in "${order[@]}"; do run_wrk "$s" "$mode"; done
    done
    # The floor never closes a connection, so ab (HTTP/1.0, reads to EOF)
    # cannot drive it: conn/request does not apply to it.
    for s in "${order[@]}" python; do [ "$s" = floor ] || run_ab "$s"; done
done

# --- table -----------------------------------------------------------------

MODES=(keep-alive pipelined conn/request)
declare -A MODE_DESC=(
    [keep-alive]="keep-alive (wrk -c$CONNS)"
    [pipelined]="pipelined x$DEPTH (wrk -c$CONNS)"
    [conn/request]="conn/request (ab -c$AB_C)"
)
HEAD=(server mode "req/s" "µs CPU/req" "µs user/sys" "CPU busy srv/cli" "eddy/nginx req/s" "eddy/nginx CPU" "eddy/floor CPU" "eddy/python req/s" "eddy/python CPU")
ROWS=()
for mode in "${MODES[@]}"; do
    declare -A med_r=() med_c=() med_u=() med_s=() med_b=() med_k=()
    for s in eddy nginx floor python; do
        med_r[$s]=$(median "${RPS[$s|$mode]:-}")
        med_c[$s]=$(median "${CPU[$s|$mode]:-}")
        med_u[$s]=$(median "${USR[$s|$mode]:-}")
        med_s[$s]=$(median "${SYS[$s|$mode]:-}")
        med_b[$s]=$(median "${SRV[$s|$mode]:-}")
        med_k[$s]=$(median "${CLI[$s|$mode]:-}")
    done
    for s in eddy nginx floor python; do
        if { [ "$s" = python ] && [ "$mode" != conn/request ]; } || { [ "$s" = floor ] && [ "$mode" = conn/request ]; }; then
            ROWS+=("$s|${MODE_DESC[$mode]}|n/a|n/a|n/a|n/a|-|-|-|-|-")
            continue
        fi
        if [ -n "${med_r[$s]}" ]; then
            result http "$s" "$mode" rps "${med_r[$s]}"
            result http "$s" "$mode" us_per_req "${med_c[$s]}"
            result http "$s" "$mode" us_user_per_req "${med_u[$s]}"
            result http "$s" "$mode" us_sys_per_req "${med_s[$s]}"
            result http "$s" "$mode" server_busy "${med_b[$s]}"
            result http "$s" "$mode" client_busy "${med_k[$s]}"
        fi
        r=${med_r[$s]} c=${med_c[$s]} b=${med_b[$s]} us="${med_u[$s]}/${med_s[$s]}"
        [ -n "$r" ] && r=$(printf '%.0f' "$r") || r="failed"
        [ -n "$c" ] || c="failed" us="-"
        [ -n "$b" ] && b=$(printf '%.0f%%/%.0f%%' "$b" "${med_k[$s]}") || b="-"
        if [ "$s" = eddy ]; then
            en_r=$(ratio "${med_r[eddy]}" "${med_r[nginx]}")
            en_c=$(ratio "${med_c[eddy]}" "${med_c[nginx]}")
            ef_c=$(ratio "${med_c[eddy]}" "${med_c[floor]:-}")
            ep_r=$(ratio "${med_r[eddy]}" "${med_r[python]}")
            ep_c=$(ratio "${med_c[eddy]}" "${med_c[python]}")
            ROWS+=("eddy|${MODE_DESC[$mode]}|$r|$c|$us|$b|$en_r|$en_c|$ef_c|$ep_r|$ep_c")
        else
            ROWS+=("$s|${MODE_DESC[$mode]}|$r|$c|$us|$b|-|-|-|-|-")
        fi
    done
    unset med_r med_c med_u med_s med_b med_k
done

NOTES=(
    "Median of $ROUNDS round(s); wrk runs ${DURATION}s each, ab runs -n $AB_N without -k (HTTP/1.0, a new connection per request)."
    "Servers pinned to CPU $SERVER_CPU, wrk/ab to CPU $CLIENT_CPU, all on 127.0.0.1. µs CPU/req = server utime+stime (/proc/PID/stat) / requests completed; µs user/sys splits it into utime (the server's code) and stime (the kernel's work for its system calls), each the median of its own."
    "Ratios: req/s above 1 means eddy serves more; CPU below 1 means eddy spends less per request."
    "CPU busy srv/cli = how busy the server's CPU and the client's CPU were (user+system+irq+softirq from /proc/stat). A client near 100% with the server well below means the single-threaded client (wrk or ab) set the pace: req/s then measures the client, and µs CPU/req is the figure that compares the servers. µs CPU/req leaves out softirq time (loopback TCP receive work), which no process is charged for."
    "floor = bench/floor.c, the cheapest epoll loop that keeps wrk happy (read, count request ends, write fixed responses; no parsing): this machine's syscall limit. It never closes a connection, so ab cannot drive it (n/a in conn/request)."
    "python = tutorial 000's epoll server (bench/peers/seed000_http.py, prints removed). It answers one request per connection and closes, so keep-alive and pipelining do not apply to it (n/a): it is measured in conn/request mode only."
)

print_table() {
    local widths=() i row cells line
    for ((i = 0; i < ${#HEAD[@]}; i++)); do widths[i]=${#HEAD[i]}; done
    for row in "${ROWS[@]}"; do
        IFS='|' read -r -a cells <<<"$row"
        for ((i = 0; i < ${#cells[@]}; i++)); do
            ((${#cells[i]} > widths[i])) && widths[i]=${#cells[i]}
        done
    done
    line=""
    for ((i = 0; i < ${#HEAD[@]}; i++)); do line+=$(printf '%-*s  ' "${widths[i]}" "${HEAD[i]}"); done
    echo "$line"
    line=""
    for ((i = 0; i < ${#HEAD[@]}; i++)); do line+=$(printf '%*s  ' "${widths[i]}" '' | tr ' ' '-'); done
    echo "$line"
    for row in "${ROWS[@]}"; do
        IFS='|' read -r -a cells <<<"$row"
        line=""
        for ((i = 0; i < ${#cells[@]}; i++)); do
            if ((i < 2)); then line+=$(printf '%-*s  ' "${widths[i]}" "${cells[i]}")
            else line+=$(printf '%*s  ' "${widths[i]}" "${cells[i]}"); fi
        done
        echo "$line"
    done
}

print_markdown() {
    local row
    echo "## eddy HTTP benchmark ($(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -r), $(nproc) CPUs)"
    echo
    printf '| %s ' "${HEAD[@]}"
    echo '|'
    echo "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    for row in "${ROWS[@]}"; do
        echo "| ${row//|/ | } |"
    done
    echo
    for n in "${NOTES[@]}"; do echo "- $n"; done
    for w in "${WARNINGS[@]}"; do echo "- **warning**: $w"; done
}

echo
print_table
echo
for n in "${NOTES[@]}"; do echo "note: $n"; done
if [ ${#WARNINGS[@]} -gt 0 ]; then
    echo
    for w in "${WARNINGS[@]}"; do echo "WARNING: $w"; done
fi
if [ -n "$OUT" ]; then
    print_markdown >"$OUT"
    echo "bench: markdown table written to $OUT"
fi
