#!/usr/bin/env bash
# bench/soak.sh: one eddy under a mixed load for a while, watching its memory
# and file descriptors. Only loopback traffic.
#
#   bench/soak.sh                      # 60 s (what `make soak` and CI run)
#   SOAK_SECONDS=600 bench/soak.sh     # the 10-minute soak
#
# eddy runs http, echo, discard and static (a temporary root) on 127.0.0.1
# ports the kernel picks (port 0, read back from its "listening on" lines).
# For SOAK_SECONDS these run at the same time:
#   keep-alive   wrk -c16 on http /, wrk -c8 on a static file
#   pipelined    wrk -c8 with bench/pipeline.lua (16 requests per write)
#   churn        ab -c4 without -k (a new connection per request) on http;
#                echo connections that live for one round trip; connections
#                that close at once or reset (SO_LINGER 0) without a word
#   echo         6 connections sending messages of 1 B to 32 KiB and
#                checking every byte that comes back; reconnecting now and then;
#                and, when build/eddy-load is there (EDDY_LOAD), eddy-load echo
#                on 8 connections, 4 messages of 2 KiB in flight on each
#                (20,000/s), plus eddy-load echo --new-conn (500 connections/s)
#   discard      a stream of 256 KiB per connection, then a half-close and EOF
#   slow         4 clients that send each request a byte at a time and read
#                a 256 KiB static file 4 KiB at a time through an 8 KiB
#                receive buffer (and slow requests to http)
#   ill-formed   malformed requests, oversized headers, requests cut off by
#                a reset: counted, never failing the run (the server only has
#                to survive them)
# Every second, VmRSS (/proc/PID/status), the number of open fds
# (/proc/PID/fd), and VmRSS's two parts, anonymous memory (the heap) and
# file pages (code and libraries paged in), are appended to
# $SOAK_OUT/samples.csv (elapsed_s,rss_kib,fds,phase,anon_kib,file_kib); the
# parts are reported beside the verdict, to tell a growing heap from code
# paged in late. The clients' reports and eddy's log land in
# $SOAK_OUT too, and the verdict in $SOAK_OUT/summary.txt.
#
# Pass criteria (all must hold; each failed one is named, and the exit is 1):
#   rss     warm-up is the first max(10 s, 20% of SOAK_SECONDS). R_warm is the
#           median VmRSS of the samples in the last W s of the warm-up, R_end
#           the median of the last W s of load, W = max(5 s, 5% of
#           SOAK_SECONDS): 30 s in the 10-minute soak. RSS rises for a second
#           or two while more buffers than usual are in flight, and a median
#           over the window looks past those; a leak moves every sample.
#           (R_end - R_warm) / R_warm
#           must be below SOAK_RSS_PCT percent (1), or R_end - R_warm below
#           SOAK_RSS_SLACK_KIB (128). The slack is there because eddy's RSS
#           is small (2-3 MiB, so 1% is 6 pages) and the heap only ratchets
#           up to the largest number of buffers ever in flight at once: one
#           new peak of slow readers adds a 32-64 KiB buffer for good. A leak
#           of even one byte per request (tens of thousands a second here)
#           passes 128 KiB within seconds.
#   fds     after the load stops, the fd count must come back to its value
#           before the load (eddy listening, no client) within
#           SOAK_FD_DEADLINE seconds (30).
#   errors  well-formed clients see no error: wrk reports no non-2xx
#           response and no socket error, ab no failed or non-2xx request,
#           the echo, discard, churn and slow clients no mismatch, reset,
#           timeout or unexpected close.
#   server  eddy is alive at the end, exits 0 on SIGTERM, and logs no ERROR.
#
# Environment: SOAK_SECONDS [60] (at least 20), SOAK_OUT [build/soak],
# EDDY [build/eddy], EDDY_LOAD [eddy-load beside EDDY; none: Python only],
# SOAK_RSS_PCT [1], SOAK_RSS_SLACK_KIB [128], SOAK_FD_DEADLINE [30].
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/.." && pwd)
SOAK_SECONDS=${SOAK_SECONDS:-60}
OUT=${SOAK_OUT:-$ROOT/build/soak}
EDDY=${EDDY:-$ROOT/build/eddy}
EDDY_LOAD=${EDDY_LOAD:-$(dirname "$EDDY")/eddy-load}
RSS_PCT=${SOAK_RSS_PCT:-1}
RSS_SLACK=${SOAK_RSS_SLACK_KIB:-128}
FD_DEADLINE=${SOAK_FD_DEADLINE:-30}
PYTHON=/usr/bin/python3

die() { echo "soak: FAIL: $*" >&2; exit 1; }

[[ $SOAK_SECONDS =~ ^[0-9]+$ ]] && [ "$SOAK_SECONDS" -ge 20 ] ||
    die "SOAK_SECONDS must be a whole number of seconds, at least 20"
[ -x "$EDDY" ] || die "no eddy binary at $EDDY (run make, or set EDDY)"
for tool in wrk ab "$PYTHON"; do
    command -v "$tool" >/dev/null || die "$tool is needed (scripts/ensure-deps test installs it)"
done
WARMUP=$((SOAK_SECONDS / 5 > 10 ? SOAK_SECONDS / 5 : 10))
WINDOW=$((SOAK_SECONDS / 20 > 5 ? SOAK_SECONDS / 20 : 5))

mkdir -p "$OUT"
rm -f "$OUT"/*.txt "$OUT"/*.csv "$OUT"/*.json "$OUT"/*.log
TMP=$(mktemp -d "${TMPDIR:-/tmp}/eddy-soak.XXXXXX")
EDDY_PID=
LANE_PIDS=()

cleanup() {
    local rc=$? pid i
    trap - EXIT INT TERM
    for pid in "${LANE_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${LANE_PIDS[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$EDDY_PID" ] && kill -0 "$EDDY_PID" 2>/dev/null; then
        kill -TERM "$EDDY_PID" 2>/dev/null || true
        for ((i = 0; i < 150; i++)); do
            kill -0 "$EDDY_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$EDDY_PID" 2>/dev/null || true
        wait "$EDDY_PID" 2>/dev/null || true
    fi
    rm -rf "$TMP"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# ---- the server -------------------------------------------------------------------
mkdir -p "$TMP/root"
echo "<!doctype html><title>soak</title><p>soak" >"$TMP/root/index.html"
printf 'small static file\n' >"$TMP/root/small.txt"
head -c $((256 * 1024)) /dev/urandom >"$TMP/root/big.bin"

"$EDDY" --root "$TMP/root" http=127.0.0.1:0 echo=127.0.0.1:0 discard=127.0.0.1:0 \
    static=127.0.0.1:0 2>"$OUT/eddy.log" &
EDDY_PID=$!

declare -A PORT=()
for ((i = 0; i < 100; i++)); do
    while read -r svc port; do
        PORT[$svc]=$port
    done < <(sed -n 's/.* - INFO - \([a-z]*\) listening on 127\.0\.0\.1:\([0-9]*\).*/\1 \2/p' \
        "$OUT/eddy.log")
    [ "${#PORT[@]}" -ge 4 ] && break
    kill -0 "$EDDY_PID" 2>/dev/null || die "eddy exited at start: $(cat "$OUT/eddy.log")"
    sleep 0.1
done
[ "${#PORT[@]}" -ge 4 ] || die "eddy did not listen on all four services within 10 s"
echo "soak: eddy pid $EDDY_PID: http ${PORT[http]} echo ${PORT[echo]}" \
    "discard ${PORT[discard]} static ${PORT[static]}; ${SOAK_SECONDS} s, warm-up ${WARMUP} s"

rss() { awk '/^VmRSS:/ {print $2}' "/proc/$EDDY_PID/status" 2>/dev/null || echo 0; }
# "ANON,FILE": RssAnon and RssFile (shared memory, RssShmem, eddy has none).
rss_parts() {
    awk '/^RssAnon:/ {a = $2} /^RssFile:/ {f = $2} END {print a + 0 "," f + 0}' \
        "/proc/$EDDY_PID/status" 2>/dev/null || echo 0,0
}
fds() { ls "/proc/$EDDY_PID/fd" 2>/dev/null | wc -l; }
BASE_FDS=$(fds)

# ---- the Python clients -----------------------------------------------------------
cat >"$TMP/clients.py" <<'PY'
"""soak clients: echo, discard, churn, slow and ill-formed, one thread each,
until the deadline; prints a JSON report of what every lane saw."""
import hashlib, json, os, random, socket, sys, threading, time

ports = dict(a.split("=") for a in sys.argv[2:])
deadline = time.monotonic() + float(sys.argv[1])
BIG = open(os.environ["SOAK_BIG"], "rb").read()
BIG_SHA = hashlib.sha256(BIG).digest()
POOL = os.urandom(1 << 20)
lock = threading.Lock()
report = {}  # lane -> {"ok": n, "errors": n, "first_error": text}


def count(lane, ok=0, err=None):
    with lock:
        r = report.setdefault(lane, {"ok": 0, "errors": 0, "first_error": None})
        r["ok"] += ok
        if err is not None:
            r["errors"] += 1
            r["first_error"] = r["first_error"] or err


def conn(port, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(10)
    s.connect(("127.0.0.1", int(port)))
    return s


def recv_exact(s, n):
    buf = bytearray()
    while len(buf) < n:
        b = s.recv(min(n - len(buf), 65536))
        if not b:
            raise EOFError(f"EOF after {len(buf)} of {n} bytes")
        buf += b
    return bytes(buf)


def read_response(s, slow=False):
    """status, body of one response framed by Content-Length."""
    head = bytearray()
    while b"\r\n\r\n" not in head:
        b = s.recv(4096 if slow else 65536)
        if not b:
            raise EOFError("EOF before a response")
        head += b
        if slow:
            time.sleep(0.01)
    raw, _, rest = bytes(head).partition(b"\r\n\r\n")
    lines = raw.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length = next(int(l.split(":", 1)[1]) for l in lines[1:]
                  if l.lower().startswith("content-length:"))
    body = bytearray(rest)
    while len(body) < length:
        b = s.recv(4096 if slow else 65536)
        if not b:
            raise EOFError(f"EOF after {len(body)} of {length} body bytes")
        body += b
        if slow:
            time.sleep(0.01)
    return status, bytes(body[:length])


def lane(name, fn):
    def run():
        rnd = random.Random(name)
        while time.monotonic() < deadline:
            try:
                fn(rnd)
            except Exception as exc:  # one error, then go on with a new connection
                count(name, err=f"{type(exc).__name__}: {exc}")
                time.sleep(0.05)
    t = threading.Thread(target=run, name=name, daemon=True)
    t.start()
    return t


def echo(rnd):
    with conn(ports["echo"]) as s:
        for _ in range(rnd.randint(20, 400)):
            if time.monotonic() >= deadline:
                return
            n = rnd.choice((1, 7, 100, 1500, 4096, 16384, 32768, rnd.randint(1, 32768)))
            off = rnd.randrange(len(POOL) - n)
            msg = POOL[off:off + n]
            s.sendall(msg)
            if recv_exact(s, n) != msg:
                raise ValueError(f"echo of {n} bytes came back different")
            count("echo", ok=1)


def discard(rnd):
    with conn(ports["discard"]) as s:
        for i in range(16):
            s.sendall(POOL[i * 16384:(i + 1) * 16384])
        s.shutdown(socket.SHUT_WR)
        if s.recv(1) != b"":
            raise ValueError("discard sent something back")
    count("discard", ok=1)


def churn(rnd):
    kind = rnd.randrange(3)
    s = conn(ports["echo"])
    try:
        if kind == 0:  # one round trip, half-close, EOF
            s.sendall(b"churn\n")
            s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                b = s.recv(64)
                if not b:
                    break
                got += b
            if got != b"churn\n":
                raise ValueError(f"churn echo got {got!r}")
        elif kind == 1:  # connect and close without a word
            pass
        else:  # connect, send, reset
            s.sendall(b"bye")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    finally:
        s.close()
    count("churn", ok=1)
    time.sleep(0.002)


def slow_send(s, data):
    for i in range(len(data)):
        s.sendall(data[i:i + 1])
        time.sleep(0.005)


def slow(rnd):
    with conn(ports["static"], rcvbuf=8192) as s:
        for _ in range(3):
            slow_send(s, b"GET /big.bin HTTP/1.1\r\nHost: soak\r\n\r\n")
            status, body = read_response(s, slow=True)
            if status != 200 or hashlib.sha256(body).digest() != BIG_SHA:
                raise ValueError(f"slow static: {status}, {len(body)} bytes, not the file")
            count("slow", ok=1)
    with conn(ports["http"]) as s:
        slow_send(s, b"POST / HTTP/1.1\r\nHost: soak\r\nContent-Length: 5\r\n\r\nhello")
        status, body = read_response(s)
        if status != 200 or body != b"hello":
            raise ValueError(f"slow POST: {status} {body[:40]!r}")
        count("slow", ok=1)


def illformed(rnd):
    """Errors here are the point: only what the server says is recorded."""
    kind = rnd.randrange(4)
    try:
        with conn(ports["http"]) as s:
            if kind == 0:
                s.sendall(b"GARBAGE\x00\x01 / HTTP/1.1\r\n\r\n")
            elif kind == 1:
                s.sendall(b"GET / HTTP/1.1\r\nHost: soak\r\nX: " + b"a" * 20000 + b"\r\n\r\n")
            elif kind == 2:
                s.sendall(b"GET / HTTP/1.1\r\nHost: so")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
                count("ill-formed", ok=1)
                return
            else:
                s.sendall(b"POST / HTTP/1.1\r\nHost: soak\r\nContent-Length: 10\r\n\r\nabc")
                s.shutdown(socket.SHUT_WR)
            s.recv(4096)
        count("ill-formed", ok=1)
    except OSError:
        count("ill-formed", ok=1)
    time.sleep(0.01)


threads = [lane(f"echo", echo) for _ in range(6)]
threads += [lane("discard", discard), lane("churn", churn), lane("ill-formed", illformed)]
threads += [lane("slow", slow) for _ in range(4)]
for t in threads:
    t.join(max(0.0, deadline - time.monotonic()) + 30)
stuck = [t.name for t in threads if t.is_alive()]
if stuck:
    count("python", err=f"lanes still running 30 s after the deadline: {stuck}")
print(json.dumps(report, indent=1))
PY

# ---- the load ---------------------------------------------------------------------
HTTP_URL="http://127.0.0.1:${PORT[http]}/"
STATIC_URL="http://127.0.0.1:${PORT[static]}/small.txt"
BOUND=$((SOAK_SECONDS + 60)) # no client may outlive the soak by more than this

lane_start() { # name, command...: runs it in the background, output to $OUT/name.txt
    local name=$1
    shift
    timeout -k 5 "$BOUND" "$@" >"$OUT/$name.txt" 2>&1 &
    LANE_PIDS+=($!)
}
lane_start wrk-keepalive wrk -t1 -c16 -d"${SOAK_SECONDS}s" --timeout 10s "$HTTP_URL"
lane_start wrk-static wrk -t1 -c8 -d"${SOAK_SECONDS}s" --timeout 10s "$STATIC_URL"
lane_start wrk-pipelined wrk -t1 -c8 -d"${SOAK_SECONDS}s" --timeout 10s \
    -s "$HERE/pipeline.lua" "$HTTP_URL" -- 16
# -t implies -n 50000; the -n after it lifts that, so the time limit decides.
lane_start ab-churn ab -r -s 10 -c 4 -t "$SOAK_SECONDS" -n 20000000 "$HTTP_URL"
if [ -x "$EDDY_LOAD" ]; then
    lane_start eddy-load-echo "$EDDY_LOAD" -c 8 -P 4 -s 2048 -R 20000 -d "${SOAK_SECONDS}s" \
        --timeout 10s --json echo "127.0.0.1:${PORT[echo]}"
    lane_start eddy-load-churn "$EDDY_LOAD" -c 4 --new-conn -R 500 -d "${SOAK_SECONDS}s" \
        --timeout 10s --json echo "127.0.0.1:${PORT[echo]}"
fi
export SOAK_BIG="$TMP/root/big.bin"
lane_start clients "$PYTHON" "$TMP/clients.py" "$SOAK_SECONDS" \
    "http=${PORT[http]}" "echo=${PORT[echo]}" "discard=${PORT[discard]}" \
    "static=${PORT[static]}"

echo "elapsed_s,rss_kib,fds,phase,anon_kib,file_kib" >"$OUT/samples.csv"
T0=$(date +%s.%N)
elapsed() { awk -v t0="$T0" -v t="$(date +%s.%N)" 'BEGIN {printf "%.1f", t - t0}'; }
next_tick=1
while :; do
    now=$(elapsed)
    awk -v a="$now" -v b="$SOAK_SECONDS" 'BEGIN {exit !(a >= b)}' && break
    kill -0 "$EDDY_PID" 2>/dev/null || die "server: eddy died during the load (see $OUT/eddy.log)"
    phase=load
    awk -v a="$now" -v w="$WARMUP" 'BEGIN {exit !(a < w)}' && phase=warmup
    echo "$now,$(rss),$(fds),$phase,$(rss_parts)" >>"$OUT/samples.csv"
    # Sleep to the next whole second of the run, so samples do not drift.
    sleep "$(awk -v n="$next_tick" -v a="$(elapsed)" 'BEGIN {d = n - a; print (d > 0 ? d : 0)}')"
    next_tick=$((next_tick + 1))
done

# The clients stop by themselves at the deadline; wait for them (bounded by
# their timeout), then for the fd count to settle.
lane_rc=0
for pid in "${LANE_PIDS[@]}"; do
    wait "$pid" || lane_rc=$?
done
LANE_PIDS=()
kill -0 "$EDDY_PID" 2>/dev/null || die "server: eddy died during the load (see $OUT/eddy.log)"
fd_end=$(fds)
for ((i = 0; i < FD_DEADLINE * 10 && fd_end > BASE_FDS; i++)); do
    sleep 0.1
    fd_end=$(fds)
    if ((i % 10 == 0)); then
        echo "$(elapsed),$(rss),$fd_end,drain,$(rss_parts)" >>"$OUT/samples.csv"
    fi
done
echo "$(elapsed),$(rss),$fd_end,after,$(rss_parts)" >>"$OUT/samples.csv"

# ---- the verdict ------------------------------------------------------------------
failures=()
summary() { echo "$*" | tee -a "$OUT/summary.txt"; }

# RSS (column COL of the samples: 2 VmRSS, 5 anon, 6 file): medians of the
# last WINDOW seconds of warm-up and of load, and the growth in percent.
rss_medians() {
    awk -F, -v col="$1" -v w="$WARMUP" -v s="$SOAK_SECONDS" -v win="$WINDOW" '
    function median(a, n,   i, j, t) {
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
        return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
    }
    NR > 1 && $4 != "drain" && $4 != "after" {
        if ($1 >= w - win && $1 < w) wa[++nw] = $col
        if ($1 >= s - win && $1 < s) ea[++ne] = $col
    }
    END {
        if (!nw || !ne) { print 0, 0, "nan"; exit }
        rw = median(wa, nw); re = median(ea, ne)
        if (!rw) { print 0, 0, "nan"; exit }
        printf "%d %d %.3f\n", rw, re, (re - rw) * 100 / rw
    }' "$OUT/samples.csv"
}
read -r r_warm r_end growth < <(rss_medians 2)
read -r a_warm a_end _ < <(rss_medians 5)
read -r f_warm f_end _ < <(rss_medians 6)
rss_peak=$(awk -F, 'NR > 1 && $2 > m {m = $2} END {print m + 0}' "$OUT/samples.csv")
fd_peak=$(awk -F, 'NR > 1 && $3 > m {m = $3} END {print m + 0}' "$OUT/samples.csv")
summary "soak: ${SOAK_SECONDS} s, warm-up ${WARMUP} s, RSS medians over ${WINDOW} s; samples in $OUT/samples.csv"
summary "  rss     warm-up ${r_warm} KiB, end ${r_end} KiB, growth ${growth}% = $((r_end - r_warm)) KiB" \
    "(limit ${RSS_PCT}% or ${RSS_SLACK} KiB), peak ${rss_peak} KiB;" \
    "of which anon ${a_warm} -> ${a_end} KiB, file ${f_warm} -> ${f_end} KiB"
if [ "$growth" = nan ] || { awk -v g="$growth" -v l="$RSS_PCT" 'BEGIN {exit !(g >= l)}' &&
    [ $((r_end - r_warm)) -ge "$RSS_SLACK" ]; }; then
    failures+=("rss: grew ${growth}% ($((r_end - r_warm)) KiB) after warm-up (limit ${RSS_PCT}% or ${RSS_SLACK} KiB)")
fi
summary "  fds     before ${BASE_FDS}, peak ${fd_peak}, after ${fd_end}"
[ "$fd_end" -le "$BASE_FDS" ] ||
    failures+=("fds: ${fd_end} open ${FD_DEADLINE} s after the load, ${BASE_FDS} before it")

# Client errors.
errors=0
wrk_report() { # name: requests, non-2xx, socket errors
    local f="$OUT/$1.txt" req non2xx sock
    req=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$f")
    non2xx=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$f")
    sock=$(sed -n 's/^ *Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p' "$f")
    local bad=$((${non2xx:-0} + $(echo "${sock:-0}" | tr ' ' '+')))
    [ -n "$req" ] || bad=$((bad + 1))
    summary "  $1: ${req:-no report} requests, non-2xx ${non2xx:-0}, socket errors ${sock:-0 0 0 0}"
    errors=$((errors + bad))
}
wrk_report wrk-keepalive
wrk_report wrk-static
wrk_report wrk-pipelined
ab_done=$(sed -n 's/^Complete requests: *\([0-9]*\)/\1/p' "$OUT/ab-churn.txt")
ab_failed=$(sed -n 's/^Failed requests: *\([0-9]*\)/\1/p' "$OUT/ab-churn.txt")
ab_non2xx=$(sed -n 's/^Non-2xx responses: *\([0-9]*\)/\1/p' "$OUT/ab-churn.txt")
summary "  ab-churn: ${ab_done:-no report} requests, failed ${ab_failed:-?}, non-2xx ${ab_non2xx:-0}"
[ -n "$ab_done" ] && [ "${ab_failed:-1}" -eq 0 ] && [ "${ab_non2xx:-0}" -eq 0 ] ||
    errors=$((errors + ${ab_failed:-1} + ${ab_non2xx:-0}))
"$PYTHON" - "$OUT" >"$TMP/clients-verdict" <<'PY'
import glob, json, os, sys
bad = 0
for path in sorted(glob.glob(os.path.join(sys.argv[1], "eddy-load-*.txt"))):
    name = os.path.basename(path)[:-4]
    try:
        r = json.loads(open(path).read().strip().splitlines()[-1])
    except Exception as exc:
        print(f"  {name}: no report ({exc})")
        bad += 1
        continue
    first = f"; first: {r['first_error']}" if r.get("first_error") else ""
    print(f"  {name}: {r['ok']} ok, {r['errors_total']} errors, {r['failed']} failed,"
          f" {r.get('unsent', 0)} unsent{first}")
    bad += r["errors_total"] + r["failed"] + (0 if r["ok"] else 1)
try:
    report = json.load(open(os.path.join(sys.argv[1], "clients.txt")))
except Exception as exc:
    print(f"  python clients: no report ({exc})")
    print(f"errors={bad + 1}")
    sys.exit()
for lane in sorted(report):
    r = report[lane]
    note = f" (not counted: ill-formed on purpose)" if lane == "ill-formed" else ""
    first = f"; first: {r['first_error']}" if r["first_error"] else ""
    print(f"  {lane}: {r['ok']} ok, {r['errors']} errors{note}{first}")
    if lane != "ill-formed":
        bad += r["errors"]
for lane in ("echo", "discard", "churn", "slow"):
    if not report.get(lane, {}).get("ok"):
        print(f"  {lane}: nothing completed")
        bad += 1
print(f"errors={bad}")
PY
grep -v '^errors=' "$TMP/clients-verdict" | tee -a "$OUT/summary.txt"
py_errors=$(sed -n 's/^errors=//p' "$TMP/clients-verdict")
errors=$((errors + ${py_errors:-1}))
[ "$lane_rc" -eq 0 ] || { summary "  a client exited with status $lane_rc"; errors=$((errors + 1)); }
[ "$errors" -eq 0 ] || failures+=("errors: well-formed clients saw $errors error(s) (see $OUT/*.txt)")

# The server: alive, clean exit, no ERROR in its log.
kill -0 "$EDDY_PID" 2>/dev/null || failures+=("server: eddy is gone")
kill -TERM "$EDDY_PID" 2>/dev/null || true
rc=0
for ((i = 0; i < 150; i++)); do
    kill -0 "$EDDY_PID" 2>/dev/null || break
    sleep 0.1
done
wait "$EDDY_PID" || rc=$?
EDDY_PID=
[ "$rc" -eq 0 ] || failures+=("server: eddy exited with $rc after SIGTERM")
if grep -q ' - ERROR - ' "$OUT/eddy.log"; then
    failures+=("server: ERROR in its log: $(grep -m1 ' - ERROR - ' "$OUT/eddy.log")")
fi

if [ ${#failures[@]} -gt 0 ]; then
    for f in "${failures[@]}"; do
        summary "soak: FAIL: $f"
    done
    exit 1
fi
summary "soak: PASS"
