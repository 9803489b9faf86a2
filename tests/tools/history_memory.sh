#!/usr/bin/env bash
# history_memory.sh [BUILD_DIR] - how many bytes a busy day of one login's
# history takes in Redis (issue #18, README "History").
#
# Starts a private redis-server (no persistence) on a free port, writes 24
# hours x 60 minutes of one login through the built lua/history.lua exactly
# as a node does (one call per minute and login, the key's PEXPIREAT at the
# end of its hour + 7 days), with typical values of a login of limit 2 kept
# busy by 30 s checks (2 held all minute, ~4 grants, some denials and waits
# of seconds, others' connections sampled every second), and prints the sum
# of MEMORY USAGE over its 24 keys and their encodings. Deterministic: the
# same values every run. REDIS_ARGS (e.g. "--hash-max-listpack-value 128")
# goes to redis-server, to see what its hash encoding changes.
set -euo pipefail
build=${1:-build}
lua="$build/lua/history.lua"
[ -f "$lua" ] || { echo "no $lua: build first" >&2; exit 1; }
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" ${REDIS_ARGS:-} >/dev/null
trap 'kill "$(cat "$dir/redis.pid")" 2>/dev/null; rm -rf "$dir"' EXIT
cli() { redis-cli -p "$port" "$@"; }
until cli PING >/dev/null 2>&1; do sleep 0.05; done
sha=$(cli SCRIPT LOAD "$(cat "$lua")")

RANDOM=18 # the values below are the same on every run
day=$(( $(date -u +%s) / 86400 * 86400 - 86400 )) # yesterday 00:00 UTC
retention=$(( 7 * 86400 * 1000 ))
for h in $(seq 0 23); do
    hour_s=$(( day + h * 3600 ))
    key="sfl:history:p-busy:$(date -u -d "@$hour_s" +%Y%m%d%H)"
    at=$(( (hour_s + 3600) * 1000 + retention ))
    for m in $(seq 0 59); do
        held=$(( 110000 + RANDOM % 10000 ))
        others=$(( RANDOM % 2 ))
        grants=$(( 3 + RANDOM % 2 ))
        denials=$(( RANDOM % 6 ))
        # 4 waits: a few ms (a hand-off), then seconds behind a 30 s check.
        b=(0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0)
        b[$(( 1 + RANDOM % 3 ))]=1
        for _ in 1 2 3; do i=$(( 10 + RANDOM % 5 )); b[$i]=$(( b[i] + 1 )); done
        last=18; while [ "$last" -gt 0 ] && [ "${b[$last]}" -eq 0 ]; do last=$((last - 1)); done
        bins=$(IFS=,; echo "${b[*]:0:$((last + 1))}")
        csv="2,2,$held,2,$others,$(( others * 60 )),60,$(( 1 + RANDOM % 3 )),$grants,$denials,0,0,0,$grants,4,$bins"
        cli EVALSHA "$sha" 1 "$key" "$at" "$m" "$csv" >/dev/null
    done
done
total=0
for key in $(cli --scan --pattern 'sfl:history:p-busy:*'); do
    n=$(cli MEMORY USAGE "$key" SAMPLES 0)
    total=$(( total + n ))
done
keys=$(cli --scan --pattern 'sfl:history:p-busy:*' | wc -l)
enc=$(cli OBJECT ENCODING "sfl:history:p-busy:$(date -u -d "@$day" +%Y%m%d%H)")
sample=$(cli HGET "sfl:history:p-busy:$(date -u -d "@$day" +%Y%m%d%H)" 0)
echo "redis $(redis-server --version | sed 's/.* v=\([^ ]*\).*/\1/'): $keys keys, $(( keys * 60 )) minutes, encoding $enc"
echo "a minute: $sample (${#sample} bytes)"
echo "MEMORY USAGE summed: $total bytes per login per day ($(( total / keys )) per hour key)"
