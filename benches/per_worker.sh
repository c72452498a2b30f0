#!/usr/bin/env bash
# What each worker costs a check: wall and CPU time and opens of `-n cwpw` with W workers
# running, against `-n cwpwnone` (no workers, same host: the scan alone), for one or more builds
# of check_workers taking turns, so that load from elsewhere falls on all of them. The floor
# (benches/floor.c, built with cc -O2: the same /proc files a default run reads, per process
# and per worker, with the fewest syscalls) takes its turns too, and each build's cost per
# worker is printed as a multiple of the floor's (issue 17: the goal is at most 1.5x).
#
# Usage: bash benches/per_worker.sh BIN [BIN...]     e.g. an old and a new build
#   W=1000       sleeping workers named cwpw to spawn
#   RUNS=30      timed runs per command, in ROUNDS=5 rounds
#   NO_FLOOR=1   leave the floor out (no C compiler needed)
#
# Tick files go to tmpfs (/dev/shm), so the disk's fsync does not blur the figures. Needs
# strace for the open counts. Kills exactly the pids it started when it ends.
set -euo pipefail

W=${W:-1000}
RUNS=${RUNS:-30}
ROUNDS=${ROUNDS:-5}
(($#)) || { echo "usage: $0 BIN [BIN...]" >&2; exit 2; }
for bin in "$@"; do [[ -x $bin ]] || { echo "$bin: not executable" >&2; exit 2; }; done
HERE=$(cd "$(dirname "$0")" && pwd)

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

# the floor: a command like the check's, NAME as its last argument
FLOOR=()
if [[ -z ${NO_FLOOR:-} ]]; then
    cc -O2 -o "$TMP/floor" "$HERE/floor.c"
    FLOOR=("$TMP/floor")
fi

cp /bin/sleep "$TMP/cwpw"
for ((i = 0; i < W; i++)); do
    "$TMP/cwpw" 3600 &
    PIDS+=("$!")
done
sleep 2

# appends the wall time (µs) of each of $2 runs of "$@" to the file $1, and its CPU time (user
# + system, from getrusage: ms resolution) to $1.cpu; the callers take turns in ROUNDS rounds
time_runs() {
    local out=$1 runs=$2 t0 t1 i u s TIMEFORMAT='%3U %3S'
    shift 2
    for ((i = 0; i < runs; i++)); do
        t0=${EPOCHREALTIME/[.,]/}
        { time "$@" >/dev/null 2>&1 || true; } 2>"$TMP/cpu"
        t1=${EPOCHREALTIME/[.,]/}
        echo $((10#$t1 - 10#$t0)) >>"$out"
        read -r u s <"$TMP/cpu"
        awk -v u="$u" -v s="$s" 'BEGIN { printf "%.0f\n", (u + s) * 1e6 }' >>"$out.cpu"
    done
}
# the median of a file of µs, in ms
median_ms() {
    sort -n "$1" | awk '{ a[NR] = $1 } END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.2f", m / 1000 }'
}
# µs per worker from the medians of the runs with ($1) and without ($2) workers
per_worker() {
    awk -v a="$(median_ms "$1")" -v b="$(median_ms "$2")" -v w="$W" \
        'BEGIN { printf "%.1f", (a - b) * 1000 / w }'
}
times_floor() {
    if [[ -z $2 ]]; then echo -; else awk -v a="$1" -v f="$2" \
        'BEGIN { if (f > 0) printf "%.2fx", a / f; else print "-" }'; fi
}
opens() {
    strace -f -c -e trace=open,openat -o "$TMP/strace" "$@" >/dev/null 2>&1 || true
    awk '$NF == "openat" || $NF == "open" { n += $4 } END { print n + 0 }' "$TMP/strace"
}

# the command of build number $1 (the floor is number $#, after the builds) looking for $2
command_of() {
    if (($1 < ${#BINS[@]})); then
        CMD=("${BINS[$1]}" -n "$2" --interval 0 --state-dir "$STATE/$1-$2")
    else
        CMD=("${FLOOR[@]}" "$2")
    fi
}
BINS=("$@")
COUNT=$((${#BINS[@]} + ${#FLOOR[@]}))
for ((n = 0; n < COUNT; n++)); do
    for name in cwpw cwpwnone; do
        command_of "$n" "$name"
        "${CMD[@]}" >/dev/null 2>&1 || true
    done
done
LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
per_round=$(((RUNS + ROUNDS - 1) / ROUNDS))
for ((round = 0; round < ROUNDS; round++)); do
    for ((n = 0; n < COUNT; n++)); do
        for name in cwpw cwpwnone; do
            command_of "$n" "$name"
            time_runs "$TMP/t.$n.$name" "$per_round" "${CMD[@]}"
        done
    done
done

echo "Processes on the host: $(ls -d /proc/[0-9]* | wc -l) ($W workers named cwpw)"
echo
echo "Timing: medians of $RUNS runs per command in $ROUNDS rounds taken in turn; wall time, and" \
    "CPU time (user + system) in brackets; load average before: $LOAD"
echo
floor_per= floor_cpu=
if ((${#FLOOR[@]})); then
    n=${#BINS[@]}
    floor_per=$(per_worker "$TMP/t.$n.cwpw" "$TMP/t.$n.cwpwnone")
    floor_cpu=$(per_worker "$TMP/t.$n.cwpw.cpu" "$TMP/t.$n.cwpwnone.cpu")
fi
echo "| build | -n cwpw, $W workers (ms) | -n cwpwnone, scan only (ms) | per worker (µs) | per worker / floor | opens per worker |"
echo "| --- | ---: | ---: | ---: | ---: | ---: |"
for ((n = 0; n < COUNT; n++)); do
    with="$(median_ms "$TMP/t.$n.cwpw") [$(median_ms "$TMP/t.$n.cwpw.cpu")]"
    without="$(median_ms "$TMP/t.$n.cwpwnone") [$(median_ms "$TMP/t.$n.cwpwnone.cpu")]"
    per=$(per_worker "$TMP/t.$n.cwpw" "$TMP/t.$n.cwpwnone")
    cpu=$(per_worker "$TMP/t.$n.cwpw.cpu" "$TMP/t.$n.cwpwnone.cpu")
    command_of "$n" cwpw
    o1=$(opens "${CMD[@]}")
    command_of "$n" cwpwnone
    o0=$(opens "${CMD[@]}")
    per_open=$(awk -v a="$o1" -v b="$o0" -v w="$W" 'BEGIN { printf "%.2f", (a - b) / w }')
    label=${BINS[$n]:-"floor (benches/floor.c)"}
    echo "| $label | $with | $without | $per [$cpu] |" \
        "$(times_floor "$per" "$floor_per") [$(times_floor "$cpu" "$floor_cpu")] | $per_open |"
done
