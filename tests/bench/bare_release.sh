#!/usr/bin/env bash
# bare_release.sh [BUILD_DIR] - a measurement, never a product: builds
# sflimit-bench from a copy of this tree whose release.lua keeps only the
# calls a FIFO hand-off cannot do without, and prints the binary's path.
#
#   SFL_BENCH_COMPARE=$(tests/bench/bare_release.sh) SFL_BENCH_ONLY=lease \
#     SFL_BENCH_PEERS=redis-semaphore tests/bench/run.sh
#
# What the copy's hand-off path (a release that hands its slot to the oldest
# ticket, and queues the releasing node's next ask) still does: TIME, the
# leases read, the conf read, the next ask's ZADD NX, ZPOPMIN of the head
# ticket, its lease ZADD, the PUBLISH, the ZREM of the lease given back:
# 8 calls where release.lua makes 15-16. What it gives up, each a part of
# the promise or of DESIGN.md: the recovery window after a Redis lost its
# data (epoch marker read), ticket expiry (a dead node's ticket is handed
# slots: waiters:exp written and read), fencing tokens (every hand-off gets
# fence 1), the holders entries (redis-cli shows no holder), and key expiry
# (no TTL read or pushed out). The issue #17 figures in README ("Lease cost:
# the floor of a scripted hand-off") come from it: how far the calls the
# promise needs are from the cost of the hand-off itself.
#
# BUILD_DIR defaults to build-bare (the copy of the tree sits in
# BUILD_DIR/src-copy). Exit 1 when release.lua no longer has the text this
# patches (the script is then out of date).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-"$root/build-bare"}
mkdir -p "$build"
build=$(cd "$build" && pwd)
copy="$build/src-copy"
rm -rf "$copy"
mkdir -p "$copy"
(cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$copy")

f="$copy/lua/release.lua"
# Each edit: perl -0777 substitution, then a check that it took.
edit() {
    local what=$1 from=$2 to=$3
    FROM=$from TO=$to perl -0777 -pi -e 's/\Q$ENV{FROM}\E/$ENV{TO}/ or die' "$f" 2>/dev/null ||
        { echo "bare_release.sh: release.lua changed: '$what' not found" >&2; exit 1; }
}
edit "ticket expiry written" \
    "    redis.call('ZADD', KEYS[6], fmt('%d', now + ticket_ttl()), nx)
end" "end"
edit "epoch window read" \
    "local recover_until, opened = epoch_window(now, nx and ARGV[nb + 5] or nil)" \
    "local recover_until, opened = 0, nil"
edit "ticket expiry read" \
    "    head = pop_live_ticket(now, now_s, w)" \
    "    head = redis.call('ZPOPMIN', KEYS[w])[1]"
edit "hand-off with fence, holder and TTL" \
    "    local deadline, fresh = hand_off(head, now, tonumber(ARGV[4]), ARGV[2], account, 1, ARGV[5],
                                     opened)
    drop()
    if fresh or mine < deadline then" \
    "    local node = string.match(head, '^(.*):[^:]*\$') or head
    local deadline, fresh = now + tonumber(ARGV[4]), false
    redis.call('ZADD', KEYS[1], deadline, head)
    redis.call('PUBLISH', ARGV[2] .. ':' .. node, account .. ' ' .. head .. ' ' .. deadline .. ' 1')
    redis.call('ZREM', KEYS[1], id)
    if false then"
edit "queue TTL read" \
    "    keep_keys(now, now + ticket_ttl(), KEYS[5], false, 1, 5)
    return deny_next('full'" \
    "    return deny_next('full'"

cmake -S "$copy" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSFL_TESTS=OFF >/dev/null
cmake --build "$build" -j2 --target sflimit-bench >/dev/null
echo "$build/sflimit-bench"
