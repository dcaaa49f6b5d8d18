# shellcheck shell=bash
# bench/lib.sh: what every benchmark script in bench/ shares. Sourced, never
# run. It gives:
#   - a scratch directory $TMP and an EXIT trap that stops every process the
#     script started (servers, clients, helpers) and removes $TMP, whatever
#     way the script ends (error, Ctrl-C, SIGTERM from `timeout`);
#   - start_server / stop_server: servers pinned to $SERVER_CPU;
#   - run_client: clients pinned to $CLIENT_CPU, waited for in a way that a
#     signal interrupts at once;
#   - HTTP clients: wrk_run, ab_run, and client_figure to read their output;
#   - measurements: cpu_user_sys and cpu_ticks (utime, stime from
#     /proc/PID/stat), per_us, rss_kb, fd_count; median and ratio;
#   - result: one line of machine-readable output for bench/report.py.
# Everything listens on and connects to 127.0.0.0/8 only.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$BENCH_DIR/.." && pwd)
PYTHON=/usr/bin/python3
SERVER_CPU=${SERVER_CPU:-0}
CLIENT_CPU=${CLIENT_CPU:-1}
# Where result lines go (bench/run.sh sets it); empty: nowhere.
RESULTS=${RESULTS:-}
# shellcheck disable=SC2034 # used by the scripts that source this file
TICK=$(getconf CLK_TCK)

die() {
    echo "bench: error: $*" >&2
    exit 1
}

# Fails with the fix when a tool is missing.
need_tools() {
    local t missing=()
    for t in "$@"; do
        command -v "$t" >/dev/null 2>&1 || missing+=("$t")
    done
    [ ${#missing[@]} -eq 0 ] ||
        die "missing: ${missing[*]} (scripts/ensure-deps bench installs them; as root it runs apt-get itself)"
}

if [ "$(nproc)" -lt 2 ]; then
    echo "bench: warning: fewer than 2 CPUs; server and client share one" >&2
    SERVER_CPU=0 CLIENT_CPU=0
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/eddy-bench.XXXXXX")
SERVER_PIDS=()
HELPER_PIDS=()
CLIENT_PID=
declare -A PID=() PORT=()

# Sends TERM to one process, waits up to $2 tenths of a second, then KILL.
stop_pid() {
    local pid=$1 tenths=${2:-70} i
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < tenths; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}

bench_cleanup() {
    local rc=$? pid
    trap - EXIT INT TERM
    if [ -n "$CLIENT_PID" ]; then stop_pid "$CLIENT_PID" 30; fi
    for pid in "${HELPER_PIDS[@]}"; do stop_pid "$pid" 30; done
    # eddy drains open connections on SIGTERM (the scripts start it with a
    # short --drain-timeout); give every server a few seconds, then insist.
    for pid in "${SERVER_PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${SERVER_PIDS[@]}"; do stop_pid "$pid" 70; done
    rm -rf "$TMP"
    exit "$rc"
}
trap bench_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# A port nobody listens on right now (the kernel picks it; there is a small
# window before our server binds it, acceptable for a benchmark).
free_port() {
    "$PYTHON" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# start_server NAME PORT COMMAND...: runs COMMAND pinned to SERVER_CPU, its
# output in $TMP/NAME.log; sets PID[NAME] and PORT[NAME].
start_server() {
    local name=$1 port=$2
    shift 2
    taskset -c "$SERVER_CPU" "$@" >"$TMP/$name.log" 2>&1 &
    PID[$name]=$!
    PORT[$name]=$port
    SERVER_PIDS+=("$!")
}

stop_server() {
    local name=$1 pid=${PID[$1]} keep=() p
    stop_pid "$pid" 70
    for p in "${SERVER_PIDS[@]}"; do [ "$p" = "$pid" ] || keep+=("$p"); done
    SERVER_PIDS=(${keep[@]+"${keep[@]}"})
}

# Waits until the server answers: HTTP servers a complete HTTP/1.0 request
# (not a bare connect: tutorial 000's server spins on a connection closed
# before sending one), others (proto=tcp) a connect.
wait_ready() {
    local name=$1 proto=${2:-http} pid=${PID[$1]} port=${PORT[$1]} i
    for ((i = 0; i < 150; i++)); do
        kill -0 "$pid" 2>/dev/null || {
            tail -n 20 "$TMP/$name.log" >&2
            die "$name exited at start-up (its log is above)"
        }
        if "$PYTHON" - "$port" "$proto" <<'EOF' 2>/dev/null; then return 0; fi
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=1)
if sys.argv[2] == "http":
    s.sendall(b"GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
    data = b""
    while not data.endswith(b"Hello, world!"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    sys.exit(0 if data.startswith(b"HTTP/1.") and data.endswith(b"Hello, world!") else 1)
EOF
        sleep 0.1
    done
    tail -n 20 "$TMP/$name.log" >&2
    die "$name did not answer on 127.0.0.1:$port"
}

# Dies with the server's log if it is gone.
alive() {
    kill -0 "${PID[$1]}" 2>/dev/null && return 0
    tail -n 20 "$TMP/$1.log" >&2
    die "$1 died during the run (its log is above)"
}

# utime and stime of a whole process (all its threads), in clock ticks, as
# "USER SYS": user is the server's own code, sys the kernel's work on its
# behalf (system calls, and the TCP work they do).
cpu_user_sys() {
    local stat rest f
    stat=$(<"/proc/$1/stat")
    rest=${stat##*) } # the command name may hold spaces; skip past it
    read -r -a f <<<"$rest"
    echo "${f[11]} ${f[12]}" # fields 14 and 15 of proc(5), counted from 3
}

# utime + stime of a whole process, in clock ticks.
cpu_ticks() {
    local u s
    read -r u s <<<"$(cpu_user_sys "$1")"
    echo $((u + s))
}

# per_us TICKS N: TICKS clock ticks of CPU time in µs per item, for N items.
per_us() {
    awk -v t="$1" -v hz="$TICK" -v n="$2" 'BEGIN { printf "%.2f", (n > 0) ? t * 1e6 / hz / n : 0 }'
}

# Resident set size in KiB.
rss_kb() {
    awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# Open file descriptors of a process.
fd_count() {
    local fds=("/proc/$1/fd/"*)
    echo "${#fds[@]}"
}

# run_client OUTFILE COMMAND...: runs a client pinned to CLIENT_CPU in the
# background and waits for it, so that Ctrl-C or SIGTERM reach the trap at
# once instead of after the run.
run_client() {
    local out=$1 rc=0
    shift
    taskset -c "$CLIENT_CPU" "$@" >"$out" 2>&1 &
    CLIENT_PID=$!
    wait "$CLIENT_PID" || rc=$?
    CLIENT_PID=
    return "$rc"
}

# wrk_run OUT PORT MODE SECONDS: wrk -t1 -c$CONNS against 127.0.0.1:PORT for
# SECONDS through run_client; MODE is keep-alive (one request in flight per
# connection) or pipelined ($DEPTH requests per write, bench/pipeline.lua).
# CONNS and DEPTH are the calling script's settings.
# shellcheck disable=SC2153 # CONNS and DEPTH: see above
wrk_run() {
    local out=$1 port=$2 mode=$3 secs=$4 args=()
    [ "$mode" = pipelined ] && args=(-s "$BENCH_DIR/pipeline.lua")
    run_client "$out" timeout $((secs + 60)) wrk -t1 -c"$CONNS" -d"${secs}s" ${args[@]+"${args[@]}"} \
        "http://127.0.0.1:$port/" ${args[@]:+-- "$DEPTH"}
}

# ab_run OUT PORT N: N requests from ab at concurrency $AB_C without -k
# (HTTP/1.0, a new connection per request), through run_client. -r: a
# socket error counts as a failed request instead of ending ab.
ab_run() {
    run_client "$1" timeout 120 ab -r -q -n "$3" -c "$AB_C" "http://127.0.0.1:$2/"
}

# client_figure OUT FIGURE: a figure from the output of wrk or ab: requests
# (completed), rps, failed (ab only) or non2xx (ab only); empty if absent.
client_figure() {
    awk -v f="$2" '
        f == "requests" && / requests in / { print $1 }
        f == "requests" && /^Complete requests:/ { print $3 }
        f == "rps" && /^Requests\/sec:/ { print $2 }
        f == "rps" && /^Requests per second:/ { print $4 }
        f == "failed" && /^Failed requests:/ { print $3 }
        f == "non2xx" && /^Non-2xx responses:/ { print $3 }
    ' "$1"
}

# median NUMBERS...: the median of the numbers in the arguments (each may
# hold several, separated by spaces); empty when there are none.
median() {
    printf '%s\n' "$@" | tr -s '[:blank:]' '\n' | sort -g | awk 'NF { a[++n] = $1 }
        END { if (n == 0) print ""; else if (n % 2) print a[(n + 1) / 2]; else print (a[n / 2] + a[n / 2 + 1]) / 2 }'
}

# ratio A B [FORMAT]: A / B printed with FORMAT [%.2f], or "-" when either is
# missing or B is 0.
ratio() {
    awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" \
        'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf f "\n", a / b }'
}

# result SUITE SERVER MODE METRIC VALUE: one tab-separated line for report.py.
result() {
    [ -n "$RESULTS" ] || return 0
    printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$RESULTS"
}

# Builds what the scripts run (eddy and the C baselines) unless told not to
# (BENCH_NO_BUILD=1, as `make bench` does after building them itself). EDDY=PATH
# measures that eddy binary instead of build/eddy, and does not build it.
build_bench() {
    local targets=(build/bench/floor build/bench/pollfloor)
    [ -n "${EDDY:-}" ] || targets+=(build/eddy)
    if [ "${BENCH_NO_BUILD:-}" != 1 ]; then
        make -C "$ROOT" --no-print-directory -s "${targets[@]}" || die "the build failed"
    fi
    EDDY=${EDDY:-$ROOT/build/eddy}
    FLOOR="$ROOT/build/bench/floor"
    POLLFLOOR="$ROOT/build/bench/pollfloor"
    local f
    for f in "$EDDY" "$FLOOR" "$POLLFLOOR"; do
        [ -x "$f" ] || die "$f is missing (make build/eddy build/bench/floor build/bench/pollfloor)"
    done
}

# nginx_conf DIR PORT CONNECTIONS: a one-process nginx for the benchmarks,
# no logging per request, answering every request with "Hello, world!".
nginx_conf() {
    local dir=$1 port=$2 conns=$3
    mkdir -p "$dir"
    cat >"$dir/nginx.conf" <<EOF
# Minimal nginx for eddy's bench/: one process, no logging per request.
worker_processes 1;
worker_rlimit_nofile $((conns + 100));
daemon off;
master_process off;
pid $dir/nginx.pid;
error_log $dir/error.log warn;
events {
    worker_connections $conns;
}
http {
    access_log off;
    default_type text/plain;
    keepalive_requests 100000000;
    keepalive_timeout 3600s;
    client_body_temp_path $dir/body;
    proxy_temp_path $dir/proxy;
    fastcgi_temp_path $dir/fastcgi;
    uwsgi_temp_path $dir/uwsgi;
    scgi_temp_path $dir/scgi;
    server {
        listen 127.0.0.1:$port backlog=511;
        location / {
            return 200 "Hello, world!";
        }
        # nginx's own count of the requests it served (nginx_served).
        location = /nginx_status {
            stub_status;
        }
    }
}
EOF
}

# nginx_served: the requests the nginx started by start_http has served so
# far, by its own count (stub_status), this request for it included.
nginx_served() {
    "$PYTHON" -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().split()[9].decode())' \
        "http://127.0.0.1:${PORT[nginx]}/nginx_status"
}

# start_http NAME: starts one of the HTTP servers the benchmarks compare on a
# free port and waits until it answers. eddy's keep-alive and idle timeouts
# are raised so that idle connections stay for the whole run, as nginx's do.
start_http() {
    local name=$1 port conns=${2:-1024}
    port=$(free_port)
    case $name in
    eddy)
        start_server eddy "$port" "$EDDY" --log-level warning --drain-timeout 1 \
            --keepalive-timeout 3600 --idle-timeout 0 "http=127.0.0.1:$port"
        ;;
    nginx)
        nginx_conf "$TMP/nginx" "$port" "$conns"
        start_server nginx "$port" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
        ;;
    floor) start_server floor "$port" "$FLOOR" "$port" ;;
    poll) start_server poll "$port" "$POLLFLOOR" "$port" ;;
    python) start_server python "$port" "$PYTHON" "$BENCH_DIR/peers/seed000_http.py" "$port" ;;
    *) die "unknown server $name" ;;
    esac
    wait_ready "$name"
}
