#!/bin/bash
# handoff_trace.sh - where a hold-20 hand-off's time goes, from the kernel's
# own record (issue #17). Root and perf(1) needed; Debian: apt-get install
# linux-perf.
#
#   tests/bench/handoff_trace.sh [BENCH] [LEASE ARGS...]
#
# Starts a redis-server of its own on a free loopback port, runs
# `BENCH lease --redis <it> ARGS` (BENCH: build-bench/sflimit-bench; ARGS by
# default --procs 2 --workers 1 --limit 1 --hold-ms 20 --seconds 6: two nodes
# handing one slot back and forth) and records 2 s of it in the middle with
# perf: the scheduler's switches and wake-ups and every system call's entry
# and exit, all CPUs. Then it follows each hand-off through the record:
#
#   a_code   the releasing node woken by its hold timer (epoll_wait returns
#            0) -> its write() to Redis: sfl's code and the benchmark's
#   a_write  that write() system call (loopback TCP, Redis woken in it)
#   r_wake   the write's return -> Redis's read() of the release
#   r_script that read -> Redis's first write of the turn: the script (and
#            any other command Redis read in the same turn)
#   r_second Redis's first write -> its second: the release's answer and
#            the announcement, in the order Redis writes them
#   b_wake   that second write -> the waiting node's read() of it
#   b_code   that read -> the waiting node back in epoll_wait
#   total    the hold timer's wake-up -> the waiting node back in epoll_wait
#
# and prints the median and quartiles of each (µs), and how many of the
# releases Redis read in the same turn as another release (slots in step).
# A release is told from the other commands by its size: a read() of 400
# bytes or more (release.lua's EVALSHA with its next ask is ~410 bytes with
# the benchmark's ids; the other commands of these runs are under 360).
# The tracing itself costs a few µs per system call: compare runs of this
# script, not these figures with the benchmark's.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
bench=${1:-"$here/../../build-bench/sflimit-bench"}
[ $# -gt 0 ] && shift
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--procs 2 --workers 1 --limit 1 --hold-ms 20 --seconds 6)
command -v perf >/dev/null || { echo "handoff_trace.sh: perf not found" >&2; exit 1; }
[ -x "$bench" ] || { echo "handoff_trace.sh: no $bench (build sflimit-bench first)" >&2; exit 1; }

dir=$(mktemp -d /tmp/sfl-handoff-trace.XXXXXX)
port=
for p in $(shuf -i 20000-29999 -n 20); do
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then port=$p; break; fi
done
[ -n "$port" ] || { echo "handoff_trace.sh: no free port" >&2; exit 1; }
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis_pid=$(cat "$dir/redis.pid")
trap 'kill "$redis_pid" 2>/dev/null || true; rm -rf "$dir"' EXIT

"$bench" lease --redis "redis://127.0.0.1:$port" "${args[@]}" >"$dir/bench.json" \
    2>"$dir/bench.log" &
bench_pid=$!
sleep 2.5
perf record -q -a -e sched:sched_switch -e sched:sched_wakeup -e raw_syscalls:sys_enter \
    -e raw_syscalls:sys_exit -o "$dir/perf.data" -- sleep 2 >/dev/null 2>&1
wait "$bench_pid"
echo "handoff_trace.sh: $(basename "$bench") lease ${args[*]}: $(cat "$dir/bench.json")"

perf script -i "$dir/perf.data" -F comm,tid,time,event,trace 2>/dev/null |
    awk '$1 == "redis-server" || $1 == "sflimit-bench"' >"$dir/trace.txt"

# Syscall numbers (x86_64): 0 read, 1 write, 20 writev, 232 epoll_wait.
awk '
function num(s) { sub(/:$/, "", s); return s * 1e6 }
function keep(name, v) { vals[name, ++n[name]] = v }
function report(name,    i, j, k, t, a) {
    k = n[name]
    if (k == 0) return
    for (i = 1; i <= k; i++) a[i] = vals[name, i]
    for (i = 2; i <= k; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
    printf "%-9s n=%4d  p50 %7.1f  p25 %7.1f  p75 %7.1f us\n", name, k, a[int(k / 2) + 1], a[int(k / 4) + 1], a[int(3 * k / 4) + 1]
}
{
    comm = $1; tid = $2; t = num($3); ev = $4; rest = $0
    if (comm == "sflimit-bench") {
        if (ev == "raw_syscalls:sys_exit:" && rest ~ /NR 232 = 0$/) timer[tid] = t
        else if (ev == "raw_syscalls:sys_enter:" && rest ~ /NR 1 \(/ && (tid in timer)) {
            delete st; st["ta"] = timer[tid]; st["t0"] = t; st["A"] = tid; delete timer[tid]
        } else if (("A" in st) && tid == st["A"] && ev == "raw_syscalls:sys_exit:" && rest ~ /NR 1 =/ && !("t0e" in st))
            st["t0e"] = t
        else if (("t3" in st) && tid != st["A"] && ev == "raw_syscalls:sys_exit:" && rest ~ /NR 0 =/ && !("t4" in st)) {
            st["t4"] = t; st["B"] = tid
        } else if (("t4" in st) && tid == st["B"] && ev == "raw_syscalls:sys_enter:" && rest ~ /NR 232/) {
            keep("a_code", st["t0"] - st["ta"]); keep("a_write", st["t0e"] - st["t0"])
            keep("r_wake", st["t1"] - st["t0e"]); keep("r_script", st["t2"] - st["t1"])
            keep("r_second", st["t3"] - st["t2"]); keep("b_wake", st["t4"] - st["t3"])
            keep("b_code", t - st["t4"]); keep("total", t - st["ta"])
            delete st
        }
    } else {
        if (ev == "raw_syscalls:sys_exit:" && rest ~ /NR 0 = [0-9]+$/) {
            bytes = rest; sub(/.* = /, "", bytes)
            if (bytes + 0 >= 400) {
                releases++
                if (unwritten) together++
                unwritten = 1
                if (("t0" in st) && !("t1" in st)) st["t1"] = t
            }
        } else if (ev == "raw_syscalls:sys_enter:" && rest ~ /NR (1|20) \(/) {
            unwritten = 0
            if (("t1" in st) && !("t2" in st)) st["t2"] = t
            else if (("t2" in st) && !("t3" in st)) st["t3"] = t
        }
    }
}
END {
    split("a_code a_write r_wake r_script r_second b_wake b_code total", names, " ")
    for (i = 1; i <= 8; i++) report(names[i])
    printf "releases read by Redis: %d, of which %d in the same turn as the one before\n", releases, together
}' "$dir/trace.txt"
