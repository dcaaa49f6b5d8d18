#!/usr/bin/env bash
# bench/callgrind.sh: user-space instructions per HTTP request, counted by
# valgrind's callgrind, for eddy, nginx and the floor (bench/floor.c).
# Instruction counts do not depend on the machine's load, so unlike req/s
# and CPU time they are the same on a busy machine as on an idle one.
#
# Each server runs under callgrind twice, serving CG_SHORT and then CG_LONG
# keep-alive requests, one after the other on one connection (a client that
# waits for each response, so every run does the same work in the same
# order). Instructions per request = (Ir(long) - Ir(short)) / (CG_LONG -
# CG_SHORT): start-up and shutdown cancel out. The same subtraction per
# function gives the top functions of eddy's profile per request.
#
#   bench/callgrind.sh                  # about half a minute
#   CG_LONG=4000 bench/callgrind.sh     # quicker
#
# Environment (defaults in brackets):
#   CG_SHORT / CG_LONG   requests of the two runs [2000 / 12000]
#   CG_SERVERS           servers measured [eddy nginx floor]
#   CG_TOP               functions listed per server [5]
#   RESULTS              optional file that gets the figures as tab-separated lines
set -euo pipefail

# shellcheck source=bench/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

CG_SHORT=${CG_SHORT:-2000}
CG_LONG=${CG_LONG:-12000}
CG_SERVERS=${CG_SERVERS:-"eddy nginx floor"}
CG_TOP=${CG_TOP:-5}
((CG_LONG > CG_SHORT)) || die "CG_LONG ($CG_LONG) must be larger than CG_SHORT ($CG_SHORT)"

"$ROOT/scripts/ensure-deps" bench || die "tools are missing (above)"
need_tools valgrind callgrind_annotate nginx taskset
[ -x "$PYTHON" ] || die "$PYTHON is needed for the client"
build_bench

# The client: N requests on one keep-alive connection, each response read
# whole (by its Content-Length) before the next request goes.
cat >"$TMP/client.py" <<'EOF'
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", port), timeout=30)
req = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
buf = b""
for i in range(n):
    s.sendall(req)
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("server closed the connection after %d responses" % i)
        buf += chunk
    head, _, buf = buf.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    while len(buf) < length:
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("server closed the connection in response %d" % i)
        buf += chunk
    if not head.startswith(b"HTTP/1.1 200") or buf[:length] != b"Hello, world!":
        sys.exit("unexpected response %d: %r" % (i, head[:100]))
    buf = buf[length:]
print(n)
EOF

# Starts server $1 under callgrind, serves $2 requests, stops it; the profile
# is left in $TMP/cg.$1.$2.
profile() {
    local name=$1 n=$2 port out="$TMP/cg.$1.$2"
    port=$(free_port)
    local vg=(valgrind --tool=callgrind --callgrind-out-file="$out" --dump-instr=no)
    case $name in
    eddy)
        start_server cg "$port" "${vg[@]}" "$EDDY" --log-level warning --drain-timeout 1 \
            --keepalive-timeout 3600 "http=127.0.0.1:$port"
        ;;
    nginx)
        nginx_conf "$TMP/nginx" "$port" 1024
        start_server cg "$port" "${vg[@]}" nginx -p "$TMP/nginx" -e "$TMP/nginx/error.log" -c "$TMP/nginx/nginx.conf"
        ;;
    floor) start_server cg "$port" "${vg[@]}" "$FLOOR" "$port" ;;
    *) die "unknown server $name" ;;
    esac
    wait_ready cg
    run_client "$TMP/client.out" timeout 300 "$PYTHON" "$TMP/client.py" "$port" "$n" ||
        die "$name under callgrind: the client failed: $(cat "$TMP/client.out")"
    stop_server cg
    [ -s "$out" ] || die "$name: callgrind wrote no profile ($(tail -n 5 "$TMP/cg.log" | tr '\n' ' '))"
}

# The total instructions of a profile.
total_ir() {
    awk '/^(summary|totals):/ { print $2; exit }' "$1"
}

# "Ir<TAB>function" for every function of a profile, self cost. callgrind
# lists an inlined piece of a function under the file it came from, so the
# pieces are added up by function name.
per_function() {
    callgrind_annotate --inclusive=no --threshold=100 --auto=no "$1" 2>/dev/null |
        awk '/file:function/ { on = 1; getline; next }
             on && /^ *$/ { on = 0 }
             on && match($0, /^ *[0-9,]+ +\( *[0-9.]+%\) +/) {
                 ir = substr($0, 1, RLENGTH); sub(/\(.*/, "", ir); gsub(/[ ,]/, "", ir)
                 fn = substr($0, RLENGTH + 1); sub(/ \[.*\]$/, "", fn); sub(/^[^:]*:/, "", fn)
                 cost[fn] += ir }
             END { for (fn in cost) print cost[fn] "\t" fn }'
}

echo "bench: callgrind: $CG_SHORT and $CG_LONG keep-alive requests per server, one connection"
for name in $CG_SERVERS; do
    profile "$name" "$CG_SHORT"
    profile "$name" "$CG_LONG"
    short=$(total_ir "$TMP/cg.$name.$CG_SHORT")
    long=$(total_ir "$TMP/cg.$name.$CG_LONG")
    per=$(awk -v a="$long" -v b="$short" -v n=$((CG_LONG - CG_SHORT)) 'BEGIN { printf "%.0f", (a - b) / n }')
    result callgrind "$name" keep-alive ir_per_req "$per"
    printf '  %-6s %8s instructions per request (user space)\n' "$name" "$per"
    # Per function, the same subtraction; the top CG_TOP by cost per request.
    per_function "$TMP/cg.$name.$CG_SHORT" >"$TMP/fn.short"
    per_function "$TMP/cg.$name.$CG_LONG" >"$TMP/fn.long"
    awk -F '\t' -v n=$((CG_LONG - CG_SHORT)) -v total="$per" '
        NR == FNR { short[$2] += $1; next }
        { long[$2] += $1 }
        END { for (f in long) printf "%.1f\t%.1f\t%s\n", (long[f] - short[f]) / n, 100 * (long[f] - short[f]) / n / total, f }
    ' "$TMP/fn.short" "$TMP/fn.long" | sort -t "$(printf '\t')" -k1,1 -g -r | awk -v n="$CG_TOP" 'NR <= n' >"$TMP/fn.top"
    rank=0
    while IFS=$'\t' read -r ir pct fn; do
        rank=$((rank + 1))
        printf '         %8s  %5s%%  %s\n' "$ir" "$pct" "$fn"
        result callgrind "$name" "top$rank" "$fn" "$ir"
    done <"$TMP/fn.top"
done
