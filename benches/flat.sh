#!/usr/bin/env bash
# Shows that --ppid (and --pidfile, which reads the same children files) costs the same
# whatever the number of processes on the host, unlike a name scan: it reads the master's
# /proc/PID/task/*/children instead of all of /proc.
#
# Usage: bash benches/flat.sh N...      e.g. bash benches/flat.sh 1000 10000
# Needs hyperfine (apt-get install -y hyperfine). Uses target/release/check_workers as it is
# (run cargo build --release first). Kills exactly the processes it started.
set -euo pipefail
cd "$(dirname "$0")/.."
bin=target/release/check_workers
[[ -x $bin ]] || { echo "build first: cargo build --release" >&2; exit 2; }
command -v hyperfine >/dev/null || { echo "needs hyperfine" >&2; exit 2; }

tmp=$(mktemp -d /tmp/cwflat.XXXXXX)
pids=()
unit_dir=
cleanup() {
    trap - EXIT INT TERM
    ((${#pids[@]})) && kill -KILL "${pids[@]}" 2>/dev/null || true
    wait 2>/dev/null || true
    [[ -z $unit_dir ]] || { rmdir "$unit_dir" "${unit_dir%/*}" 2>/dev/null || true; }
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

cp /bin/sleep "$tmp/cwfiller"
cp /bin/sleep "$tmp/cwfkid"
cp /bin/sh "$tmp/cwfmaster"
# a master with 4 children, as a prefork server has
"$tmp/cwfmaster" -c 'for i in 1 2 3 4; do "$1" 3600 & done; wait' master "$tmp/cwfkid" &
master=$!
pids+=("$master")
for _ in $(seq 50); do
    kids=$(cat "/proc/$master/task/$master/children" 2>/dev/null || true)
    [[ $(wc -w <<<"$kids") == 4 ]] && break
    sleep 0.1
done
# shellcheck disable=SC2206
pids+=($kids)

# --unit: put the family in a cgroup v2 "unit" of its own, where we may (root, v2 mounted)
v2=
for mount in /sys/fs/cgroup /sys/fs/cgroup/unified; do
    [[ -f $mount/cgroup.procs && -w $mount ]] && [[ $(stat -fc %T "$mount") == cgroup2fs ]] && v2=$mount && break
done
if [[ -n $v2 ]] && mkdir -p "$v2/system.slice/cwflat.service" 2>/dev/null; then
    unit_dir=$v2/system.slice/cwflat.service
    for pid in "$master" $kids; do echo "$pid" >"$unit_dir/cgroup.procs"; done
fi

echo "| processes on the host | --ppid (ms) | --unit (ms) | -n, full scan (ms) |"
echo "|---:|---:|---:|---:|"
have=0
for n in "$@"; do
    while ((have < n)); do
        "$tmp/cwfiller" 3600 &
        pids+=("$!")
        have=$((have + 1))
    done
    sleep 2
    total=$(ls -d /proc/[0-9]* | wc -l)
    mkdir -p "$tmp/state-$n"
    export_json="$tmp/result-$n.json"
    unit_cmd="$bin --ppid $master --interval 0 --state-dir $tmp/state-$n"
    [[ -z $unit_dir ]] || unit_cmd="$bin --unit cwflat.service --interval 0 --state-dir $tmp/state-$n"
    hyperfine -N --warmup 3 --runs 30 --export-json "$export_json" \
        "$bin --ppid $master --interval 0 --state-dir $tmp/state-$n" \
        "$unit_cmd" \
        "$bin -n cwfkid --interval 0 --state-dir $tmp/state-$n" >"$tmp/hyperfine.log" 2>&1 ||
        { cat "$tmp/hyperfine.log" >&2; exit 1; }
    read -r ppid unit scan < <(python3 -c '
import json, sys
r = json.load(open(sys.argv[1]))["results"]
print(" ".join("%.2f" % (x["median"] * 1000) for x in r))' "$export_json")
    [[ -n $unit_dir ]] || unit="n/a (no writable cgroup v2)"
    echo "| $total | $ppid | $unit | $scan |"
done
