#!/usr/bin/env bash
# bench/syscalls.sh: system calls per HTTP request, counted by strace, for
# eddy, nginx, the floor (bench/floor.c, the cheapest epoll loop) and
# tutorial 000's Python epoll server, on 127.0.0.1 only, each server pinned to
# SERVER_CPU and the client to CLIENT_CPU. It shows what the kernel charges
# per request whatever the server does in user space: a server that makes
# the floor's system calls cannot spend much less CPU per request than it.
#
# For every server and mode, `strace -c -f -p PID` is attached to the running
# server for one short client run, then stopped with SIGTERM (strace, never
# the server: on that signal strace detaches and writes its summary table,
# which the script checks). Figures: calls per request = calls in the table
# / requests the client completed, for every system call and in total.
#
# strace stops the server at each system call, so the server runs many
# times slower than without it: only counts per request mean anything here,
# never speed. Reads and writes per request do not depend on timing;
# epoll_wait per request does (a slower server finds more connections ready
# at each wake-up), so strace makes it lower than in a real run.
#
#   bench/syscalls.sh                     # about a minute
#   DURATION=1 AB_N=1000 bench/syscalls.sh   # quicker
#
# Modes (as in bench/http.sh):
#   keep-alive    wrk -t1 -c$CONNS for DURATION seconds
#   pipelined     the same with bench/pipeline.lua: $DEPTH requests per write
#   conn/request  ab -n $AB_N -c $AB_C without -k (HTTP/1.0, a new
#                 connection per request)
# The floor never closes a connection, so ab cannot drive it; the Python
# server closes after each response, so only ab can.
#
# Environment (defaults in brackets):
#   DURATION  seconds per wrk run [2] (not BENCH_SECONDS: counts need no long run)
#   AB_N      requests per ab run [3000]
#   CONNS     wrk connections [100]          DEPTH   requests per pipelined write [16]
#   AB_C      ab concurrency [50]
#   SC_SERVERS  servers measured ["eddy nginx floor python"]
#   SERVER_CPU / CLIENT_CPU  CPUs for the servers (and strace) / for wrk and ab [0 / 1]
#   RESULTS   optional file that gets the figures as tab-separated lines
#             (bench/run.sh collects them for docs/benchmarks.md)
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-2}
AB_N=${AB_N:-3000}
CONNS=${CONNS:-100}
DEPTH=${DEPTH:-16}
AB_C=${AB_C:-50}
SC_SERVERS=${SC_SERVERS:-"eddy nginx floor python"}

"$ROOT/scripts/ensure-deps" bench || die "tools are missing (above)"
command -v strace >/dev/null 2>&1 || die "strace is missing (apt-get install strace)"
need_tools wrk ab nginx taskset
[ -x "$PYTHON" ] || die "$PYTHON is needed for the tutorial's server"
build_bench

modes_of() {
    case $1 in
    floor) echo keep-alive pipelined ;;
    python) echo conn/request ;;
    *) echo keep-alive pipelined conn/request ;;
    esac
}

# True when every thread of process $1 is traced by process $2.
traced_by() {
    local st
    for st in /proc/"$1"/task/*/status; do
        grep -q "^TracerPid:[[:space:]]*$2\$" "$st" 2>/dev/null || return 1
    done
}

# "name calls" for every system call in strace's summary $1, then "total
# calls" and "errors calls-that-failed"; fails when there is no summary.
strace_calls() {
    awk '
        /^-+ -+/ { dashes++; next }
        dashes == 1 && NF >= 5 { print $NF, $4 }
        dashes == 2 && $NF == "total" { print "total", $4; print "errors", (NF >= 6) ? $5 : 0; found = 1 }
        END { exit !found }
    ' "$1"
}

# Waits until server $1 has closed every client connection, so that a run
# under strace counts the closing of its own connections and none of an
# earlier run's. BASE_FDS: its descriptors before any client came.
# Not for tutorial 000's server: ab leaves it a few connections closed
# before any request, which it never closes and spins on (reading EOF
# forever; see wait_ready in lib.sh). So it gets no warm-up and no wait, and
# strace stops as soon as ab is done, to count that spinning as little as
# possible.
settle() {
    local i
    [ "$1" != python ] || return 0
    for ((i = 0; i < 100; i++)); do
        (($(fd_count "${PID[$1]}") <= BASE_FDS)) && return 0
        sleep 0.1
    done
    WARNINGS+=("$1: still $(fd_count "${PID[$1]}") descriptors open 10 s after the client ended (was $BASE_FDS)")
}

WARNINGS=()
declare -A PER=() # PER[server|mode|name]: calls per request
ROWS=()           # server|mode of every run that was measured

# One client run against server $1 in mode $2 under strace.
trace_run() {
    local server=$1 mode=$2 pid=${PID[$1]} port=${PORT[$1]} out="$TMP/client.out" trace="$TMP/strace.out"
    local st i rc=0 requests failed name calls
    rm -f "$trace"
    taskset -c "$SERVER_CPU" strace -c -f -p "$pid" -o "$trace" 2>"$TMP/strace.err" &
    st=$!
    HELPER_PIDS=("$st")
    for ((i = 0; i < 100; i++)); do
        traced_by "$pid" "$st" && break
        kill -0 "$st" 2>/dev/null || die "strace could not attach to $server: $(tr '\n' ' ' <"$TMP/strace.err")"
        sleep 0.1
    done
    traced_by "$pid" "$st" || die "strace did not attach to every thread of $server in 10 s"

    if [ "$mode" = conn/request ]; then
        ab_run "$out" "$port" "$AB_N" || rc=$?
    else
        wrk_run "$out" "$port" "$mode" "$DURATION" || rc=$?
    fi
    settle "$server" # it runs slowly under strace
    # On SIGTERM strace detaches, leaving the server running, and writes its
    # table (checked below); KILL only if it has not done so in 10 s.
    stop_pid "$st" 100
    HELPER_PIDS=()
    alive "$server"
    [ "$rc" -eq 0 ] || die "$server $mode: the client exited with status $rc: $(tail -n 5 "$out" | tr '\n' ' ')"
    strace_calls "$trace" >"$TMP/calls" ||
        die "$server $mode: strace wrote no summary table ($(head -c 300 "$trace" 2>/dev/null | tr '\n' ' ') $(tr '\n' ' ' <"$TMP/strace.err"))"

    requests=$(client_figure "$out" requests)
    [ "${requests:-0}" -gt 0 ] || die "$server $mode: the client completed no request: $(tail -n 5 "$out" | tr '\n' ' ')"
    if grep -q -e 'Socket errors' -e 'Non-2xx' "$out"; then
        WARNINGS+=("$server $mode: wrk $(grep -e 'Socket errors' -e 'Non-2xx' "$out" | sed 's/^ *//' | tr '\n' ' ')")
    fi
    failed=$(client_figure "$out" failed)
    [ "${failed:-0}" -eq 0 ] || WARNINGS+=("$server $mode: ab reports $failed failed requests")

    result syscalls "$server" "$mode" requests "$requests"
    while read -r name calls; do
        PER[$server|$mode|$name]=$(awk -v c="$calls" -v n="$requests" 'BEGIN { printf "%.3f", c / n }')
        case $name in
        total) result syscalls "$server" "$mode" per_req "${PER[$server|$mode|$name]}" ;;
        errors) result syscalls "$server" "$mode" errors_per_req "${PER[$server|$mode|$name]}" ;;
        *) result syscalls "$server" "$mode" "per_req_$name" "${PER[$server|$mode|$name]}" ;;
        esac
    done <"$TMP/calls"
    ROWS+=("$server|$mode")
    printf '  %-6s %-12s %7d requests  %6.2f system calls/request\n' "$server" "$mode" "$requests" "${PER[$server|$mode|total]}"
}

echo "bench: syscalls: servers \"$SC_SERVERS\", DURATION=${DURATION}s CONNS=$CONNS DEPTH=$DEPTH AB_N=$AB_N AB_C=$AB_C (servers and strace on CPU $SERVER_CPU, clients on CPU $CLIENT_CPU)"
for server in $SC_SERVERS; do
    start_http "$server"
    BASE_FDS=$(fd_count "${PID[$server]}")
    # A warm-up without strace, so that one-time work (buffers, caches)
    # is not counted (not for python: see settle).
    if [ "$server" != python ]; then
        wrk_run "$TMP/warm.out" "${PORT[$server]}" keep-alive 1 || true
        settle "$server"
    fi
    for mode in $(modes_of "$server"); do trace_run "$server" "$mode"; done
    stop_server "$server"
done

# --- table -----------------------------------------------------------------

# The columns: every system call that makes at least 0.05 calls per request
# in some run, the usual ones of an HTTP server first, then the others most
# frequent first; the rest are summed as "other".
read -r -a COLS <<<"$(
    for key in "${!PER[@]}"; do
        name=${key##*|}
        case $name in total | errors) continue ;; esac
        echo "$name ${PER[$key]}"
    done | awk -v usual="read recvfrom write sendto writev epoll_wait epoll_ctl accept4 close shutdown" '
        $2 >= 0.05 && $2 > max[$1] { max[$1] = $2 }
        END {
            n = split(usual, u, " ")
            for (i = 1; i <= n; i++) if (u[i] in max) { print 1e9 - i, u[i]; delete max[u[i]] }
            for (c in max) print max[c], c
        }' | sort -gr | awk '{ printf "%s ", $2 }'
)"
echo
printf '%-7s %-13s %7s' server mode total
for c in "${COLS[@]}"; do printf ' %*s' $((${#c} > 6 ? ${#c} : 6)) "$c"; done
printf ' %7s %9s\n' other "(failed)"
for row in "${ROWS[@]}"; do
    server=${row%%|*} mode=${row#*|}
    printf '%-7s %-13s %7.2f' "$server" "$mode" "${PER[$row|total]}"
    listed=0
    for c in "${COLS[@]}"; do
        printf ' %*.2f' $((${#c} > 6 ? ${#c} : 6)) "${PER[$row|$c]:-0}"
        listed=$(awk -v a="$listed" -v b="${PER[$row|$c]:-0}" 'BEGIN { print a + b }')
    done
    printf ' %7.2f %9.2f\n' "$(awk -v t="${PER[$row|total]}" -v l="$listed" 'BEGIN { print (t > l) ? t - l : 0 }')" "${PER[$row|errors]}"
done
echo
echo "note: system calls per request as strace -c counts them over one client run each, connection set-up and close included; (failed) = calls that returned an error (mostly EAGAIN) among them."
echo "note: strace slows the server many times over: compare counts per request only. epoll_wait per request falls as the server slows (more connections ready per wake-up), so it is lower here than in a run without strace."
for w in "${WARNINGS[@]}"; do echo "WARNING: $w" >&2; done
