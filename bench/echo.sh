#!/usr/bin/env bash
# bench/echo.sh: eddy's echo service against tutorial 002's Python epoll echo
# server (bench/peers/seed002_echo.py) and xinetd's built-in echo, on
# 127.0.0.1 only, each server pinned to SERVER_CPU and the load generator
# (build/eddy-load, one thread) to CLIENT_CPU.
#
#   bench/echo.sh                           # about a minute and a half
#   ECHO_CONNS="1 100" ECHO_SIZES=64 DURATION=2 bench/echo.sh   # quick check
#
# For every number of connections in ECHO_CONNS and message size in
# ECHO_SIZES: `eddy-load echo -c CONNS -s SIZE -d DURATION --warmup 1`, a
# closed loop (each connection sends one message, waits until all of it has
# come back, checks it byte for byte, sends the next). Figures: messages/s,
# and the server's CPU time per message (utime + stime from /proc/PID/stat
# over the measured run), also split into user time (the server's code) and
# system time (the kernel's, for its system calls); not for xinetd, whose
# work is done in a process per connection.
#
# xinetd runs in the foreground (-dontfork) with its own configuration and
# pid file in a scratch directory, its built-in stream echo on a free
# loopback port; it is never the system's service. It forks a process per
# connection, so 1,000 connections are 1,000 processes for that run.
#
# Environment (defaults in brackets):
#   DURATION      seconds per measured run [$BENCH_SECONDS, else 5]
#   ECHO_CONNS    connection counts ["1 100 1000"]
#   ECHO_SIZES    message sizes in bytes ["64 16384"]
#   ECHO_SERVERS  servers measured ["eddy python xinetd"]
#   EDDY_LOAD     the load generator [build/eddy-load, built with make]
#   RESULTS       optional file that gets the figures as tab-separated lines
#   SERVER_CPU / CLIENT_CPU  [0 / 1]
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

DURATION=${DURATION:-${BENCH_SECONDS:-5}}
ECHO_CONNS=${ECHO_CONNS:-"1 100 1000"}
ECHO_SIZES=${ECHO_SIZES:-"64 16384"}
ECHO_SERVERS=${ECHO_SERVERS:-"eddy python xinetd"}

"$ROOT/scripts/ensure-deps" bench || die "tools are missing (above)"
need_tools xinetd taskset
[ -x "$PYTHON" ] || die "$PYTHON is needed for the tutorial's server"
build_bench
if [ -z "${EDDY_LOAD:-}" ]; then
    # eddy-load is a program of its own (cmd/eddy-load.c); build it here even
    # under BENCH_NO_BUILD, so that `make bench` need not know about it.
    make -C "$ROOT" --no-print-directory -s build/eddy-load >"$TMP/make-load.log" 2>&1 || {
        tail -n 5 "$TMP/make-load.log" >&2
        die "build/eddy-load could not be built (make build/eddy-load, output above): the echo benchmark needs it"
    }
    EDDY_LOAD=$ROOT/build/eddy-load
fi
[ -x "$EDDY_LOAD" ] || die "$EDDY_LOAD is missing: the echo benchmark needs eddy-load"
"$EDDY_LOAD" --help 2>&1 | grep -q -- '--json' ||
    die "$EDDY_LOAD has no --json option; this script reads its JSON summary"

# xinetd's configuration: its built-in echo, on 127.0.0.1 only, with every
# limit that would refuse a benchmark's connections lifted (by default xinetd
# disables a service that gets more than 50 connections a second).
xinetd_conf() {
    local dir=$1 port=$2
    mkdir -p "$dir"
    cat >"$dir/xinetd.conf" <<EOF
# xinetd for eddy's bench/echo.sh: the built-in stream echo only.
defaults
{
    instances  = UNLIMITED
    per_source = UNLIMITED
    cps        = 1000000 1
}
service echo
{
    id          = echo-stream
    type        = INTERNAL UNLISTED
    socket_type = stream
    protocol    = tcp
    wait        = no
    user        = $(id -un)
    bind        = 127.0.0.1
    port        = $port
    instances   = UNLIMITED
    per_source  = UNLIMITED
    cps         = 1000000 1
}
EOF
}

start_echo() {
    local name=$1 port
    port=$(free_port)
    case $name in
    eddy)
        start_server eddy "$port" "$EDDY" --log-level warning --drain-timeout 1 --idle-timeout 0 \
            "echo=127.0.0.1:$port"
        ;;
    python) start_server python "$port" "$PYTHON" "$BENCH_DIR/peers/seed002_echo.py" "$port" ;;
    xinetd)
        xinetd_conf "$TMP/xinetd" "$port"
        start_server xinetd "$port" xinetd -dontfork -stayalive -f "$TMP/xinetd/xinetd.conf" \
            -pidfile "$TMP/xinetd/xinetd.pid" -filelog "$TMP/xinetd/xinetd.log"
        ;;
    *) die "unknown server $name" ;;
    esac
    wait_ready "$name" tcp
    # One message through, so a server that accepts but does not echo fails here.
    "$PYTHON" - "$port" <<'EOF' || die "$name on 127.0.0.1:$port does not echo"
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=5)
s.sendall(b"ping")
sys.exit(0 if s.recv(16) == b"ping" else 1)
EOF
}

# xinetd's children (one per connection) are stopped with it, by pid.
stop_echo() {
    local name=$1 kids
    if [ "$name" = xinetd ]; then
        kids=$(pgrep -P "${PID[xinetd]}" || true)
        for k in $kids; do kill -TERM "$k" 2>/dev/null || true; done
    fi
    stop_server "$name"
}

json_field() { # json_field FILE KEY: a number from eddy-load's JSON summary
    "$PYTHON" -c 'import json, sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$1" "$2"
}

echo "bench: echo: ECHO_CONNS=\"$ECHO_CONNS\" ECHO_SIZES=\"$ECHO_SIZES\" DURATION=${DURATION}s with $EDDY_LOAD (servers on CPU $SERVER_CPU, client on CPU $CLIENT_CPU)"
WARNINGS=()
declare -A MSGS=()
for name in $ECHO_SERVERS; do
    start_echo "$name"
    for size in $ECHO_SIZES; do
        for conns in $ECHO_CONNS; do
            out="$TMP/load.json"
            rc=0
            # The server's CPU time is read when the warm-up second ends and
            # when the client is done, so it covers the measured run. (Not for
            # xinetd: its work is done in a process per connection.)
            taskset -c "$CLIENT_CPU" timeout $((DURATION + 90)) "$EDDY_LOAD" echo "127.0.0.1:${PORT[$name]}" \
                -c "$conns" -s "$size" -d "$DURATION" --warmup 1 --json >"$out" 2>&1 &
            CLIENT_PID=$!
            sleep 1
            read -r u0 s0 <<<"$(cpu_user_sys "${PID[$name]}")"
            wait "$CLIENT_PID" || rc=$?
            CLIENT_PID=
            read -r u1 s1 <<<"$(cpu_user_sys "${PID[$name]}")"
            alive "$name"
            # Exit 1 means errors were counted; the JSON still says how many.
            if [ "$rc" -gt 1 ] || ! json_field "$out" requests_per_s >/dev/null 2>&1; then
                die "$name c=$conns s=$size: eddy-load failed (exit $rc): $(head -c 300 "$out")"
            fi
            msgs=$(json_field "$out" requests_per_s)
            errors=$(json_field "$out" errors_total)
            if [ "$errors" != 0 ]; then
                WARNINGS+=("$name c=$conns s=$size: eddy-load counted $errors errors (first: $(json_field "$out" first_error))")
            fi
            us=- us_u=- us_s=-
            if [ "$name" != xinetd ]; then
                n=$(awk -v m="$msgs" -v d="$DURATION" 'BEGIN { printf "%.0f", m * d }')
                us=$(per_us $((u1 + s1 - u0 - s0)) "$n")
                us_u=$(per_us $((u1 - u0)) "$n")
                us_s=$(per_us $((s1 - s0)) "$n")
            fi
            MSGS[$name|$conns|$size]=$msgs
            result echo "$name" "c=$conns,s=$size" msgs_per_s "$msgs"
            result echo "$name" "c=$conns,s=$size" us_per_msg "$us"
            result echo "$name" "c=$conns,s=$size" us_user_per_msg "$us_u"
            result echo "$name" "c=$conns,s=$size" us_sys_per_msg "$us_s"
            result echo "$name" "c=$conns,s=$size" errors "$errors"
            printf '  %-7s %5d conns %6d B  %12.0f messages/s %9s µs CPU/message (%s user, %s sys)  %s errors\n' \
                "$name" "$conns" "$size" "$msgs" "$us" "$us_u" "$us_s" "$errors"
        done
    done
    stop_echo "$name"
done

echo
printf '%-6s %-7s' conns size
for name in $ECHO_SERVERS; do printf ' %14s' "$name msg/s"; done
printf ' %14s\n' "eddy/python"
for size in $ECHO_SIZES; do
    for conns in $ECHO_CONNS; do
        printf '%-6s %-7s' "$conns" "$size"
        for name in $ECHO_SERVERS; do printf ' %14.0f' "${MSGS[$name|$conns|$size]:-0}"; done
        awk -v a="${MSGS[eddy|$conns|$size]:-}" -v b="${MSGS[python|$conns|$size]:-}" \
            'BEGIN { if (a == "" || b + 0 == 0) print "             -"; else printf " %14.1f\n", a / b }'
    done
done
for w in "${WARNINGS[@]}"; do echo "WARNING: $w" >&2; done
