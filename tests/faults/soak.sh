#!/usr/bin/env bash
# Runs the node-loss faults many times over and counts: kill -9 of a node
# (SFL_FAULT_ROUNDS rounds in one test) and a node cut off from Redis (the
# partition test once per seed, each cutting at another moment).
#   tests/faults/soak.sh [BUILD_DIR] [ROUNDS]     (default build, 20)
set -euo pipefail
cd "$(dirname "$0")/../.."
build=${1:-build}
rounds=${2:-20}
bin="$build/faults_faults"
[[ -x $bin ]] || { echo "soak: $bin not built" >&2; exit 2; }
log=$(mktemp)
trap 'rm -f "$log"' EXIT

SFL_FAULT_ROUNDS=$rounds "$bin" --filter='faults/kill9_rounds' >"$log" 2>&1 || {
    cat "$log"; echo "soak: kill9_rounds FAILED" >&2; exit 1; }
grep '^faults: kill9_rounds: [0-9]* rounds' "$log"

pass=0
for seed in $(seq 1 "$rounds"); do
    if SFL_FAULT_SEED=$seed "$bin" --filter='faults/partitioned_node' >"$log" 2>&1; then
        pass=$((pass + 1))
        grep '^faults: partitioned_node' "$log" | sed "s/^/seed $seed: /"
    else
        cat "$log"
        echo "soak: partitioned_node seed $seed FAILED" >&2
        exit 1
    fi
done
echo "soak: partitioned_node $pass/$rounds rounds passed"
