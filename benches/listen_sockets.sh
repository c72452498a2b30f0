#!/usr/bin/env bash
# What the queue metrics cost on a host with many listening sockets (issue 20): the wall time
# of a check of a small service (a python master listening on one port, 2 sleeping children)
# on a host with no other listening socket, then with N more (TCP on 127.0.0.1 and [::1],
# abstract unix sockets, held by another process), by default (three sock_diag dumps of every
# listening socket, then the master's fd links) and with --listen (two dumps, filtered in the
# kernel by the port). The runs take turns, so load from elsewhere falls on all of them.
#
# Usage: bash benches/listen_sockets.sh BIN
#   N=5000     listening sockets to add (half TCP/IPv4, a quarter TCP/IPv6, a quarter unix)
#   RUNS=200   timed runs per command, in ROUNDS=5 rounds
#
# Tick files go to tmpfs. Kills exactly the pids it started when it ends.
set -euo pipefail

N=${N:-5000}
RUNS=${RUNS:-200}
ROUNDS=${ROUNDS:-5}
BIN=${1:?usage: $0 BIN}
[[ -x $BIN ]] || { echo "$BIN: not executable" >&2; exit 2; }
ulimit -n $((N + 1024))

TMP=$(mktemp -d /tmp/cwls.XXXXXX)
STATE=$(mktemp -d /dev/shm/cwls.XXXXXX)
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

# the service: a master listening on a free port of 127.0.0.1, two children that inherit it
python3 - "$TMP/port" <<'EOF' &
import os, socket, sys, time
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(128)
children = []
for _ in range(2):
    pid = os.fork()
    if pid == 0:
        time.sleep(3600); os._exit(0)
    children.append(str(pid))
open(sys.argv[1] + ".children", "w").write(" ".join(children))
open(sys.argv[1] + ".tmp", "w").write(str(s.getsockname()[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(3600)
EOF
MASTER=$!
PIDS+=("$MASTER")
until [[ -s $TMP/port ]]; do sleep 0.1; done
PORT=$(<"$TMP/port")
read -ra CHILDREN <"$TMP/port.children" || true  # no newline at its end
PIDS+=("${CHILDREN[@]}")

# the other listening sockets, held by another process until it is killed
add_sockets() {
    python3 - "$N" "$TMP/filled" <<'EOF' &
import socket, sys, time
n = int(sys.argv[1]); held = []
for i in range(n):
    if i % 4 < 2:
        s = socket.socket(socket.AF_INET); s.bind(("127.0.0.1", 0))
    elif i % 4 == 2:
        s = socket.socket(socket.AF_INET6); s.bind(("::1", 0))
    else:
        s = socket.socket(socket.AF_UNIX); s.bind(b"\0cwls-%d" % i)
    s.listen(16); held.append(s)
open(sys.argv[2], "w").write("ok")
time.sleep(3600)
EOF
    PIDS+=("$!")
    until [[ -s $TMP/filled ]]; do sleep 0.1; done
}

# the mean wall time (µs) of RUNS runs of "$@", in ROUNDS rounds taking turns with the others
declare -A TOTAL
time_all() {
    local label runs=$((RUNS / ROUNDS)) r i t0 t1
    for ((r = 0; r < ROUNDS; r++)); do
        for label in default listen; do
            local args=(--ppid "$MASTER")
            [[ $label == listen ]] && args+=(--listen "127.0.0.1:$PORT")
            t0=${EPOCHREALTIME/[.,]/}
            for ((i = 0; i < runs; i++)); do
                "$BIN" "${args[@]}" --interval 0 --state-dir "$STATE/$label" >/dev/null || true
            done
            t1=${EPOCHREALTIME/[.,]/}
            TOTAL[$label]=$((${TOTAL[$label]:-0} + t1 - t0))
        done
    done
}

report() {
    local label
    for label in default listen; do
        printf '%-8s %-8s %8.2f ms\n' "$1" "$label" "$(bc -l <<<"${TOTAL[$label]} / $RUNS / 1000")"
        TOTAL[$label]=0
    done
}

echo "listening sockets before: $(ss -Hltn | wc -l) TCP, $(ss -Hlx | wc -l) unix"
"$BIN" --ppid "$MASTER" --interval 0 --state-dir "$STATE/show" -v | grep -E '^WORKERS|^listen'
time_all
report "+0"
add_sockets
echo "listening sockets now: $(ss -Hltn | wc -l) TCP, $(ss -Hlx | wc -l) unix"
time_all
report "+$N"
