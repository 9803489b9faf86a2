#!/usr/bin/env bash
# demo.sh - the seed's example scenario through sfl's limiter, on one host.
#
# Account A allows 1 stream, account B allows 2; streams A1 A2 B1 B2 B3.
# A fake provider (build/sfl-fake-provider) stands in for the real one: it
# serves a real MPEG-TS made here with ffmpeg and counts, server-side, how
# many connections each account has open at once. `sflimit check` runs real
# ffmpeg checks through leases in a private (embedded) Redis.
# Expected: A at 1, B at 2, 3 at once overall, zero violations, five OK.
set -euo pipefail
build=${1:-build}
bin=$(cd "$build" && pwd)
work=$(mktemp -d /tmp/sfl-demo-XXXXXX)
trap 'kill "$provider" 2>/dev/null || true; rm -rf "$work"' EXIT

ffmpeg -loglevel error -f lavfi -i testsrc=size=640x360:rate=25 -f lavfi -i sine=frequency=440 \
    -t 4 -c:v libx264 -preset veryfast -c:a aac -f mpegts "$work/channel.ts"
"$bin/sfl-fake-provider" --user a:secretA:1 --user b:secretB:2 --file "$work/channel.ts" \
    --hold-ms 5000 --port-file "$work/port" 2>"$work/provider.log" &
provider=$!
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.05; done
port=$(cat "$work/port")

cat >"$work/sflimit.json" <<JSON
{
  "node_id": "demo",
  "redis": { "url": "embedded" },
  "concurrent_streams": { "enabled": true, "global_limit": 10, "stagger_delay": 0 },
  "accounts": [ { "id": 1, "name": "Account A", "max_streams": 1 },
                { "id": 2, "name": "Account B", "max_streams": 2 } ],
  "check": { "command": ["ffmpeg", "-hide_banner", "-nostdin", "-v", "verbose", "-re",
                         "-user_agent", "{user_agent}", "{input_options}", "-i", "{url}",
                         "-t", "{duration}", "-f", "null", "-"],
             "parser": "ffmpeg", "timeout": 30 },
  "stream_analysis": { "ffmpeg_duration": 1, "retries": 0 }
}
JSON
u="http://127.0.0.1:$port/live"
cat >"$work/streams.json" <<JSON
[ {"id": 101, "name": "A1", "url": "$u/a/secretA/101.ts", "m3u_account": 1},
  {"id": 102, "name": "A2", "url": "$u/a/secretA/102.ts", "m3u_account": 1},
  {"id": 201, "name": "B1", "url": "$u/b/secretB/201.ts", "m3u_account": 2},
  {"id": 202, "name": "B2", "url": "$u/b/secretB/202.ts", "m3u_account": 2},
  {"id": 203, "name": "B3", "url": "$u/b/secretB/203.ts", "m3u_account": 2} ]
JSON

echo "== sflimit check (results as JSON lines; log on stderr)"
"$bin/sflimit" check -c "$work/sflimit.json" "$work/streams.json"
echo "== what the provider saw"
stats=$(curl -s "http://127.0.0.1:$port/stats")
echo "$stats"
echo "$stats" | grep -q '"violations":0,' || { echo "demo: the provider saw a violation" >&2; exit 1; }
