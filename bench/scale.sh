#!/usr/bin/env bash
# bench/scale.sh: what idle connections cost. Two figures per server, on
# 127.0.0.1 only, servers pinned to SERVER_CPU and clients to CLIENT_CPU:
#
#   memory per idle connection
#       A fresh server gets IDLE_MAX keep-alive connections from
#       bench/idle.py, one request and response on each, then held open and
#       silent. Figure: the growth of the server's resident set (VmRSS) / IDLE_MAX.
#       Measured before the server ever sees wrk, so no buffer freed by an
#       earlier run is there to be reused and hide the cost.
#   throughput next to idle connections ("flat")
#       wrk's keep-alive req/s on CONNS active connections while N idle ones
#       are held open, for N in IDLE_COUNTS. Figure: req/s with IDLE_MAX idle /
#       req/s with none. epoll's cost follows the active connections only, so
#       eddy and nginx should stay flat; poll() hands the kernel every
#       descriptor on every call, so the poll baseline should fall.
#       The runs go IDLE_MAX, 0, the rest ascending (IDLE_MAX again), 0 again:
#       0 and IDLE_MAX are measured twice, early and late, and averaged, so a
#       drift in the machine's load does not favour either.
#       Also printed: the same ratio of the server's CPU time per request
#       (@0 / @IDLE_MAX), which other load on the machine disturbs less.
#
#   bench/scale.sh                          # about a minute and a half
#   DURATION=2 IDLE_MAX=2000 IDLE_COUNTS="0 1000 2000" bench/scale.sh   # quick check
#
# Environment (defaults in brackets):
#   DURATION      seconds per wrk run [$BENCH_SECONDS, else 5]
#   CONNS         wrk's active connections [100]
#   IDLE_MAX      idle connections for the memory figure and the flat ratio [15000]
#   IDLE_COUNTS   idle connections for the throughput curve ["0 1000 5000 $IDLE_MAX"]
#   MEM_SERVERS   servers whose memory is measured [eddy nginx floor poll]
#   FLAT_SERVERS  servers whose throughput curve is measured [eddy nginx poll]
#   RESULTS       optional file that gets the figures as tab-separated lines
#   SERVER_CPU / CLIENT_CPU  [0 / 1]
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-${BENCH_SECONDS:-5}}
CONNS=${CONNS:-100}
IDLE_MAX=${IDLE_MAX:-15000}
IDLE_COUNTS=${IDLE_COUNTS:-"0 1000 5000 $IDLE_MAX"}
MEM_SERVERS=${MEM_SERVERS:-"eddy nginx floor poll"}
FLAT_SERVERS=${FLAT_SERVERS:-"eddy nginx poll"}

"$ROOT/scripts/ensure-deps" bench || die "tools are missing (above)"
need_tools wrk nginx taskset
[ -x "$PYTHON" ] || die "$PYTHON is needed for bench/idle.py"
build_bench

# Every server holds IDLE_MAX + CONNS sockets plus a few; the holder splits
# itself over processes, but a server is one process under the hard limit.
HARD=$(ulimit -Hn)
((IDLE_MAX + CONNS + 200 <= HARD)) ||
    die "IDLE_MAX=$IDLE_MAX needs more open files than this machine's hard limit per process ($HARD)"
for n in $IDLE_COUNTS; do
    ((n <= IDLE_MAX)) || die "IDLE_COUNTS has $n, more than IDLE_MAX=$IDLE_MAX"
done

HOLDER_PID=
HOLDER_COUNT=0

# Opens N idle connections to server $1 and waits until all are held.
hold() {
    local name=$1 n=$2 i
    HOLDER_COUNT=$n
    ((n > 0)) || return 0
    taskset -c "$CLIENT_CPU" "$PYTHON" "$BENCH_DIR/idle.py" "${PORT[$name]}" "$n" >"$TMP/idle.out" 2>&1 &
    HOLDER_PID=$!
    HELPER_PIDS+=("$HOLDER_PID")
    for ((i = 0; i < 1500; i++)); do
        grep -q '^ready' "$TMP/idle.out" && return 0
        if ! kill -0 "$HOLDER_PID" 2>/dev/null; then
            cat "$TMP/idle.out" >&2
            die "bench/idle.py could not hold $n connections to $name (above)"
        fi
        alive "$name"
        sleep 0.1
    done
    die "bench/idle.py did not get $n connections to $name ready in 150 s"
}

# Closes the held connections and waits until the server has closed its
# side, so the next run starts from the same number of open connections.
release() {
    local name=$1 base=$2 i
    [ -n "$HOLDER_PID" ] || return 0
    stop_pid "$HOLDER_PID" 50
    HELPER_PIDS=()
    HOLDER_PID=
    HOLDER_COUNT=0
    for ((i = 0; i < 300; i++)); do
        (($(fd_count "${PID[$name]}") <= base + 5)) && return 0
        sleep 0.1
    done
    die "$name still has $(fd_count "${PID[$name]}") descriptors open 30 s after the idle connections closed (was $base)"
}

# One wrk run on CONNS active connections; sets RUN_RPS and RUN_US (µs CPU/req).
flat_run() {
    local name=$1 before after out="$TMP/wrk.out" rc=0 requests rps
    before=$(cpu_ticks "${PID[$name]}")
    run_client "$out" wrk -t1 -c"$CONNS" -d"${DURATION}s" "http://127.0.0.1:${PORT[$name]}/" || rc=$?
    after=$(cpu_ticks "${PID[$name]}")
    alive "$name"
    [ "$rc" -eq 0 ] || die "$name: wrk exited with status $rc: $(tr '\n' ' ' <"$out")"
    if grep -q -e 'Socket errors' -e 'Non-2xx' "$out"; then
        die "$name: wrk reports errors: $(grep -e 'Socket errors' -e 'Non-2xx' "$out" | tr '\n' ' ')"
    fi
    requests=$(awk '/ requests in / { print $1 }' "$out")
    rps=$(awk '/^Requests\/sec:/ { print $2 }' "$out")
    RUN_RPS=$(printf '%.0f' "$rps")
    RUN_US=$(awk -v t=$((after - before)) -v hz="$TICK" -v n="$requests" \
        'BEGIN { printf "%.2f", (n > 0) ? t * 1e6 / hz / n : 0 }')
}

mean() { # the mean of the numbers in $1, with $2 decimals [0]
    # shellcheck disable=SC2086
    printf '%s\n' $1 | awk -v d="${2:-0}" '{ s += $1; n++ } END { if (n) printf "%.*f", d, s / n }'
}

echo "bench: scale: IDLE_MAX=$IDLE_MAX IDLE_COUNTS=\"$IDLE_COUNTS\" CONNS=$CONNS DURATION=${DURATION}s (servers on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU)"
read -r -a counts <<<"$(tr ' ' '\n' <<<"$IDLE_COUNTS" | sort -n | tr '\n' ' ')"
SEQUENCE=("$IDLE_MAX" 0)
for n in "${counts[@]}"; do ((n == 0)) || SEQUENCE+=("$n"); done
SEQUENCE+=(0)
declare -A MEM=() FLAT=() FLAT_US=()
# Every server measured, each once, memory servers first.
read -r -a ALL_SERVERS <<<"$(tr ' ' '\n' <<<"$MEM_SERVERS $FLAT_SERVERS" | awk 'NF && !seen[$0]++' | tr '\n' ' ')"

for name in "${ALL_SERVERS[@]}"; do
    start_http "$name" $((IDLE_MAX + CONNS + 500))
    sleep 0.5
    base_fds=$(fd_count "${PID[$name]}")
    rss0=$(rss_kb "${PID[$name]}")
    hold "$name" "$IDLE_MAX"
    sleep 0.5
    rss1=$(rss_kb "${PID[$name]}")
    per=$(((rss1 - rss0) * 1024 / IDLE_MAX))
    if [[ " $MEM_SERVERS " == *" $name "* ]]; then
        MEM[$name]=$per
        result scale "$name" idle bytes_per_conn "$per"
        printf '  %-6s %6d idle: RSS %d -> %d KiB: %d B per idle connection\n' "$name" "$IDLE_MAX" "$rss0" "$rss1" "$per"
    fi
    if [[ " $FLAT_SERVERS " == *" $name "* ]]; then
        declare -A runs=() runs_us=()
        for n in "${SEQUENCE[@]}"; do
            if ((n != HOLDER_COUNT)); then
                release "$name" "$base_fds"
                hold "$name" "$n"
            fi
            flat_run "$name"
            runs[$n]+="$RUN_RPS "
            runs_us[$n]+="$RUN_US "
            printf '  %-6s %6d idle + %d active: %8d req/s %7s µs CPU/req\n' "$name" "$n" "$CONNS" "$RUN_RPS" "$RUN_US"
        done
        for n in "${counts[@]}"; do
            FLAT[$name|$n]=$(mean "${runs[$n]}")
            FLAT_US[$name|$n]=$(mean "${runs_us[$n]}" 2)
            result scale "$name" "idle=$n" rps "${FLAT[$name|$n]}"
            result scale "$name" "idle=$n" us_per_req "${FLAT_US[$name|$n]}"
        done
        unset runs runs_us
    fi
    release "$name" "$base_fds"
    stop_server "$name"
done

echo
printf '%-8s %14s' server "B/idle conn"
for n in "${counts[@]}"; do printf ' %12s' "req/s @$n"; done
printf ' %14s %16s\n' "@$IDLE_MAX / @0" "CPU/req @0/@$IDLE_MAX"
for name in "${ALL_SERVERS[@]}"; do
    printf '%-8s %14s' "$name" "${MEM[$name]:--}"
    for n in "${counts[@]}"; do printf ' %12s' "${FLAT[$name|$n]:--}"; done
    if [ -n "${FLAT[$name|0]:-}" ]; then
        ratio=$(awk -v a="${FLAT[$name|$IDLE_MAX]}" -v b="${FLAT[$name|0]}" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
        # The same question asked of CPU time per request, which another
        # process's load on the machine disturbs less than req/s.
        cpu_ratio=$(awk -v a="${FLAT_US[$name|0]}" -v b="${FLAT_US[$name|$IDLE_MAX]}" 'BEGIN { printf "%.2f", (b > 0) ? a / b : 0 }')
        result scale "$name" flat ratio "$ratio"
        result scale "$name" flat cpu_ratio "$cpu_ratio"
        printf ' %14s %16s\n' "$ratio" "$cpu_ratio"
    else
        printf ' %14s %16s\n' - -
    fi
done
