#!/usr/bin/env bash
# What each worker costs a check: wall time and opens of `-n cwpw` with W workers running,
# against `-n cwpwnone` (no workers, same host: the scan alone), for one or more builds of
# check_workers taking turns, so that load from elsewhere falls on all of them.
#
# Usage: bash benches/per_worker.sh BIN [BIN...]     e.g. an old and a new build
#   W=1000       sleeping workers named cwpw to spawn
#   RUNS=30      timed runs per command, in ROUNDS=5 rounds
#
# Tick files go to tmpfs (/dev/shm), so the disk's fsync does not blur the figures. Needs
# strace for the open counts. Kills exactly the pids it started when it ends.
set -euo pipefail

W=${W:-1000}
RUNS=${RUNS:-30}
ROUNDS=${ROUNDS:-5}
(($#)) || { echo "usage: $0 BIN [BIN...]" >&2; exit 2; }
for bin in "$@"; do [[ -x $bin ]] || { echo "$bin: not executable" >&2; exit 2; }; done

TMP=$(mktemp -d /tmp/cwpw.XXXXXX)
STATE=$(mktemp -d /dev/shm/cwpw.XXXXXX)
PIDS=()
cleanup() {
    trap - EXIT INT TERM
    exec 2>/dev/null
    ((${#PIDS[@]})) && kill -KILL "${PIDS[@]}" || true
    wait || true
    rm -rf "$TMP" "$STATE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp /bin/sleep "$TMP/cwpw"
for ((i = 0; i < W; i++)); do
    "$TMP/cwpw" 3600 &
    PIDS+=("$!")
done
sleep 2

# median wall time in ms of RUNS runs of "$@", in ROUNDS rounds taken in turn by the callers
time_runs() {
    local out=$1 runs=$2 t0 t1 i
    shift 2
    for ((i = 0; i < runs; i++)); do
        t0=${EPOCHREALTIME/[.,]/}
        "$@" >/dev/null 2>&1 || true
        t1=${EPOCHREALTIME/[.,]/}
        echo $((10#$t1 - 10#$t0)) >>"$out"
    done
}
median_ms() {
    sort -n "$1" | awk '{ a[NR] = $1 } END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.2f", m / 1000 }'
}
opens() {
    strace -f -c -e trace=open,openat -o "$TMP/strace" "$@" >/dev/null 2>&1 || true
    awk '$NF == "openat" || $NF == "open" { n += $4 } END { print n + 0 }' "$TMP/strace"
}

n=0
for bin in "$@"; do
    for name in cwpw cwpwnone; do
        "$bin" -n "$name" --interval 0 --state-dir "$STATE/$n-$name" >/dev/null 2>&1 || true
    done
    n=$((n + 1))
done
per_round=$(((RUNS + ROUNDS - 1) / ROUNDS))
for ((round = 0; round < ROUNDS; round++)); do
    n=0
    for bin in "$@"; do
        for name in cwpw cwpwnone; do
            time_runs "$TMP/t.$n.$name" "$per_round" \
                "$bin" -n "$name" --interval 0 --state-dir "$STATE/$n-$name"
        done
        n=$((n + 1))
    done
done

echo "Processes on the host: $(ls -d /proc/[0-9]* | wc -l) ($W workers named cwpw)"
echo
echo "| build | -n cwpw, $W workers (ms) | -n cwpwnone, scan only (ms) | per worker (µs) | opens per worker |"
echo "| --- | ---: | ---: | ---: | ---: |"
n=0
for bin in "$@"; do
    with=$(median_ms "$TMP/t.$n.cwpw")
    without=$(median_ms "$TMP/t.$n.cwpwnone")
    o1=$(opens "$bin" -n cwpw --interval 0 --state-dir "$STATE/$n-cwpw")
    o0=$(opens "$bin" -n cwpwnone --interval 0 --state-dir "$STATE/$n-cwpwnone")
    per=$(awk -v a="$with" -v b="$without" -v w="$W" 'BEGIN { printf "%.0f", (a - b) * 1000 / w }')
    per_open=$(awk -v a="$o1" -v b="$o0" -v w="$W" 'BEGIN { printf "%.2f", (a - b) / w }')
    echo "| $bin | $with | $without | $per | $per_open |"
    n=$((n + 1))
done
