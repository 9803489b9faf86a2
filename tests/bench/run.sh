#!/usr/bin/env bash
# run.sh - the README's performance figures, from the repository root:
#
#   tests/bench/run.sh [OUTDIR]
#
# Builds sflimit and sflimit-bench (RelWithDebInfo, in build-bench), starts a
# private redis-server on a free loopback port (no persistence), runs
#   - lease:    2 processes x 8 workers on one account of limit 2, hold 20 ms
#               and hold 0, SFL_BENCH_SECONDS (10) measured, 3 runs each
#               (with `sflimit-bench floor` before each hold-20 run: what a
#               message through Redis costs between two idle processes)
#               (and the same with the account made of N logins, for each N
#               of SFL_BENCH_LOGINS; and the peers, see below);
#   - makespan: 3 nodes, 20 accounts, 300 streams of 2000 ms, 3 runs;
#   - scale:    100/1000, 1000/10000, 10000/100000 accounts/streams, 1 run each;
# prints a Markdown table (median and min-max over the runs), stops Redis.
# Every JSON line and every summary is kept in OUTDIR (default
# build-bench/bench-results/<UTC time>). Exit 1 if any run failed; the
# table is printed anyway.
#
# Knobs (environment): SFL_BENCH_RUNS (3), SFL_BENCH_CHECK_MS (2000),
# SFL_BENCH_SCALE ("100:1000 1000:10000 10000:100000"), SFL_BENCH_SKIP_BUILD=1,
# SFL_BENCH_BUILD=DIR (build directory, default build-bench),
# SFL_BENCH_ONLY=lease (the lease runs only), SFL_BENCH_ONLY=viewers (only
# sflimit-bench-viewers: a viewer arriving while checks fill a login, issue
# #14; SFL_BENCH_RUNS runs, 20 by default here; it starts a redis-server of
# its own per run and is built with SFL_TESTS=ON, so needs Criterion; its
# table is all that is printed), SFL_BENCH_COMPARE=PATH (another
# sflimit-bench, e.g. built from an older tree: its lease runs alternate with
# ours, on the same Redis, and get a column of their own), SFL_BENCH_LIMIT (2:
# the lease account's limit), SFL_BENCH_LOGINS ("1": the lease account's
# logins; "1 4" also runs it as 4 logins sharing the limit (--logins 4, which
# needs a limit of 4 or more), alternating, a column each; 1 is the account
# without logins, the only one the SFL_BENCH_COMPARE binary is run with),
# SFL_BENCH_JITTER (J: the hold-20 runs draw each hold from 20 +- J whole ms,
# sfl's, the compare binary's (which must know --jitter-ms) and the peers'
# alike: slots whose holds are all equal run in step, README "Lease cost:
# where a hold-20 hand-off goes").
# With a compare binary or several logins, a second table gives ratios of
# medians, per hold: this binary / the compare one, N logins / 1.
#
# The peers (issue #17): the same lease workload (2 processes x 8 workers,
# one semaphore of limit SFL_BENCH_LIMIT, hold 20 and 0) on redis-semaphore
# and Bottleneck, through their npm packages at the versions that
# tests/bench/peers/package.json pins (tests/bench/peers/bench_peers.js; its
# figures are defined as sflimit-bench's, see stats.js there). Their runs
# alternate with sfl's on the same redis-server, each gets a column, and the
# ratio table gives sfl / each peer. `npm ci` installs them into
# tests/bench/peers/node_modules (git-ignored) when that is missing or was
# installed from another lock file (it keeps a copy of the one it came
# from); without node and npm, or when the install fails, they are skipped
# with a message. They run with the account without logins only.
# SFL_BENCH_PEERS=0 leaves them out, SFL_BENCH_PEERS=redis-semaphore (or
# bottleneck) runs that one only; SFL_BENCH_SECONDS (10) is the measured
# time of every lease run, sfl's and the peers'.
set -uo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
build=${SFL_BENCH_BUILD:-"$root/build-bench"}
only=${SFL_BENCH_ONLY:-}
runs=${SFL_BENCH_RUNS:-3}
jitter=${SFL_BENCH_JITTER:-}
[ "$only" = viewers ] && runs=${SFL_BENCH_RUNS:-20}
compare=${SFL_BENCH_COMPARE:-}
check_ms=${SFL_BENCH_CHECK_MS:-2000}
scale_sizes=${SFL_BENCH_SCALE:-"100:1000 1000:10000 10000:100000"}
limit=${SFL_BENCH_LIMIT:-2}
seconds=${SFL_BENCH_SECONDS:-10}
peers_dir="$root/tests/bench/peers"
logins=${SFL_BENCH_LOGINS:-1}
out=${1:-"$build/bench-results/$(date -u +%Y%m%dT%H%M%SZ)"}
failed=0
for n in $logins; do
    if ! [ "$n" -ge 1 ] 2>/dev/null || [ "$n" -gt "$limit" ]; then
        echo "run.sh: SFL_BENCH_LOGINS: '$n' is not a number of logins 1..$limit (SFL_BENCH_LIMIT)" >&2
        exit 2
    fi
done
if ! [[ "$seconds" =~ ^[0-9]+$ ]] || [ "$seconds" -lt 1 ]; then
    echo "run.sh: SFL_BENCH_SECONDS: '$seconds' is not a number of seconds >= 1" >&2
    exit 2
fi

# The viewers benchmark: one program that makes each run's world itself.
if [ "$only" = viewers ]; then
    if [ "${SFL_BENCH_SKIP_BUILD:-0}" != 1 ]; then
        if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSFL_TESTS=ON >/dev/null &&
            cmake --build "$build" -j2 --target sflimit-bench-viewers >/dev/null; }; then
            echo "run.sh: build failed" >&2
            exit 1
        fi
    fi
    mkdir -p "$out" || exit 1
    echo "+ SFL_BENCH_RUNS=$runs $build/sflimit-bench-viewers --jobs=1" >>"$out/commands.txt"
    echo "run.sh: viewers: $runs runs; results in $out" >&2
    SFL_BENCH_RUNS=$runs "$build/sflimit-bench-viewers" --jobs=1 >"$out/viewers.jsonl" \
        2>"$out/viewers.log"
    rc=$?
    grep '"viewers"' "$out/viewers.jsonl"
    sum=$(grep '"viewers-summary"' "$out/viewers.jsonl")
    # field NAME: a number of the summary line.
    field() { echo "$sum" | grep -o "\"$1\": [0-9-]*" | grep -o '[0-9-]*$'; }
    {
        echo
        echo "### sflimit-bench-viewers on $(uname -n), $(nproc) cores, $(date -u +%Y-%m-%d)"
        echo
        echo "| viewer arrives, login of 2 filled, poll_ms $(field poll_ms), $(field runs) runs | ms |"
        echo "|---|---|"
        for f in min p50 p90 max; do
            echo "| provider saw u1 over 2, $f | $(field over_ms_$f) |"
        done
        echo "| runs over poll_ms + 500 ($(field bound_ms) ms) | $(field runs_over_bound) |"
        echo "| runs whose checks went wrong | $(field runs_not_good) |"
    } | tee "$out/table.md"
    [ "$rc" = 0 ] || echo "run.sh: viewers: FAILED (see $out/viewers.log)" >&2
    exit "$rc"
fi

if [ "${SFL_BENCH_SKIP_BUILD:-0}" != 1 ]; then
    if ! { cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSFL_TESTS=OFF >/dev/null &&
        cmake --build "$build" -j2 --target sflimit sflimit-bench >/dev/null; }; then
        echo "run.sh: build failed" >&2
        exit 1
    fi
fi
bench="$build/sflimit-bench"
mkdir -p "$out" || exit 1

# The peers: installed from the lock file when node_modules is missing or
# older than it; peer_libs stays empty when they cannot run.
peer_libs=
want_peers=${SFL_BENCH_PEERS:-1}
case "$want_peers" in
0 | 1 | redis-semaphore | bottleneck | "redis-semaphore bottleneck") ;;
*)
    echo "run.sh: SFL_BENCH_PEERS: '$want_peers' is not 0, 1, redis-semaphore or bottleneck" >&2
    exit 2
    ;;
esac
if [ "$want_peers" != 0 ]; then
    if ! echo " $logins " | grep -q ' 1 '; then
        echo "run.sh: peers skipped: they run with the account without logins (add 1 to SFL_BENCH_LOGINS)" >&2
    elif ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        echo "run.sh: peers skipped: node and npm not found (Debian: apt-get install nodejs npm)" >&2
    elif cmp -s "$peers_dir/package-lock.json" "$peers_dir/node_modules/.sfl-installed-lock" ||
        { npm ci --prefix "$peers_dir" --no-audit --no-fund >"$out/npm-ci.log" 2>&1 &&
            cp "$peers_dir/package-lock.json" "$peers_dir/node_modules/.sfl-installed-lock"; }; then
        peer_libs="redis-semaphore bottleneck"
        [ "$want_peers" = 1 ] || peer_libs=$want_peers
    else
        echo "run.sh: peers skipped: npm ci in $peers_dir failed (see $out/npm-ci.log)" >&2
    fi
fi
# peer_version LIB: its version as package.json pins it.
peer_version() {
    node -p "require('$peers_dir/package.json').dependencies['$1']" 2>/dev/null
}

# A redis-server of our own on a free loopback port.
rdir=$(mktemp -d /tmp/sfl-bench-redis-XXXXXX)
redis_pid=
stop_redis() {
    if [ -n "$redis_pid" ]; then
        kill "$redis_pid" 2>/dev/null
        wait "$redis_pid" 2>/dev/null
        redis_pid=
    fi
    rm -rf "$rdir"
}
trap stop_redis EXIT
trap 'exit 130' INT TERM
for _ in $(seq 50); do
    port=$((20000 + RANDOM % 40000))
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && continue # taken
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$rdir" \
        --logfile "$rdir/redis.log" &
    redis_pid=$!
    for _ in $(seq 100); do
        redis-cli -p "$port" ping 2>/dev/null | grep -q PONG && break 2
        kill -0 "$redis_pid" 2>/dev/null || break
        sleep 0.05
    done
    kill "$redis_pid" 2>/dev/null
    wait "$redis_pid" 2>/dev/null
    redis_pid=
done
[ -n "$redis_pid" ] || { echo "run.sh: could not start redis-server" >&2; exit 1; }
url="redis://127.0.0.1:$port/0"
echo "run.sh: redis-server $(redis-server --version | grep -o 'v=[0-9.]*') on port $port;" \
    "results in $out" >&2

# run NAME ARGS...: one benchmark run; its JSON line goes to $out/NAME.jsonl.
# A peer's run (NAME ending in -<library>) drops the "lease" of ARGS.
run() {
    local name=$1 lib
    local cmd=("$bench")
    shift
    if [ "$name" != "${name%-compare}" ]; then
        cmd=("$compare")
    fi
    for lib in $peer_libs; do
        if [ "$name" != "${name%-"$lib"}" ]; then
            cmd=(node "$peers_dir/bench_peers.js" "$lib")
            shift
        fi
    done
    echo "+ ${cmd[*]} $*" >>"$out/commands.txt"
    echo "run.sh: $name: $(basename "${cmd[-1]}") $*" >&2
    if ! "${cmd[@]}" "$@" >>"$out/$name.jsonl" 2>>"$out/$name.log"; then
        echo "run.sh: $name: FAILED (see $out/$name.log)" >&2
        failed=1
    fi
}

# The lease runs' variants, in column order: "" (our binary, no logins),
# "-compare", "-<peer library>", "-logins<N>".
variants=
for n in $logins; do
    if [ "$n" = 1 ]; then
        variants="$variants _ ${compare:+-compare}"
        for lib in $peer_libs; do
            variants="$variants -$lib"
        done
    else
        variants="$variants -logins$n"
    fi
done
for hold in 20 0; do
    for _ in $(seq "$runs"); do
        # The yardstick of the hold-20 hand-off: a message through Redis
        # between two processes that sleep between sends (bench_floor.c).
        [ "$hold" = 20 ] && run floor floor --redis "$url" --seconds "$seconds"
        for v in $variants; do
            v=${v#_}
            extra=
            [ "$v" != "${v#-logins}" ] && extra="--logins ${v#-logins}"
            # shellcheck disable=SC2086 # extra is empty or two words
            [ "$hold" != 0 ] && [ -n "$jitter" ] && extra="$extra --jitter-ms $jitter"
            run "lease-hold$hold$v" lease --redis "$url" --procs 2 --workers 8 --limit "$limit" \
                --hold-ms "$hold" --seconds "$seconds" $extra
        done
    done
done
[ "$only" = lease ] && scale_sizes=
for _ in $(seq "$runs"); do
    [ "$only" = lease ] && break
    run makespan makespan --redis "$url" --nodes 3 --accounts 20 --streams 300 \
        --check-ms "$check_ms" --seed 1
done
for size in $scale_sizes; do
    run "scale-${size%%:*}" scale --redis "$url" --accounts "${size%%:*}" --streams "${size##*:}"
done
stop_redis

# summary FILE FIELD: "median (min-max)" of a numeric field over the JSON lines.
summary() {
    local file=$1 field=$2
    [ -s "$file" ] || { echo "-"; return; }
    awk -v k="\"$field\":" '
        { i = index($0, k); if (i == 0) next
          v = substr($0, i + length(k)); sub(/[,}].*/, "", v)
          if (v != "null") x[n++] = v + 0 }
        function f(v) {
          if (v == int(v) || v >= 1000 || v <= -1000) return sprintf("%.0f", v)
          return sprintf("%.4g", v)
        }
        END {
          if (n == 0) { print "-"; exit }
          for (i = 0; i < n; i++)
            for (j = i + 1; j < n; j++)
              if (x[j] < x[i]) { t = x[i]; x[i] = x[j]; x[j] = t }
          m = n % 2 ? x[int(n / 2)] : (x[n / 2 - 1] + x[n / 2]) / 2
          if (n == 1) print f(m)
          else print f(m) " (" f(x[0]) "-" f(x[n - 1]) ")"
        }' "$file"
}

# median FILE FIELD: the median of a numeric field over the JSON lines, or "".
median() {
    local m
    m=$(summary "$1" "$2")
    m=${m%% *}
    [ "$m" = - ] || echo "$m"
}

# ratio FILE BASEFILE FIELD: median in FILE / median in BASEFILE, or "-".
ratio() {
    local a b
    a=$(median "$1" "$3")
    b=$(median "$2" "$3")
    awk -v a="$a" -v b="$b" 'BEGIN {
        if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.3f\n", a / b }'
}

{
    echo
    echo "### sflimit-bench on $(uname -n), $(nproc) cores, $(date -u +%Y-%m-%d)"
    echo
    echo "Median (min-max) over $runs runs; commands in \`$out/commands.txt\`."
    echo
    header="| lease, 2 procs x 8 workers, limit $limit${jitter:+, hold-20 holds ± $jitter ms} |"
    rule="|---|"
    for hold in 20 0; do
        for v in $variants; do
            v=${v#_}
            case $v in
            "") header="$header hold $hold ms${peer_libs:+, sfl} |" ;;
            -compare) header="$header hold $hold ms, compare |" ;;
            -logins*) header="$header hold $hold ms, ${v#-logins} logins |" ;;
            *) header="$header hold $hold ms, ${v#-} $(peer_version "${v#-}") |" ;;
            esac
            rule="$rule---|"
        done
    done
    echo "$header"
    echo "$rule"
    for f in cycles_per_s handoff_ms_p50 handoff_ms_p90 handoff_ms_p99 wait_ms_p99 wait_ms_max \
        handoff_same_worker releases_close handoff_ms_p50_alone jain_fairness max_concurrent_seen \
        redis_cpu_us_per_cycle redis_commands_per_cycle; do
        row="| $f |"
        for hold in 20 0; do
            for v in $variants; do
                row="$row $(summary "$out/lease-hold$hold${v#_}.jsonl" $f) |"
            done
        done
        echo "$row"
    done
    # Ratios of medians, per hold: this binary / the compare one, sfl / each
    # peer, and N logins / the account without logins (all of this binary).
    pairs=
    for v in $variants; do
        case $v in
        _) ;;
        -compare) pairs="$pairs :-compare:this/compare" ;;
        -logins*) pairs="$pairs $v::${v#-logins}-logins/1" ;;
        *) pairs="$pairs :$v:sfl/${v#-}" ;;
        esac
    done
    if [ -n "$pairs" ] && echo " $logins " | grep -q ' 1 '; then
        echo
        header="| ratio of medians |"
        rule="|---|"
        for hold in 20 0; do
            for p in $pairs; do
                header="$header hold $hold ms, ${p##*:} |"
                rule="$rule---|"
            done
        done
        echo "$header"
        echo "$rule"
        for f in cycles_per_s handoff_ms_p50 handoff_ms_p99 wait_ms_max jain_fairness \
            redis_cpu_us_per_cycle redis_commands_per_cycle; do
            row="| $f |"
            for hold in 20 0; do
                for p in $pairs; do
                    num=${p%%:*}
                    den=${p#*:}
                    den=${den%%:*}
                    row="$row $(ratio "$out/lease-hold$hold$num.jsonl" \
                        "$out/lease-hold$hold$den.jsonl" $f) |"
                done
            done
            echo "$row"
        done
    fi
    [ -n "$compare" ] && echo && echo "compare: $compare"
    if [ -s "$out/floor.jsonl" ]; then
        echo
        echo "Hand-off floor (\`sflimit-bench floor\`, same Redis: a message from one process to"
        echo "another that sleep between sends, every 10 ms): PUBLISH alone p50"
        echo "$(summary "$out/floor.jsonl" publish_ms_p50) ms, p90 $(summary "$out/floor.jsonl" publish_ms_p90) ms;"
        echo "a script of 15 reads that then publishes p50 $(summary "$out/floor.jsonl" script_ms_p50) ms,"
        echo "p90 $(summary "$out/floor.jsonl" script_ms_p90) ms."
    fi
    [ "$only" = lease ] && exit 0
    echo
    echo "| makespan, 3 nodes x G 10, 20 accounts, 300 streams of $check_ms ms | |"
    echo "|---|---|"
    for f in makespan_s lower_bound_s ratio critical_idle_slot_s mean_running ok \
        accounts_over_limit; do
        echo "| $f | $(summary "$out/makespan.jsonl" $f) |"
    done
    echo
    header="| scale, accounts/streams |"
    rule="|---|"
    for size in $scale_sizes; do
        header="$header ${size%%:*} / ${size##*:} |"
        rule="$rule---|"
    done
    echo "$header"
    echo "$rule"
    for f in peak_rss_kb load_s queued_s total_s starts_per_s cpu_us_per_start children_cpu_s \
        redis_conf_bytes_per_account redis_conf_key_bytes redis_bytes_per_held_lease \
        redis_idle_bytes_per_account idle_stray_keys after_check_stray_keys; do
        row="| $f |"
        for size in $scale_sizes; do
            row="$row $(summary "$out/scale-${size%%:*}.jsonl" $f) |"
        done
        echo "$row"
    done
} | tee "$out/table.md"
[ "$failed" = 0 ] || echo "run.sh: some runs FAILED; see the .log files in $out" >&2
exit "$failed"
