#!/usr/bin/env bash
# Does a run cost more when the workers map a lot of memory? (issue 17)
#
# Starts N=40 workers named cwshm1g that each map the same 1 GiB shared region (a file in
# /dev/shm, unlinked at once, as postgres' shared_buffers: every page mapped and populated in
# every worker, MAP_SHARED | MAP_POPULATE), and N=40 named cwshm16m that each have a private
# 16 MiB region of their own (MAP_PRIVATE | MAP_POPULATE). Then times, for each build given,
# `-n cwshm1g --interval 0` against `-n cwshm16m --interval 0` (tick files on tmpfs), taking
# turns, and prints the ratio of the medians. Goal: at most 1.2x with the default metrics.
# A build that has --metrics is also timed with `--metrics pss,uss`, which reads
# smaps_rollup: there the kernel walks every page table entry, and the ratio may be large.
# The floor (benches/floor.c, the files a default run reads) is timed the same way.
#
# Usage: bash benches/shared_memory.sh BIN [BIN...]      e.g. an old and a new build
#   N=40           workers in each group
#   SHARED_MIB=1024  the shared region;  PRIVATE_MIB=16  each private region
#   RUNS=30        timed runs per command, in ROUNDS=5 rounds taken in turn
#   NO_FLOOR=1     leave the floor out (no C compiler needed)
#
# Needs python3 (3.10 or later, for mmap.MAP_POPULATE) and N * (PRIVATE_MIB + a few) MiB
# plus SHARED_MIB of free memory. Kills every process it started and removes its /dev/shm
# file when it ends, fails, or gets Ctrl-C or SIGTERM (the workers also die with their
# parent: PR_SET_PDEATHSIG).
set -euo pipefail

N=${N:-40}
SHARED_MIB=${SHARED_MIB:-1024}
PRIVATE_MIB=${PRIVATE_MIB:-16}
RUNS=${RUNS:-30}
ROUNDS=${ROUNDS:-5}
(($#)) || { echo "usage: $0 BIN [BIN...]" >&2; exit 2; }
for bin in "$@"; do [[ -x $bin ]] || { echo "$bin: not executable" >&2; exit 2; }; done
HERE=$(cd "$(dirname "$0")" && pwd)
BIG=cwshm1g
SMALL=cwshm16m

TMP=$(mktemp -d /tmp/cwshm.XXXXXX)
STATE=$(mktemp -d /dev/shm/cwshm-state.XXXXXX)
SHM_FILE=/dev/shm/cwshm-region.$$
PARENT=
cleanup() {
    trap - EXIT INT TERM
    exec 2>/dev/null
    if [[ -n $PARENT ]]; then
        # the workers first (their pids, while they are still the parent's children), then it
        local pids=() pid stat fields
        for pid in $(cat "$TMP/pids" 2>/dev/null); do
            read -r stat <"/proc/$pid/stat" || continue
            read -r -a fields <<<"${stat##*) }"
            [[ ${fields[1]:-} == "$PARENT" ]] && pids+=("$pid")
        done
        ((${#pids[@]})) && kill -KILL "${pids[@]}"
        kill -KILL "$PARENT"
        wait
        # init reaps the workers: wait (10 s at most) until their memory is freed
        local _
        for _ in $(seq 100); do
            for pid in "${pids[@]}"; do [[ -e /proc/$pid ]] && break; done
            [[ -e /proc/${pid:-0} ]] || break
            sleep 0.1
        done
    fi
    rm -rf "$TMP" "$STATE" "$SHM_FILE"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FLOOR=()
if [[ -z ${NO_FLOOR:-} ]]; then
    cc -O2 -o "$TMP/floor" "$HERE/floor.c"
    FLOOR=("$TMP/floor")
fi

cat >"$TMP/spawn.py" <<'EOF'
# spawn.py SHM_FILE N SHARED_MIB PRIVATE_MIB BIG SMALL PIDS_FILE: fork the two groups of
# workers, write their pids to PIDS_FILE once all have populated their memory, then sleep
import ctypes, mmap, os, signal, sys

shm_file, n, shared_mib, private_mib, big, small, pids_file = sys.argv[1:]
n, shared, private = int(n), int(shared_mib) << 20, int(private_mib) << 20
libc = ctypes.CDLL(None, use_errno=True)
PR_SET_PDEATHSIG, PR_SET_NAME = 1, 15

fd = os.open(shm_file, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
os.unlink(shm_file)
os.ftruncate(fd, shared)
region = mmap.mmap(fd, shared, mmap.MAP_SHARED | mmap.MAP_POPULATE)  # allocates the pages
parent = os.getpid()
ready_r, ready_w = os.pipe()

def worker(name, shared_region):
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)
    libc.prctl(PR_SET_NAME, name.encode())
    region.close()  # the parent's mapping: fork copied no page tables of it
    if shared_region:
        mine = mmap.mmap(fd, shared, mmap.MAP_SHARED | mmap.MAP_POPULATE)
    else:
        mine = mmap.mmap(-1, private, mmap.MAP_PRIVATE | mmap.MAP_POPULATE)
    os.write(ready_w, b".")
    while True:
        signal.pause()

pids = []
for name, shared_region in [(big, True)] * n + [(small, False)] * n:
    pid = os.fork()
    if pid == 0:
        try:
            worker(name, shared_region)
        finally:
            os._exit(1)
    pids.append(pid)
got = 0
while got < 2 * n:
    got += len(os.read(ready_r, 2 * n - got))
with open(pids_file + ".tmp", "w") as f:
    f.write(" ".join(map(str, pids)) + "\n")
os.rename(pids_file + ".tmp", pids_file)
while True:
    signal.pause()
EOF

echo "spawning $N x $BIG (${SHARED_MIB} MiB shared) and $N x $SMALL (${PRIVATE_MIB} MiB private) ..." >&2
python3 "$TMP/spawn.py" "$SHM_FILE" "$N" "$SHARED_MIB" "$PRIVATE_MIB" "$BIG" "$SMALL" "$TMP/pids" &
PARENT=$!
for _ in $(seq 600); do
    [[ -s $TMP/pids ]] && break
    kill -0 "$PARENT" 2>/dev/null || { echo "spawn.py failed" >&2; exit 1; }
    sleep 0.1
done
[[ -s $TMP/pids ]] || { echo "the workers did not all start within 60 s" >&2; exit 1; }
read -r -a WORKER_PIDS <"$TMP/pids"
rss_of() { awk -v k="$2:" '$1 == k { print $2 " " $3 }' "/proc/$1/status"; }
MEM_BIG="RssShmem $(rss_of "${WORKER_PIDS[0]}" RssShmem), VmPTE $(rss_of "${WORKER_PIDS[0]}" VmPTE)"
MEM_SMALL="RssAnon $(rss_of "${WORKER_PIDS[$N]}" RssAnon), VmPTE $(rss_of "${WORKER_PIDS[$N]}" VmPTE)"

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

# the commands: "LABEL<TAB>ARG..." per variant; NAME stands for the group's name
VARIANTS=()
for bin in "$@"; do
    VARIANTS+=("$bin"$'\t'"$bin -n NAME --interval 0")
    help=$("$bin" --help 2>/dev/null || true)
    if [[ $help == *--metrics* ]]; then
        VARIANTS+=("$bin --metrics pss,uss"$'\t'"$bin -n NAME --interval 0 --metrics pss,uss")
    fi
done
((${#FLOOR[@]})) && VARIANTS+=("floor (benches/floor.c)"$'\t'"${FLOOR[0]} NAME")
command_of() { # variant number, group name: CMD
    local args word
    read -r -a args <<<"${VARIANTS[$1]#*$'\t'}"
    CMD=()
    for word in "${args[@]}"; do CMD+=("${word/#NAME/$2}"); done
    [[ ${CMD[0]} == "${FLOOR[0]:-}" ]] || CMD+=(--state-dir "$STATE/$1-$2")
}

# a first run of each writes its tick file; check that each group is found whole
for ((v = 0; v < ${#VARIANTS[@]}; v++)); do
    for name in $BIG $SMALL; do
        command_of "$v" "$name"
        out=$("${CMD[@]}" 2>&1 || true)
        grep -q -E "(^WORKERS [A-Z]+ - $name: |^)$N workers" <<<"$out" || {
            echo "unexpected output of ${CMD[*]}:" >&2
            echo "$out" >&2
            exit 1
        }
    done
done

LOAD=$(cut -d' ' -f1-3 /proc/loadavg)
per_round=$(((RUNS + ROUNDS - 1) / ROUNDS))
echo "measuring ($ROUNDS rounds x $per_round runs per command) ..." >&2
for ((round = 0; round < ROUNDS; round++)); do
    for ((v = 0; v < ${#VARIANTS[@]}; v++)); do
        for name in $BIG $SMALL; do
            command_of "$v" "$name"
            time_runs "$TMP/t.$v.$name" "$per_round" "${CMD[@]}"
        done
    done
done

echo "Processes on the host: $(ls -d /proc/[0-9]* | wc -l) ($N $BIG, $N $SMALL, their parent)"
echo "Timing: median wall time of $RUNS runs per command in $ROUNDS rounds taken in turn;" \
    "load average before: $LOAD"
echo "One $BIG: $MEM_BIG; one $SMALL: $MEM_SMALL"
echo
echo "| build | $N x $SHARED_MIB MiB shared (ms) | $N x $PRIVATE_MIB MiB private (ms) | shared / private |"
echo "| --- | ---: | ---: | ---: |"
for ((v = 0; v < ${#VARIANTS[@]}; v++)); do
    big=$(median_ms "$TMP/t.$v.$BIG")
    small=$(median_ms "$TMP/t.$v.$SMALL")
    echo "| ${VARIANTS[$v]%%$'\t'*} | $big | $small |" \
        "$(awk -v a="$big" -v b="$small" 'BEGIN { printf "%.2fx", a / b }') |"
done
