#!/usr/bin/env bash
# bench/load_vs_wrk.sh: is eddy-load a trustworthy client? It drives the same
# nginx (one worker, no access log, `return 200 "Hello, world!"`, on
# 127.0.0.1) as wrk does, with the same connections, threads and duration,
# in the same run, and prints both requests/s and their ratio, in two modes:
#   pipelined   DEPTH requests per write on each connection, the next DEPTH
#               when all are answered (wrk: bench/pipeline.lua, eddy-load:
#               -P DEPTH). nginx answers pipelined requests one at a time, so
#               nginx is saturated, and both clients send it the same
#               traffic: this is where their figures must agree within 10%.
#   keep-alive  one request in flight per connection. On a 2-CPU machine one
#               nginx worker answers about as fast as one client thread asks,
#               so either side can set the pace (see below).
#
#   bench/load_vs_wrk.sh                        # 3 rounds of 5 s, each mode
#   DURATION=2 ROUNDS=1 bench/load_vs_wrk.sh    # quicker, noisier
#
# Environment (defaults in brackets):
#   DURATION  seconds per run [$BENCH_SECONDS, else 5]   ROUNDS   rounds, each runs both [3]
#   CONNS     connections [100]           THREADS  client threads [1]
#   DEPTH     requests in flight per connection when pipelined [16]
#   LW_MODES  modes measured ["pipelined keep-alive"]
#   SERVER_CPU / CLIENT_CPU  CPUs for nginx / for the client [0 / 1]
#   EDDY_LOAD  the eddy-load binary [build/eddy-load, built first]
#
# The rounds alternate which client goes first; the figure is the median of
# the rounds. The machine's noise moves both, so only the ratio within a
# round means anything.
#
# Each run also shows the client's own CPU time per request (user + system,
# from /usr/bin/time when it is installed) and checks the client's count of
# requests against nginx's own (stub_status, read before and after the run):
# a client that counted wrong would show there, whatever the speeds. When
# the client's CPU is saturated (keep-alive), requests/s measures the
# client, and the cheaper client gets more requests through: wrk makes two
# epoll_ctl calls per request (it arms and disarms EPOLLOUT), eddy-load
# none. A ratio above 1 with a lower eddy-load CPU figure and both counts
# matching nginx's means the clients' costs showed, not that a count is
# wrong.
set -euo pipefail
# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-${BENCH_SECONDS:-5}}
ROUNDS=${ROUNDS:-3}
CONNS=${CONNS:-100}
THREADS=${THREADS:-1}
DEPTH=${DEPTH:-16}
read -r -a MODES <<<"${LW_MODES:-pipelined keep-alive}"
for v in DURATION ROUNDS CONNS THREADS DEPTH; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a whole number above 0, not '${!v}'"
done
for mode in "${MODES[@]}"; do
    [[ $mode =~ ^(pipelined|keep-alive)$ ]] || die "LW_MODES: unknown mode '$mode' (pipelined, keep-alive)"
done

need_tools wrk nginx taskset
if [ -z "${EDDY_LOAD:-}" ]; then
    if [ "${BENCH_NO_BUILD:-}" != 1 ]; then
        make -C "$ROOT" --no-print-directory -s build/eddy-load || die "the build failed"
    fi
    EDDY_LOAD=$ROOT/build/eddy-load
fi
[ -x "$EDDY_LOAD" ] || die "$EDDY_LOAD is missing (make build/eddy-load)"

start_http nginx "$((CONNS + 64))"
URL="http://127.0.0.1:${PORT[nginx]}/"
echo "load_vs_wrk: nginx at $URL on CPU $SERVER_CPU; clients on CPU $CLIENT_CPU;" \
    "-c $CONNS -t $THREADS, ${DURATION}s x $ROUNDS rounds of: ${MODES[*]} (pipelined: $DEPTH deep)"

# Warm both up, so that neither pays for nginx's first connections.
run_client "$TMP/warm.out" wrk -t"$THREADS" -c"$CONNS" -d1s "$URL" || true
run_client "$TMP/warm.out" "$EDDY_LOAD" http "127.0.0.1:${PORT[nginx]}" -c "$CONNS" \
    -t "$THREADS" -d 1 || true

TIMER=()
[ -x /usr/bin/time ] && TIMER=(/usr/bin/time -f '%U %S' -o "$TMP/cpu")

# Client CPU µs per request of the last run ("-" without /usr/bin/time).
cpu_us() {
    if [ ${#TIMER[@]} -eq 0 ] || ! [ -s "$TMP/cpu" ]; then
        echo -
        return
    fi
    awk -v n="$1" '{ printf "%.1f", (n > 0) ? ($1 + $2) * 1e6 / n : 0 }' "$TMP/cpu"
}

# Each run prints "REQ_PER_S CLIENT_US_PER_REQ COUNTED SERVED NGINX_US_PER_REQ":
# the client's figures, the requests it counted, those nginx served
# meanwhile, and nginx's CPU time per request served.
# run_wrk MODE
run_wrk() {
    local out=$TMP/wrk.out rps requests mark args=("$URL")
    if [ "$1" = pipelined ]; then
        args=(-s "$BENCH_DIR/pipeline.lua" "$URL" -- "$DEPTH")
    fi
    mark=$(nginx_mark)
    run_client "$out" "${TIMER[@]}" wrk -t"$THREADS" -c"$CONNS" -d"${DURATION}s" "${args[@]}" ||
        die "wrk failed: $(tr '\n' ' ' <"$out")"
    alive nginx
    if grep -qE 'Socket errors|Non-2xx' "$out"; then
        echo "WARNING: wrk: $(grep -E 'Socket errors|Non-2xx' "$out" | tr -s ' \n' ' ')" >&2
    fi
    rps=$(client_figure "$out" rps)
    [ -n "$rps" ] || die "no Requests/sec in wrk's output: $(tr '\n' ' ' <"$out")"
    requests=$(client_figure "$out" requests)
    served "$mark" "$rps $(cpu_us "$requests") $requests"
}

# nginx_mark: nginx's count of requests served and its CPU ticks, now.
nginx_mark() {
    echo "$(nginx_served) $(cpu_ticks "${PID[nginx]}")"
}

# served MARK FIGURES: FIGURES, then the requests nginx served since MARK
# (from nginx_mark; its own count, less the one that read it) and its CPU
# time per request meanwhile.
served() {
    local count ticks n
    read -r count ticks <<<"$1"
    n=$(($(nginx_served) - count - 1))
    echo "$2 $n $(per_us $(($(cpu_ticks "${PID[nginx]}") - ticks)) "$n")"
}

# run_load MODE
run_load() {
    local out=$TMP/load.out rc=0 line mark depth=1
    if [ "$1" = pipelined ]; then
        depth=$DEPTH
    fi
    mark=$(nginx_mark)
    run_client "$out" "${TIMER[@]}" "$EDDY_LOAD" http "127.0.0.1:${PORT[nginx]}" -c "$CONNS" -t "$THREADS" \
        -P "$depth" -d "$DURATION" --json || rc=$?
    alive nginx
    # Exit 1 means errors were counted: worth a warning, the figure stands.
    [ "$rc" -le 1 ] || die "eddy-load failed (exit $rc): $(tr '\n' ' ' <"$out")"
    line=$("$PYTHON" - "$out" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
if r["errors_total"]:
    print(f"WARNING: eddy-load counted {r['errors_total']} errors: {r['errors']} "
          f"(first: {r['first_error']})", file=sys.stderr)
print(f"{r['requests_per_s']:.2f} {r['requests']}")
EOF
    ) || die "eddy-load's --json output did not parse: $(tr '\n' ' ' <"$out")"
    served "$mark" "${line% *} $(cpu_us "${line#* }") ${line#* }"
}

# measure MODE: ROUNDS rounds of both clients in MODE, then the medians.
measure() {
    local mode=$1 round wline lline w wcpu wn wserved wsrv l lcpu ln lserved lsrv r
    local WRK_RPS=() LOAD_RPS=() RATIOS=() WRK_CPU=() LOAD_CPU=() WRK_COUNT=() LOAD_COUNT=()
    local WRK_SRV=() LOAD_SRV=() med_w med_l med_r client rps cpu count srv
    echo "$mode:"
    for ((round = 1; round <= ROUNDS; round++)); do
        # Command substitutions, not process substitutions: a die() inside
        # must end the script.
        if ((round % 2)); then
            wline=$(run_wrk "$mode")
            lline=$(run_load "$mode")
        else
            lline=$(run_load "$mode")
            wline=$(run_wrk "$mode")
        fi
        read -r w wcpu wn wserved wsrv <<<"$wline"
        read -r l lcpu ln lserved lsrv <<<"$lline"
        r=$(ratio "$l" "$w" %.3f)
        WRK_RPS+=("$w") LOAD_RPS+=("$l") RATIOS+=("$r")
        WRK_CPU+=("$wcpu") LOAD_CPU+=("$lcpu") WRK_SRV+=("$wsrv") LOAD_SRV+=("$lsrv")
        WRK_COUNT+=("$(ratio "$wn" "$wserved" %.3f)") LOAD_COUNT+=("$(ratio "$ln" "$lserved" %.3f)")
        printf '  round %d/%d: wrk %8.0f req/s (%s us CPU/req)   eddy-load %8.0f req/s (%s us CPU/req)   eddy-load/wrk %s\n' \
            "$round" "$ROUNDS" "$w" "$wcpu" "$l" "$lcpu" "$r"
        printf '    requests counted / served by nginx: wrk %d / %d, eddy-load %d / %d;' \
            "$wn" "$wserved" "$ln" "$lserved"
        printf ' nginx us CPU/req: under wrk %s, under eddy-load %s\n' "$wsrv" "$lsrv"
    done

    med_w=$(median "${WRK_RPS[@]}")
    med_l=$(median "${LOAD_RPS[@]}")
    med_r=$(median "${RATIOS[@]}")
    for client in wrk eddy-load; do
        if [ "$client" = wrk ]; then
            rps=$med_w cpu=("${WRK_CPU[@]}") count=("${WRK_COUNT[@]}") srv=("${WRK_SRV[@]}")
        else
            rps=$med_l cpu=("${LOAD_CPU[@]}") count=("${LOAD_COUNT[@]}") srv=("${LOAD_SRV[@]}")
        fi
        result load_vs_wrk "$client" "$mode" req_per_s "$rps"
        [ "${cpu[0]}" = - ] || result load_vs_wrk "$client" "$mode" client_us_per_req "$(median "${cpu[@]}")"
        result load_vs_wrk "$client" "$mode" counted_per_served "$(median "${count[@]}")"
        result load_vs_wrk "$client" "$mode" server_us_per_req "$(median "${srv[@]}")"
    done
    result load_vs_wrk eddy-load "$mode" ratio_to_wrk "$med_r"
    printf '  median of %d: wrk %.0f req/s, eddy-load %.0f req/s, eddy-load/wrk %s (per round: %s)\n' \
        "$ROUNDS" "$med_w" "$med_l" "$med_r" "${RATIOS[*]}"
    printf '  requests counted per request nginx served (median): wrk %s, eddy-load %s\n' \
        "$(median "${WRK_COUNT[@]}")" "$(median "${LOAD_COUNT[@]}")"
    if awk -v r="$med_r" 'BEGIN { exit !(r >= 0.9 && r <= 1.1) }'; then
        echo "  eddy-load and wrk agree within 10%"
    else
        echo "  $([ "$mode" = pipelined ] && echo WARNING || echo note): eddy-load and wrk differ by" \
            "more than 10%. Medians: client CPU per request wrk $(median "${WRK_CPU[@]}") us," \
            "eddy-load $(median "${LOAD_CPU[@]}") us; nginx CPU per request under wrk" \
            "$(median "${WRK_SRV[@]}") us, under eddy-load $(median "${LOAD_SRV[@]}") us" \
            "(whichever is saturated sets the pace; see this script's header)"
    fi
}

for mode in "${MODES[@]}"; do
    measure "$mode"
done
