#!/usr/bin/env bash
# Does `--every` keep its memory flat? (issue 19)
#
# Starts N=20 sleepers named cwwatch, then runs BIN -n cwwatch --every 0.01 on the real /proc,
# with its tick file in a temporary directory, and reads its VmRSS and VmHWM after 100 samples,
# after 1,100 (the tick file's history is full at 1,024 samples, so its buffers are at their
# largest) and after SAMPLES=10000, then stops it with SIGINT (which it must answer with exit
# 0). A loop that keeps anything per sample (a leak) shows as a larger RSS at the end than at
# 1,100.
#
# Usage: bash benches/watch_memory.sh BIN        e.g. target/release/check_workers
#   SAMPLES=10000   samples before the second reading;  N=20  sleepers
# Kills the sleepers and removes its files when it ends, fails, or gets Ctrl-C.
set -euo pipefail

BIN=${1:?usage: watch_memory.sh BIN}
SAMPLES=${SAMPLES:-10000}
N=${N:-20}
work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cp /bin/sleep "$work/cwwatch"
for _ in $(seq "$N"); do
    "$work/cwwatch" 3600 &
    pids+=($!)
done
mkdir "$work/state"

memory() { # pid -> "VmRSS kB, VmHWM kB"
    awk '/^VmRSS:/ {rss=$2} /^VmHWM:/ {hwm=$2} END {print rss " KiB (peak " hwm " KiB)"}' \
        "/proc/$1/status"
}

coproc WATCH { exec "$BIN" -n cwwatch --interval 0 --every 0.01 --state-dir "$work/state"; }
watch_pid=$WATCH_PID
pids+=("$watch_pid")
started=$(date +%s.%N)
n=0
while IFS= read -r line <&"${WATCH[0]}"; do
    n=$((n + 1))
    [[ $line == *"WORKERS OK - cwwatch: $N workers"* ]] || { echo "unexpected: $line" >&2; exit 1; }
    if ((n == 100 || n == 1100)); then
        echo "after $n samples: $(memory "$watch_pid")"
    elif ((n == SAMPLES)); then
        echo "after $SAMPLES samples: $(memory "$watch_pid")"
        break
    fi
done
ended=$(date +%s.%N)
kill -INT "$watch_pid"
status=0
wait "$watch_pid" || status=$?
echo "exit status after SIGINT: $status"
awk -v a="$started" -v b="$ended" -v n="$SAMPLES" \
    'BEGIN {printf "%d samples in %.1f s: %.2f ms a sample, the 10 ms pause included\n", n, b - a, (b - a) * 1000 / n}'
