#!/usr/bin/env bash
# Wall time of one check_workers run on a host with many processes, against check_procs and
# against a floor (a C program that only lists /proc and reads each process's comm).
#
# Usage: bash benches/compare.sh [N]     N background processes to spawn (default 2000)
#   RUNS=30        timed runs per command, in ROUNDS=5 rounds in which the commands take turns
#   WORKERS=4      processes named cwworker (the workers the checks look for)
#   NO_BUILD=1     use target/release/check_workers as it is (no cargo build --release)
#
# Spawns N copies of sleep named `cwbench` plus WORKERS copies named `cwworker`, records their
# pids, and kills exactly those pids on exit (normal end, failure, Ctrl-C or SIGTERM).
# Uses hyperfine when installed (apt-get install -y hyperfine), else a timed shell loop
# (NO_HYPERFINE=1 forces the loop).
set -euo pipefail

N=${1:-2000}
RUNS=${RUNS:-30}
ROUNDS=${ROUNDS:-5}
WORKERS=${WORKERS:-4}
SLEEP_SECONDS=600
case $N in '' | *[!0-9]*) echo "usage: $0 [N]  (N a number)" >&2; exit 2 ;; esac

cd "$(dirname "$0")/.."
TMP=$(mktemp -d /tmp/cwbench.XXXXXX)
PIDS=()
SHM_STATE=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if ((${#PIDS[@]})); then
        # a recorded pid is still ours (alive, or a zombie) unless bash already reaped it and
        # the pid was reused: kill it only while its parent is this shell
        local pid stat fields alive=()
        for pid in "${PIDS[@]}"; do
            stat=
            read -r stat 2>/dev/null <"/proc/$pid/stat" || true
            read -r -a fields <<<"${stat##*) }" # state ppid ...
            [[ ${fields[1]:-} == "$$" ]] && alive+=("$pid")
        done
        echo "cleanup: killing ${#alive[@]} of ${#PIDS[@]} spawned processes" >&2
        # bash reports each killed job on stderr ("Killed ..."): silence that from here on
        exec 2>/dev/null
        if ((${#alive[@]})); then
            kill -KILL "${alive[@]}" || true
        fi
        wait || true
    fi
    rm -rf "$TMP"
    [[ -z $SHM_STATE ]] || rm -rf "$SHM_STATE"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

count_procs() {
    local dirs=(/proc/[0-9]*)
    echo "${#dirs[@]}"
}

# --- limits -------------------------------------------------------------------------------
pid_max=$(cat /proc/sys/kernel/pid_max)
before=$(count_procs)
need=$((before + N + WORKERS + 200))
if ((need > pid_max)); then
    echo "pid_max is $pid_max, need about $need: sysctl -w kernel.pid_max=$((need * 2))" >&2
    exit 1
fi
threads_max=$(cat /proc/sys/kernel/threads-max)
if ((need > threads_max)); then
    echo "threads-max is $threads_max, need about $need" >&2
    exit 1
fi
if [[ $(ulimit -u) != unlimited ]] && (($(ulimit -u) < need)); then
    ulimit -Su "$need" 2>/dev/null || ulimit -Su "$(ulimit -Hu)"
    if [[ $(ulimit -u) != unlimited ]] && (($(ulimit -u) < need)); then
        echo "ulimit -u is $(ulimit -u), need about $need (run as root or raise the hard limit)" >&2
        exit 1
    fi
fi

# --- build ------------------------------------------------------------------------------------
[[ -n ${NO_BUILD:-} ]] || cargo build --release --quiet
CW=$PWD/target/release/check_workers
[[ -x $CW ]] || { echo "no $CW: run cargo build --release" >&2; exit 1; }

cat >"$TMP/floor.c" <<'EOF'
/* Floor: list /proc, read each /proc/PID/comm, compare with argv[1], print the count. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc != 2) return 3;
    size_t want = strlen(argv[1]);
    DIR *proc = opendir("/proc");
    if (!proc) return 3;
    struct dirent *e;
    char path[64], comm[64];
    int count = 0;
    while ((e = readdir(proc)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        snprintf(path, sizeof path, "/proc/%s/comm", e->d_name);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) continue;
        ssize_t n = read(fd, comm, sizeof comm);
        close(fd);
        if (n > 0 && comm[n - 1] == '\n') n--;
        if (n == (ssize_t)want && memcmp(comm, argv[1], want) == 0) count++;
    }
    closedir(proc);
    printf("%d\n", count);
    return 0;
}
EOF
cc -O2 -o "$TMP/floor" "$TMP/floor.c"
FLOOR=$TMP/floor

CHECK_PROCS=/usr/lib/nagios/plugins/check_procs
[[ -x $CHECK_PROCS ]] || CHECK_PROCS=

# --- processes --------------------------------------------------------------------------------
cp /bin/sleep "$TMP/cwbench"
cp /bin/sleep "$TMP/cwworker"
echo "spawning $N x cwbench and $WORKERS x cwworker ..." >&2
for ((i = 0; i < WORKERS; i++)); do
    "$TMP/cwworker" "$SLEEP_SECONDS" &
    PIDS+=($!)
done
for ((i = 0; i < N; i++)); do
    "$TMP/cwbench" "$SLEEP_SECONDS" &
    PIDS+=($!)
done
# a forked child is named after the shell until it execs: wait until all carry their names
for _ in $(seq 100); do
    [[ $("$FLOOR" cwbench) == "$N" && $("$FLOOR" cwworker) == "$WORKERS" ]] && break
    sleep 0.1
done
if [[ $("$FLOOR" cwbench) != "$N" || $("$FLOOR" cwworker) != "$WORKERS" ]]; then
    echo "spawned processes did not all start" >&2
    exit 1
fi
# a process carries its name from exec on, but still runs its loader and libc start-up after
# that: wait until every one of them sleeps, so their start-up does not load the measurement
for _ in $(seq 120); do
    running=0
    for pid in "${PIDS[@]}"; do
        stat=
        read -r stat 2>/dev/null <"/proc/$pid/stat" || true
        read -r -a fields <<<"${stat##*) }"
        [[ ${fields[0]:-} == S ]] || running=$((running + 1))
    done
    ((running == 0)) && break
    sleep 0.5
done
((running == 0)) || echo "warning: $running spawned processes still not asleep" >&2
HOST_PROCS=$(count_procs)

# --- commands ---------------------------------------------------------------------------------
mkdir -p "$TMP/state"
CW_CMD=("$CW" -n cwworker --interval 0 --state-dir "$TMP/state")
"${CW_CMD[@]}" >"$TMP/cw.out" || true # first run writes the tick file
"${CW_CMD[@]}" >"$TMP/cw.out" || true # and this one reads it: the warm case
grep -q "^WORKERS OK - cwworker: $WORKERS workers" "$TMP/cw.out" || {
    echo "unexpected check_workers output:" >&2
    cat "$TMP/cw.out" >&2
    exit 1
}
# tmpfs state dir, to separate the fsync of the tick file from the rest of the run
SHM_CMD=()
if [[ -d /dev/shm && -w /dev/shm ]]; then
    SHM_STATE=$(mktemp -d /dev/shm/cwbench.XXXXXX)
    SHM_CMD=("$CW" -n cwworker --interval 0 --state-dir "$SHM_STATE")
    "${SHM_CMD[@]}" >/dev/null || true
fi
if [[ -n $CHECK_PROCS ]]; then
    "$CHECK_PROCS" -C cwworker >"$TMP/cp.out" || true
    grep -q "$WORKERS process" "$TMP/cp.out" || {
        echo "unexpected check_procs output:" >&2
        cat "$TMP/cp.out" >&2
        exit 1
    }
fi

# One round of timed runs of a command: appends one wall time per run, in ms, to a file.
time_runs() {
    local out=$1 runs=$2
    shift 2
    if [[ $tool == hyperfine ]]; then
        hyperfine -N -i --warmup 1 --runs "$runs" --style none \
            --export-json "$TMP/h.json" -- "$(printf '%q ' "$@")" >/dev/null 2>&1
        # the "times" array of the export, one number a line, in seconds
        awk '/"times": \[/ { on = 1; next } on && /\]/ { exit }
             on { gsub(/[ ,]/, ""); printf "%.6f\n", $0 * 1000 }' "$TMP/h.json" >>"$out"
    else
        # bash's $EPOCHREALTIME (µs) costs no fork; `date +%s%N` (ns) where it is missing
        local t0 t1 i
        "$@" >/dev/null 2>&1 || true
        for ((i = 0; i < runs; i++)); do
            if [[ -n ${EPOCHREALTIME:-} ]]; then
                t0=${EPOCHREALTIME/[.,]/}
                "$@" >/dev/null 2>&1 || true
                t1=${EPOCHREALTIME/[.,]/}
                echo $(((10#$t1 - 10#$t0) * 1000))
            else
                t0=$(date +%s%N)
                "$@" >/dev/null 2>&1 || true
                t1=$(date +%s%N)
                echo $((t1 - t0))
            fi
        done | awk '{ printf "%.6f\n", $1 / 1e6 }' >>"$out"
    fi
}

median_of() {
    sort -g "$1" | awk '{ a[NR] = $1 } END {
        m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2
        printf "%.3f\n", m }'
}

peak_rss_kib() {
    if [[ -x /usr/bin/time ]]; then
        /usr/bin/time -f %M -o "$TMP/rss" "$@" >/dev/null 2>&1 || true
        cat "$TMP/rss"
    else
        echo "n/a"
    fi
}

# share of all CPUs busy over one second, in percent (this script idle meanwhile)
busy_percent() {
    local a b
    read -r -a a </proc/stat
    sleep 1
    read -r -a b </proc/stat
    # fields: cpu user nice system idle iowait irq softirq steal
    awk -v u1="$((a[1] + a[2] + a[3] + a[6] + a[7] + a[8]))" -v i1="$((a[4] + a[5]))" \
        -v u2="$((b[1] + b[2] + b[3] + b[6] + b[7] + b[8]))" -v i2="$((b[4] + b[5]))" \
        'BEGIN { t = (u2 - u1) + (i2 - i1); printf "%.0f", t ? 100 * (u2 - u1) / t : 0 }'
}
BUSY=$(busy_percent)
if ((BUSY > 10)); then
    echo "warning: the host was ${BUSY}% busy before measuring: figures will be noisy" >&2
fi

tool=hyperfine
if [[ -n ${NO_HYPERFINE:-} ]] || ! command -v hyperfine >/dev/null; then
    tool="shell loop (\$EPOCHREALTIME)"
    [[ -n ${EPOCHREALTIME:-} ]] || tool="shell loop (date +%s%N)"
fi
# The commands take turns, ROUNDS rounds of RUNS/ROUNDS runs each, so a burst of load from
# something else on the host falls on all of them rather than on one.
labels=(floor cw)
((${#SHM_CMD[@]})) && labels+=(shm)
[[ -n $CHECK_PROCS ]] && labels+=(cp)
command_of() {
    case $1 in
        floor) CMD=("$FLOOR" cwworker) ;;
        cw) CMD=("${CW_CMD[@]}") ;;
        shm) CMD=("${SHM_CMD[@]}") ;;
        cp) CMD=("$CHECK_PROCS" -C cwworker) ;;
    esac
}
per_round=$(((RUNS + ROUNDS - 1) / ROUNDS))
echo "measuring ($ROUNDS rounds x $per_round runs per command, $tool) ..." >&2
for ((round = 0; round < ROUNDS; round++)); do
    for label in "${labels[@]}"; do
        command_of "$label"
        time_runs "$TMP/times.$label" "$per_round" "${CMD[@]}"
    done
done
floor_ms=$(median_of "$TMP/times.floor")
cw_ms=$(median_of "$TMP/times.cw")
shm_ms=
[[ -f $TMP/times.shm ]] && shm_ms=$(median_of "$TMP/times.shm")
cp_ms=
[[ -f $TMP/times.cp ]] && cp_ms=$(median_of "$TMP/times.cp")
RUNS_DONE=$(wc -l <"$TMP/times.floor")

ratio() { awk -v a="$1" -v b="$floor_ms" 'BEGIN { printf "%.2f", a / b }'; }

echo
# shellcheck disable=SC1091
echo "Host: $(nproc) cores, $(. /etc/os-release && echo "$PRETTY_NAME"), kernel $(uname -r)"
if rev=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD -- src Cargo.toml Cargo.lock 2>/dev/null || rev="$rev with uncommitted changes"
else
    rev="(not a git checkout)"
fi
echo "check_workers built from: $rev"
echo "Processes on the host: $before before spawning, $HOST_PROCS while measuring" \
    "($N cwbench + $WORKERS cwworker)"
echo "Timing: $tool, median of $RUNS_DONE runs per command in $ROUNDS interleaved rounds;" \
    "host CPU busy in the second before measuring: ${BUSY}%"
echo
echo "| what | N | median ms | ratio to floor |"
echo "| --- | ---: | ---: | ---: |"
echo "| floor: C readdir /proc + read each comm | $N | $floor_ms | 1.00 |"
echo "| check_workers -n cwworker --interval 0 (warm tick file in /tmp) | $N | $cw_ms | $(ratio "$cw_ms") |"
if [[ -n $shm_ms ]]; then
    echo "| same, tick file on tmpfs (/dev/shm) | $N | $shm_ms | $(ratio "$shm_ms") |"
fi
if [[ -n $cp_ms ]]; then
    echo "| check_procs -C cwworker | $N | $cp_ms | $(ratio "$cp_ms") |"
else
    echo
    echo "check_procs not installed (apt-get install -y monitoring-plugins-basic): skipped"
fi
echo
echo "Peak RSS (KiB, /usr/bin/time -f %M):" \
    "check_workers $(peak_rss_kib "${CW_CMD[@]}")," \
    "floor $(peak_rss_kib "$FLOOR" cwworker)${CHECK_PROCS:+, check_procs $(peak_rss_kib "$CHECK_PROCS" -C cwworker)}"
