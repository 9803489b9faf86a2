#!/usr/bin/env bash
# history_run.sh - a synthetic run of known load for the history (issue #18):
# does GET /v1/history give, minute by minute, the peaks the provider saw,
# and does the dashboard's chart show them?
#
#   tests/tools/history_run.sh [--minutes N] [--build DIR] [--levels 2,4,1,...]
#                              [--hold-s S] [--no-history] [--no-browser]
#
# It starts a redis-server on a free port, the fake provider (the ground
# truth: GET /minutes, its per-minute peaks), and two `sflimit node`s with
# `"history": {"flush_ms": 1000}`, one login `hist-a` of limit 3, checks
# that are curl holding one provider stream for --hold-s (20 s). Minute k of
# the run (k = 0.. N-1, wall-clock UTC minutes, from the next full one) gets
# DEMAND_k checks, submitted together 3 s into the minute through POST
# /v1/checks (to node 1 and node 2 in turn), DEMAND cycling through
# --levels (default 2,4,1,0,3,5,1,2,6,0): the login runs min(DEMAND, 3) at
# once and the rest wait, then run as slots free (at most two rounds of
# --hold-s: every check is over well before its minute ends, so a minute's
# peak is its own). Once the last minute is over and flushed it fetches
# /v1/history?login=hist-a&from=&to=&step=60 and the provider's minutes,
# and sfl-history-compare prints the table (minute, demand, planned,
# provider peak, history peak, mean in use by the provider's connection-ms
# and by the history, waiting, grants, opened, chart) and
# fails on a history peak more than one from the provider's, a provider
# peak above the limit, a violation at the provider, a check not OK, or
# another number of connections than checks. Then headless Chromium
# screenshots the dashboard and dumps its DOM, whose chart points for
# hist-a must equal /v1/history's peaks.
#
# Output in ${SFL_ARTIFACTS:-ci-artifacts}/: history-table.txt,
# history-dashboard.png, history.json, provider-minutes.json,
# history-dashboard.html; the logs are copied there when it fails.
# The chart is the dashboard's "last hour": in a run longer than that, the
# minutes before it show "<" in the chart column and are not compared.
# --no-history: nodes without the history section (a build before it):
# the provider against the plan alone, no chart. --no-browser: no Chromium.
# Exit 0 pass, 1 a mismatch or a failed step, 2 usage.
# It takes N + 1 to N + 2 minutes (the wait for the next full minute, the
# flush). Needs redis-server, redis-cli, curl; Chromium (SFL_CHROMIUM, else
# /usr/bin/chromium) unless --no-browser.
set -euo pipefail

minutes=30
build=build
levels=2,4,1,0,3,5,1,2,6,0
hold_s=20
history=1
browser=1
limit=3
login=hist-a
user=hist
pass=hist-pw-5f1c
offset_s=3

usage() {
    sed -n '2,/^# Exit 0/s/^# \{0,1\}//p' "$0" >&2
    exit 2
}
num() { [[ $2 =~ ^[0-9]+$ ]] || { echo "history_run: bad $1 '$2' (want a number)" >&2; exit 2; }; }
while [ $# -gt 0 ]; do
    case $1 in
    --minutes) num --minutes "${2-}"; minutes=$2; shift 2 ;;
    --build) build=${2-}; shift 2 ;;
    --levels) [[ ${2-} =~ ^[0-9]+(,[0-9]+)*$ ]] ||
        { echo "history_run: bad --levels '${2-}' (want N,N,...)" >&2; exit 2; }
        levels=$2; shift 2 ;;
    --hold-s) num --hold-s "${2-}"; hold_s=$2; shift 2 ;;
    --no-history) history=0; shift ;;
    --no-browser) browser=0; shift ;;
    -h|--help) usage ;;
    *) echo "history_run: unknown argument '$1'" >&2; usage ;;
    esac
done
[ "$minutes" -ge 1 ] && [ "$minutes" -le 1440 ] ||
    { echo "history_run: --minutes must be 1..1440 (the provider keeps a day)" >&2; exit 2; }
[ "$hold_s" -ge 1 ] && [ $((offset_s + 2 * hold_s + 10)) -le 60 ] ||
    { echo "history_run: --hold-s $hold_s: two rounds must end within the minute (1..23)" >&2; exit 2; }
IFS=, read -r -a level <<<"$levels"
for d in "${level[@]}"; do
    [ "$d" -le $((2 * limit)) ] ||
        { echo "history_run: level $d: at most $((2 * limit)) (two rounds of the limit $limit)" >&2; exit 2; }
done

bin=$(cd "$build" && pwd) || exit 2
for b in sflimit sfl-fake-provider sfl-history-compare; do
    [ -x "$bin/$b" ] || { echo "history_run: $bin/$b missing (build first)" >&2; exit 2; }
done
chromium=${SFL_CHROMIUM:-/usr/bin/chromium}
if [ "$history" = 0 ]; then browser=0; fi
if [ "$browser" = 1 ] && [ ! -x "$chromium" ]; then
    echo "history_run: $chromium not found (SFL_CHROMIUM; --no-browser runs without)" >&2
    exit 2
fi
art=${SFL_ARTIFACTS:-ci-artifacts}
mkdir -p "$art"
art=$(cd "$art" && pwd)
work=$(mktemp -d /tmp/sfl-history-XXXXXX)
pids=()
cleanup() {
    local rc=$?
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [ "$rc" != 0 ]; then cp "$work"/*.log "$art"/ 2>/dev/null || true; fi
    rm -rf "$work"
    if [ "$rc" != 0 ]; then echo "history_run: failed (exit $rc); logs in $art" >&2; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { log "history_run: $*"; exit 1; }
listening() { (: </dev/tcp/127.0.0.1/"$1") 2>/dev/null; }
# A port nobody listens on, below the kernel's range of ports for outgoing
# connections (ip_local_port_range), where one may be taken at any time.
pick_port() {
    local p lo=32768
    read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null || true
    [ "$lo" -gt 12000 ] || lo=32768
    while :; do
        p=$((10000 + RANDOM % (lo - 10000)))
        listening "$p" || { echo "$p"; return; }
    done
}
# wait_for SECONDS CMD...: polls CMD every 0.1 s until it succeeds.
wait_for() {
    local until=$(($(date +%s) + $1))
    shift
    until "$@"; do
        [ "$(date +%s)" -lt "$until" ] || return 1
        sleep 0.1
    done
}

# --- Redis, on a free port (another may take it first: then try again)
redis_up_or_gone() { ! kill -0 "$rpid" 2>/dev/null || redis-cli -p "$rport" ping >/dev/null 2>&1; }
for _ in 1 2 3 4 5; do
    rport=$(pick_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
        >"$work/redis.log" 2>&1 &
    rpid=$!
    if wait_for 10 redis_up_or_gone && kill -0 "$rpid" 2>/dev/null; then
        pids+=("$rpid")
        break
    fi
    kill "$rpid" 2>/dev/null || true
    wait "$rpid" 2>/dev/null || true
    rpid=
done
[ -n "${rpid-}" ] || die "redis-server did not start (log: $(tail -3 "$work/redis.log"))"
redis_url="redis://127.0.0.1:$rport"
log "redis-server on $rport"

# --- The fake provider: one account of the login's limit
"$bin/sfl-fake-provider" --user "$user:$pass:$limit" --hold-ms 1000 \
    --port-file "$work/provider.port" 2>"$work/provider.log" &
pids+=($!)
wait_for 10 test -s "$work/provider.port" || die "the fake provider did not start"
pport=$(cat "$work/provider.port")
log "fake provider on $pport"

# --- Two nodes
history_conf=
if [ "$history" = 1 ]; then history_conf=',
 "history": {"flush_ms": 1000}'; fi
node_conf() { # ID PORT
    cat <<JSON
{"node_id": "$1",
 "redis": {"url": "$redis_url"},
 "http": {"listen": "127.0.0.1:$2"},
 "concurrent_streams": {"enabled": true, "global_limit": $((2 * limit)), "stagger_delay": 0},
 "accounts": [{"id": 1, "name": "History run", "logins": [{"id": "$login", "max_streams": $limit}]}],
 "check": {"command": ["curl", "-sS", "-o", "/dev/null", "--max-time", "$((hold_s + 30))", "{url}"],
           "parser": "none", "timeout": $((hold_s + 40))},
 "stream_analysis": {"retries": 0}$history_conf}
JSON
}
# Healthy, or gone (then there is nothing to wait for).
up_or_gone() { ! kill -0 "$2" 2>/dev/null || curl -fs -o /dev/null "http://127.0.0.1:$1/healthz"; }
node_port=()
for n in 1 2; do
    started=
    for attempt in 1 2 3 4 5; do
        port=$(pick_port)
        node_conf "hist-$n" "$port" >"$work/node$n.json"
        if [ "$n" = 1 ] && [ "$attempt" = 1 ]; then
            if ! "$bin/sflimit" init -c "$work/node1.json" >"$work/init.log" 2>&1; then
                grep -q 'history' "$work/init.log" && [ "$history" = 1 ] &&
                    die "this sflimit refuses the history section (a build before issue #18's" \
                        "history; --no-history runs without it): $(cat "$work/init.log")"
                die "sflimit init failed: $(cat "$work/init.log")"
            fi
        fi
        "$bin/sflimit" node -c "$work/node$n.json" 2>"$work/node$n.log" &
        npid=$!
        if wait_for 20 up_or_gone "$port" "$npid" && kill -0 "$npid" 2>/dev/null; then
            pids+=("$npid")
            node_port[n]=$port
            started=1
            break
        fi
        kill "$npid" 2>/dev/null || true
        wait "$npid" 2>/dev/null || true
        cp "$work/node$n.log" "$work/node$n-try$attempt.log"
        grep -q 'cannot listen' "$work/node$n.log" && continue
        if [ "$history" = 1 ] && grep -q 'history' "$work/node$n.log"; then
            die "node $n refuses the history section (a build before issue #18's history;" \
                "--no-history runs without it): $(tail -2 "$work/node$n.log")"
        fi
        die "node $n did not start: $(tail -5 "$work/node$n.log")"
    done
    [ -n "$started" ] || die "node $n never got a port"
    log "node hist-$n on ${node_port[n]}"
done

# --- The load: minute k gets level[k % len] checks, 3 s into the minute
now=$(date +%s)
first=$(((now / 60 + 1) * 60))
end=$((first + 60 * minutes))
log "run: $minutes minute(s) from $(date -u -d "@$first" +%H:%M) to $(date -u -d "@$end" +%H:%M) UTC, levels $levels, limit $limit"
: >"$work/plan.txt"
: >"$work/batches.txt"
total=0
url="http://127.0.0.1:$pport/live/$user/$pass"
for ((k = 0; k < minutes; k++)); do
    t=$((first + 60 * k))
    d=${level[k % ${#level[@]}]}
    while [ "$(date +%s)" -lt $((t + offset_s)) ]; do sleep 0.2; done
    echo "$t $d" >>"$work/plan.txt"
    if [ "$d" -gt 0 ]; then
        body="["
        for ((i = 0; i < d; i++)); do
            id=$((100000 + 10 * k + i))
            [ "$i" = 0 ] || body+=","
            body+="{\"id\": $id, \"name\": \"History $k.$i\", \"m3u_account\": 1,"
            body+=" \"url\": \"$url/$id.ts?hold_ms=$((hold_s * 1000))\"}"
        done
        body+="]"
        np=${node_port[$((k % 2 + 1))]}
        answer=$(curl -sS -X POST -H 'Content-Type: application/json' --data "$body" \
            "http://127.0.0.1:$np/v1/checks") || die "POST /v1/checks to $np failed"
        batch=$(sed -n 's/.*"batch": *"\([^"]*\)".*/\1/p' <<<"$answer")
        [ -n "$batch" ] || die "POST /v1/checks answered $answer"
        echo "$np $batch $d" >>"$work/batches.txt"
        total=$((total + d))
    fi
    log "minute $((k + 1))/$minutes ($(date -u -d "@$t" +%H:%M)): $d check(s)"
done

# --- Wait for the end of the last minute, the checks and the last flush
while [ "$(date +%s)" -lt $((end + 3)) ]; do sleep 0.5; done
batch_done() { curl -fsS "http://127.0.0.1:$1/v1/checks/$2" | grep -q '"finished": *true'; }
ok=0
while read -r np batch d; do
    wait_for 120 batch_done "$np" "$batch" || die "batch $batch did not finish"
    n=$(curl -fsS "http://127.0.0.1:$np/v1/checks/$batch" | grep -o '"status": *"OK"' | wc -l)
    [ "$n" = "$d" ] || log "batch $batch: $n of $d checks OK"
    ok=$((ok + n))
done <"$work/batches.txt"
sleep 3 # two flushes (flush_ms 1000) after the last release
log "checks: $ok of $total OK"

n1=${node_port[1]}
curl -fsS "http://127.0.0.1:$pport/minutes?user=$user&from=$first&to=$end" \
    >"$art/provider-minutes.json" || die "GET /minutes failed"
stats=$(curl -fsS "http://127.0.0.1:$pport/stats")
compare=("$bin/sfl-history-compare" --plan "$work/plan.txt" --provider "$art/provider-minutes.json"
    --user "$user" --limit "$limit")
if [ "$history" = 1 ]; then
    code=$(curl -sS -o "$art/history.json" -w '%{http_code}' \
        "http://127.0.0.1:$n1/v1/history?login=$login&from=$first&to=$end&step=60")
    [ "$code" = 200 ] || die "GET /v1/history answered $code: $(head -c 300 "$art/history.json")"
    compare+=(--history "$art/history.json")
fi

# --- The dashboard in headless Chromium: a screenshot and its DOM
if [ "$browser" = 1 ]; then
    page="http://127.0.0.1:$n1/"
    shoot() { # FLAG OUT
        local prof
        prof=$(mktemp -d "$work/chromium-XXXXXX")
        timeout 90 "$chromium" --headless --no-sandbox --disable-gpu --no-first-run \
            --disable-background-networking --disable-component-update --disable-sync \
            --disable-dev-shm-usage --user-data-dir="$prof" --virtual-time-budget=8000 \
            --window-size=1280,1400 "$1" "$page" >"$2" 2>>"$work/chromium.log"
    }
    shoot --dump-dom "$art/history-dashboard.html" || die "chromium --dump-dom failed"
    shoot --screenshot="$art/history-dashboard.png" /dev/null ||
        die "chromium --screenshot failed"
    [ -s "$art/history-dashboard.png" ] || die "chromium wrote no screenshot"
    compare+=(--dom "$art/history-dashboard.html" --login "$login")
    log "dashboard: $art/history-dashboard.png"
fi

rc=0
"${compare[@]}" | tee "$art/history-table.txt" || rc=1
if ! grep -q '"violations":0,' <<<"$stats"; then
    echo "FAIL: the provider saw a violation: $stats" | tee -a "$art/history-table.txt"
    rc=1
fi
if [ "$ok" != "$total" ]; then
    echo "FAIL: $ok of $total checks OK" | tee -a "$art/history-table.txt"
    rc=1
fi
log "table: $art/history-table.txt"
exit $rc
