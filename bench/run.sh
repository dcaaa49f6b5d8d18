#!/usr/bin/env bash
# bench/run.sh: every benchmark suite, each under a time limit, then
# docs/benchmarks.md and its plots (docs/benchmarks/*.png). `make bench` runs
# it after building eddy and the baselines.
#
#   bench/run.sh                          # about 10 minutes
#   BENCH_SECONDS=2 bench/run.sh          # quicker, noisier
#   BENCH_ONLY="http callgrind" bench/run.sh
#
# Environment (defaults in brackets):
#   BENCH_SECONDS  seconds per measured run of wrk or eddy-load [5]
#   BENCH_ONLY     the suites to run, of: http scale callgrind echo syscalls
#                  load_vs_wrk [all six]
#   BENCH_NOTE     a line of text put at the top of the results ("measured on ...")
#   BENCH_DOC      the page written [docs/benchmarks.md]
#   BENCH_COMMIT   what eddy is, for the page [git describe of this tree]
# and each suite's own settings (see the header of bench/<suite>.sh).
#
# A suite that fails or overruns its limit does not stop the others: the
# page says which one failed, and run.sh exits 1 at the end.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export BENCH_SECONDS=${BENCH_SECONDS:-5}
BENCH_ONLY=${BENCH_ONLY:-"http scale callgrind echo syscalls load_vs_wrk"}
DOC=${BENCH_DOC:-$ROOT/docs/benchmarks.md}
RESULTS_DIR=$ROOT/build/bench/results
PYTHON=/usr/bin/python3

if ! [[ $BENCH_SECONDS =~ ^[1-9][0-9]*$ ]]; then
    echo "bench: BENCH_SECONDS must be a whole number of seconds, not '$BENCH_SECONDS'" >&2
    exit 2
fi
for suite in $BENCH_ONLY; do
    [ -x "$ROOT/bench/$suite.sh" ] || {
        echo "bench: no suite '$suite' (bench/$suite.sh); suites: http scale callgrind echo syscalls load_vs_wrk" >&2
        exit 2
    }
done
"$ROOT/scripts/ensure-deps" bench || exit 1
[ -x "$PYTHON" ] || { echo "bench: $PYTHON is needed" >&2; exit 1; }

rm -rf "$RESULTS_DIR"
mkdir -p "$RESULTS_DIR"
export RESULTS=$RESULTS_DIR/results.tsv
: >"$RESULTS"
{
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
    printf 'commit\t%s\n' "${BENCH_COMMIT:-$(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)}"
    printf 'kernel\t%s\n' "$(uname -sr)"
    printf 'cpus\t%s\n' "$(nproc)"
    printf 'cpu_model\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    printf 'seconds\t%s\n' "$BENCH_SECONDS"
    printf 'load_before\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'note\t%s\n' "${BENCH_NOTE:-}"
} >"$RESULTS_DIR/meta.tsv"

# The time limit of each suite, generous but finite: what it should take at
# BENCH_SECONDS, plus room for start-up on a slow machine.
limit() {
    case $1 in
    http) echo $((120 + 3 * (6 * BENCH_SECONDS + 30))) ;;
    scale) echo $((240 + 18 * BENCH_SECONDS)) ;;
    callgrind) echo 300 ;;
    echo) echo $((180 + 3 * 6 * (BENCH_SECONDS + 3))) ;;
    syscalls) echo 300 ;; # its runs are short whatever BENCH_SECONDS is
    load_vs_wrk) echo $((120 + 2 * 3 * 2 * (BENCH_SECONDS + 5))) ;; # 2 modes, 3 rounds, 2 clients
    *) echo 600 ;;
    esac
}

failed=()
CHILD=
trap '[ -z "$CHILD" ] || kill -TERM "$CHILD" 2>/dev/null || true' INT TERM
for suite in $BENCH_ONLY; do
    lim=$(limit "$suite")
    echo "=== bench/$suite.sh (at most ${lim}s)"
    start=$SECONDS
    rc=0
    # timeout signals the suite's whole process group, so its clients stop
    # too; the suite's EXIT trap then stops its servers.
    timeout -k 20 "$lim" "$ROOT/bench/$suite.sh" > >(tee "$RESULTS_DIR/$suite.log") 2>&1 &
    CHILD=$!
    wait "$CHILD" || rc=$?
    CHILD=
    took=$((SECONDS - start))
    if [ "$rc" -eq 0 ]; then
        state=ok
    elif [ "$rc" -eq 124 ]; then
        state="**failed: over its ${lim}s limit** (build/bench/results/$suite.log)"
        failed+=("$suite")
    else
        state="**failed (exit $rc)**: $(grep -m1 'bench: error' "$RESULTS_DIR/$suite.log" | sed 's/^bench: error: //' || true)"
        failed+=("$suite")
    fi
    printf '%s\t%s\t%s\n' "$suite" "$state" "$took" >>"$RESULTS_DIR/status.tsv"
done
printf 'load_after\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)" >>"$RESULTS_DIR/meta.tsv"

"$PYTHON" "$ROOT/bench/report.py" "$RESULTS_DIR" "$DOC" "$(dirname "$DOC")/benchmarks"
if [ ${#failed[@]} -gt 0 ]; then
    echo "bench: failed: ${failed[*]} (logs in build/bench/results/)" >&2
    exit 1
fi
