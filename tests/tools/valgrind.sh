#!/usr/bin/env bash
# valgrind.sh BUILD_DIR - the main paths of sflimit under valgrind memcheck:
# `check` (embedded Redis, real ffmpeg), `exec`, `status`, `accounts`, and a
# `node` that serves its API, a sidecar lease and a submitted batch, then
# stops on SIGTERM. Any memcheck error or definite/indirect leak fails.
# Suppressions: none needed today (hiredis, libevent, cJSON come out clean).
set -euo pipefail
build=$(cd "${1:-build}" && pwd)
work=$(mktemp -d /tmp/sfl-valgrind-XXXXXX)
port=$(( 20000 + RANDOM % 20000 ))
cleanup() {
    kill "${provider:-}" "${node:-}" 2>/dev/null || true
    redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT
vg() { valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite,indirect \
           --error-exitcode=99 --log-file="$work/vg.%p.log" "$@"; }
fail() { echo "valgrind: $1" >&2; cat "$work"/vg.*.log >&2 || true; exit 1; }

redis-server --port "$port" --save '' --appendonly no --daemonize yes \
    --pidfile "$work/redis.pid" --logfile "$work/redis.log"
for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
R="redis://127.0.0.1:$port/0"

ffmpeg -loglevel error -f lavfi -i testsrc=size=320x240:rate=25 -f lavfi -i sine -t 3 \
    -c:v libx264 -preset veryfast -c:a aac -f mpegts "$work/ch.ts"
"$build/sfl-fake-provider" --user a:pa:1 --user b:pb:2 --file "$work/ch.ts" --hold-ms 3000 \
    --port-file "$work/pport" 2>/dev/null &
provider=$!
for _ in $(seq 100); do [ -s "$work/pport" ] && break; sleep 0.05; done
pp=$(cat "$work/pport")
cat >"$work/streams.json" <<JSON
[ {"id": 1, "name": "A1", "url": "http://127.0.0.1:$pp/live/a/pa/1.ts", "m3u_account": 1},
  {"id": 2, "name": "B1", "url": "http://127.0.0.1:$pp/live/b/pb/2.ts", "m3u_account": 2},
  {"id": 3, "name": "B2", "url": "http://127.0.0.1:$pp/live/b/pb/3.ts", "m3u_account": 2} ]
JSON
cat >"$work/check.json" <<JSON
{ "node_id": "vg", "redis": {"url": "embedded"}, "concurrent_streams": {"stagger_delay": 0},
  "accounts": [{"id": 1, "max_streams": 1}, {"id": 2, "max_streams": 2}],
  "check": {"command": ["ffmpeg", "-hide_banner", "-nostdin", "-v", "verbose", "-re", "-i",
                        "{url}", "-t", "{duration}", "-f", "null", "-"], "timeout": 30},
  "stream_analysis": {"ffmpeg_duration": 1, "retries": 0} }
JSON
echo "== check (embedded redis, real ffmpeg)"
vg "$build/sflimit" check -c "$work/check.json" "$work/streams.json" >"$work/r.jsonl" 2>/dev/null \
    || fail "check"
[ "$(grep -c '"status":"OK"' "$work/r.jsonl")" = 3 ] || fail "check: not three OK results"

echo "== accounts, exec, status"
vg "$build/sflimit" accounts set 1 1 --fresh --redis "$R" >/dev/null || fail "accounts set"
vg "$build/sflimit" accounts set 2 2 --fresh --redis "$R" >/dev/null || fail "accounts set"
vg "$build/sflimit" exec -a 1 --redis "$R" -- true || fail "exec"
vg "$build/sflimit" status --json --redis "$R" >/dev/null || fail "status"
vg "$build/sflimit" exec -a 1 --timeout 0.2 --redis "$R" -- true & ex=$!
wait $ex || true

echo "== node: API, sidecar lease, a batch, SIGTERM"
cat >"$work/node.json" <<JSON
{ "node_id": "vgnode", "redis": {"url": "$R"}, "http": {"listen": "127.0.0.1:0"},
  "concurrent_streams": {"global_limit": 4, "stagger_delay": 0},
  "check": {"command": ["curl", "-sS", "-f", "-o", "/dev/null", "{url}?hold_ms=300"],
            "parser": "none"},
  "stream_analysis": {"retries": 0}, "node": {"shutdown_grace": 1} }
JSON
vg "$build/sflimit" node -c "$work/node.json" 2>"$work/node.log" & node=$!
for _ in $(seq 200); do grep -q "http on" "$work/node.log" 2>/dev/null && break; sleep 0.1; done
hp=$(sed -n 's/.*http on 127.0.0.1:0:\([0-9]*\).*/\1/p' "$work/node.log")
curl -sf "http://127.0.0.1:$hp/metrics" >/dev/null || fail "node /metrics"
curl -sf "http://127.0.0.1:$hp/v1/accounts" >/dev/null || fail "node /v1/accounts"
curl -sf -X POST -d '{"account": 2, "wait_ms": 5000}' "http://127.0.0.1:$hp/v1/leases" >/dev/null \
    || fail "node sidecar lease"
"$build/sflimit" submit --wait --redis "$R" "$work/streams.json" >"$work/r2.jsonl" 2>/dev/null
[ "$(wc -l <"$work/r2.jsonl")" = 3 ] || fail "node: not three results"
kill -TERM "$node"
wait "$node" || fail "node"
node=
echo "valgrind: clean (check, accounts, exec, status, node)"
