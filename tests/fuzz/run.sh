#!/usr/bin/env bash
# run.sh - build the libFuzzer targets with clang and fuzz each for a while.
#
#   tests/fuzz/run.sh [SECONDS] [TARGET...]     (SECONDS default 60; TARGET: conf, streams, ...)
#   SFL_FUZZ_JOBS=2 tests/fuzz/run.sh 300      (targets run 2 at a time; default 1)
#
# For each target: first replays tests/fuzz/regressions/<target>/* (each file
# once: a past crash must stay fixed), then fuzzes for SECONDS with
# -max_total_time on a copy of tests/fuzz/corpus/<target> (the committed
# seeds are never written to). Prints the runs reached per target. Exits
# non-zero if any target crashed, leaked, hit UB, timed out or ran out of
# memory; the input that did it is kept in build-fuzz/fuzz-run/<target>/
# (crash-*, leak-*, timeout-*, oom-*) and its path printed.
set -u

SECONDS_EACH=${1:-60}
shift $(($# > 0 ? 1 : 0))
case $SECONDS_EACH in
'' | *[!0-9]*)
    echo "usage: $0 [SECONDS] [TARGET...]" >&2
    exit 2
    ;;
esac
JOBS=${SFL_FUZZ_JOBS:-1}

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=$ROOT/build-fuzz
RUN=$BUILD/fuzz-run

# A fresh CI machine may lack clang or its runtime (libFuzzer, ASan).
if ! command -v clang >/dev/null 2>&1 ||
    ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-*.a >/dev/null 2>&1; then
    echo "run.sh: installing clang and libclang-rt-14-dev" >&2
    SUDO=
    [ "$(id -u)" -ne 0 ] && SUDO=sudo
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq clang libclang-rt-14-dev ||
        { echo "run.sh: cannot install clang" >&2; exit 2; }
fi

mkdir -p "$BUILD"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_C_COMPILER=clang -DSFL_FUZZ=ON -DSFL_TESTS=OFF \
    -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$BUILD/configure.log" 2>&1 ||
    { cat "$BUILD/configure.log" >&2; echo "run.sh: cmake configure failed" >&2; exit 2; }
cmake --build "$BUILD" --target fuzz -j"$(nproc)" >"$BUILD/build.log" 2>&1 ||
    { tail -50 "$BUILD/build.log" >&2; echo "run.sh: build failed" >&2; exit 2; }

if [ $# -gt 0 ]; then
    TARGETS=("$@")
else
    TARGETS=()
    for f in "$ROOT"/tests/fuzz/fuzz_*.c; do
        n=$(basename "$f" .c)
        TARGETS+=("${n#fuzz_}")
    done
fi

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

# run_one NAME: regressions, then fuzzing; writes $RUN/NAME/{log,result}.
run_one() {
    local name=$1 bin=$BUILD/fuzz/fuzz_$1 dir=$RUN/$1
    rm -rf "$dir"
    mkdir -p "$dir/corpus" "$dir/artifacts"
    if [ ! -x "$bin" ]; then
        echo "FAIL no binary $bin" >"$dir/result"
        return
    fi
    local reg bad=()
    for reg in "$ROOT/tests/fuzz/regressions/$name"/*; do
        [ -f "$reg" ] || continue
        "$bin" "$reg" >>"$dir/regressions.log" 2>&1 || bad+=("${reg#"$ROOT"/}")
    done
    if [ ${#bad[@]} -gt 0 ]; then
        echo "FAIL regression input(s) still crash: ${bad[*]} (log: $dir/regressions.log)" \
            >"$dir/result"
        return
    fi
    [ -d "$ROOT/tests/fuzz/corpus/$name" ] && cp -r "$ROOT/tests/fuzz/corpus/$name/." "$dir/corpus/"
    "$bin" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/" "$dir/corpus" >"$dir/log" 2>&1
    local rc=$? runs secs
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/log" | tail -1)
    secs=$(sed -n 's/^Done [0-9]* runs in \([0-9]*\) second.*/\1/p' "$dir/log" | tail -1)
    local art
    art=$(ls "$dir/artifacts" 2>/dev/null | head -1)
    if [ $rc -ne 0 ] || [ -n "$art" ]; then
        echo "FAIL exit $rc after ${runs:-?} runs; input: $dir/artifacts/${art:-?} (log: $dir/log)" \
            >"$dir/result"
    else
        echo "ok   ${runs:-?} runs in ${secs:-?} s, corpus $(ls "$dir/corpus" | wc -l) inputs" \
            >"$dir/result"
    fi
}

echo "run.sh: ${#TARGETS[@]} targets, ${SECONDS_EACH} s each, $JOBS at a time"
running=0
for t in "${TARGETS[@]}"; do
    run_one "$t" &
    running=$((running + 1))
    if [ "$running" -ge "$JOBS" ]; then
        wait -n
        running=$((running - 1))
    fi
done
wait

failed=0
for t in "${TARGETS[@]}"; do
    r=$(cat "$RUN/$t/result" 2>/dev/null || echo "FAIL no result")
    printf '%-12s %s\n' "$t" "$r"
    case $r in FAIL*) failed=1 ;; esac
done
exit $failed
