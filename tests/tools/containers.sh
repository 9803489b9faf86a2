#!/usr/bin/env bash
# containers.sh - the Dockerfile and docker-compose.yml, built and run as a
# user would, with podman standing in for a Docker engine (CI runs this).
#
#   tests/tools/containers.sh            # from the repository root, as root
#
# 1. Installs podman, runc, podman-compose and debootstrap when missing, and
#    points podman at a containers.conf of its own (runc, cgroupfs, a file
#    events log, ulimits) through CONTAINERS_CONF: the machine's own
#    configuration is left alone.
# 2. There is no registry to pull from: the base image debian:12-slim is made
#    with `debootstrap --variant=minbase bookworm` (slimmed as the published
#    image is) and `podman import`, and a stand-in for redis:7 from Debian's
#    redis-server. Both are kept in podman's storage, and debootstrap's
#    packages in $SFL_CONTAINERS_CACHE, for the next run.
# 3. Builds the image (`--format docker`: OCI images drop HEALTHCHECK), brings
#    the compose cluster up with the demo provider (Redis, node-a..c,
#    provider) and submits the seed's scenario (account A: 1 stream, B: 2;
#    streams A1 A2 B1 B2 B3, deploy/streams.json) through node-a with
#    `submit --wait`. Expected: 5 results, all OK, and the provider's own
#    counts (the ground truth) A at most 1 at once, B at most 2, 0 violations.
# 4. Checks what a user meets around it: `docker run --rm sfl --help` and
#    one node with `docker run` as the Dockerfile writes them, a node given
#    an empty token refusing to start and naming SFL_HTTP_TOKEN, every
#    HEALTHCHECK passing, the API answering on the published port with the
#    token (401 without), and `check --redis embedded` inside the image.
# 5. Tears everything down, also on failure.
#
# podman-compose 1.0.3 ignores `profiles` and `depends_on` conditions: the
# services are named on its command line, and the script waits for each one
# itself. Traffic stays on this machine: the containers talk on the network
# podman makes for the project, the script on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$PWD
cache=${SFL_CONTAINERS_CACHE:-/var/cache/sfl-containers}
mirror=${SFL_DEBIAN_MIRROR:-http://deb.debian.org/debian}
project=sflci
export SFL_HTTP_TOKEN=ci-token-$$
export BUILDAH_FORMAT=docker # podman-compose's own builds keep HEALTHCHECK too
t0=$SECONDS
step() { echo "== [$((SECONDS - t0)) s] $*"; }

step "tools"
need=()
for t in podman:podman runc:runc podman-compose:podman-compose debootstrap:debootstrap; do
    command -v "${t%%:*}" >/dev/null || need+=("${t#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
mkdir -p "$cache"
cat >"$cache/containers.conf" <<'CONF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
CONF
export CONTAINERS_CONF=$cache/containers.conf

# debian:12-slim from debootstrap: minbase, then what the published slim
# image leaves out (documentation, manuals, locales, apt's lists and
# downloaded packages) and its apt settings.
make_base() {
    local dir
    dir=$(mktemp -d /tmp/sfl-base-XXXXXX)
    mkdir -p "$cache/debootstrap"
    debootstrap --variant=minbase --cache-dir="$cache/debootstrap" bookworm "$dir/root" \
        "$mirror" >"$dir/debootstrap.log" 2>&1 || {
        tail -20 "$dir/debootstrap.log" >&2
        return 1
    }
    local r=$dir/root
    rm -rf "$r"/var/cache/apt/archives/*.deb "$r"/var/lib/apt/lists/* "$r"/usr/share/man/* \
        "$r"/usr/share/info/* "$r"/usr/share/locale/* "$r"/usr/share/lintian/*
    find "$r/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
    cat >"$r/etc/dpkg/dpkg.cfg.d/slim" <<'DPKG'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-exclude /usr/share/lintian/*
DPKG
    cat >"$r/etc/apt/apt.conf.d/slim" <<'APT'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
APT
    rm -f "$r/etc/apt/sources.list"
    cat >"$r/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: ${mirror%/debian}/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    tar -C "$r" --numeric-owner -c . |
        podman import -q --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'CMD ["bash"]' - docker.io/library/debian:12-slim >/dev/null
    rm -rf "$dir"
}

step "base image debian:12-slim"
if podman image exists docker.io/library/debian:12-slim; then
    echo "kept from an earlier run"
else
    make_base
fi

step "redis:7 stand-in (Debian's redis-server)"
# As the published image: redis-server started without a config file
# serves the container network (--protected-mode no), data in /data.
standin=$(mktemp -d /tmp/sfl-redis-XXXXXX)
cat >"$standin/entry.sh" <<'SH'
#!/bin/sh
if [ "$1" = redis-server ]; then
    shift
    set -- redis-server --protected-mode no "$@"
fi
exec "$@"
SH
cat >"$standin/Containerfile" <<'CF'
FROM docker.io/library/debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/* && mkdir /data && chown redis:redis /data
COPY entry.sh /usr/local/bin/redis-entry
WORKDIR /data
USER redis
EXPOSE 6379
ENTRYPOINT ["sh", "/usr/local/bin/redis-entry"]
CMD ["redis-server"]
CF
podman build -q --format docker --pull=never -t docker.io/library/redis:7 "$standin" >/dev/null
rm -rf "$standin"

step "image sfl (podman build --format docker)"
b0=$SECONDS
podman build -q --format docker --pull=never -t localhost/sfl:latest . >/dev/null
echo "built in $((SECONDS - b0)) s (cached layers count as 0), $(podman image inspect \
    --format '{{.Size}}' localhost/sfl:latest | awk '{printf "%.0f MB", $1 / 1e6}')"

step "the Dockerfile's usage lines"
help=$(podman run --rm localhost/sfl:latest --help 2>&1) || {
    echo "docker run --rm sfl --help failed: $help" >&2
    exit 1
}
echo "$help" | grep -q "submit" || { echo "--help does not list the commands: $help" >&2; exit 1; }
# A node in the image listens on 0.0.0.0:8470: without a token it must not
# start, and must say which variable to set.
set +e
out=$(timeout 60 podman run --rm -e SFL_HTTP_TOKEN= -e SFL_REDIS_URL=redis://127.0.0.1:1/0 \
    localhost/sfl:latest 2>&1)
rc=$?
set -e
if [ "$rc" != 2 ] || ! echo "$out" | grep -q SFL_HTTP_TOKEN; then
    echo "a node with an empty SFL_HTTP_TOKEN: exit $rc (want 2 naming SFL_HTTP_TOKEN): $out" >&2
    exit 1
fi
echo "empty token: exit 2, $(echo "$out" | grep SFL_HTTP_TOKEN | head -1)"

step "one node with docker run, as the Dockerfile and README write it"
# The names are the project's (the line's own are redis, sfl-node, sfl).
single() {
    podman rm -f "${project}-node" "${project}-redis" >/dev/null 2>&1 || true
    podman network rm -f "${project}-net" >/dev/null 2>&1 || true
}
trap single EXIT
single
if (exec 3<>/dev/tcp/127.0.0.1/8470) 2>/dev/null; then
    echo "127.0.0.1:8470 is taken: the docker run line publishes it" >&2
    exit 1
fi
podman network create "${project}-net" >/dev/null
podman run -d --name "${project}-redis" --network "${project}-net" --network-alias redis \
    redis:7 >/dev/null 2>&1
podman run -d --name "${project}-node" --network "${project}-net" -p 127.0.0.1:8470:8470 \
    -v "$repo/deploy:/etc/sfl:ro" -e SFL_CONFIG=/etc/sfl/sflimit.json \
    -e SFL_NODE_ID=node-1 -e SFL_HTTP_TOKEN localhost/sfl:latest >/dev/null 2>&1
wait_for() { # CONTAINER URL PATTERN
    local deadline=$((SECONDS + 120))
    until curl -fsS -m 2 "$2" 2>/dev/null | grep -q "$3"; do
        if [ $SECONDS -ge $deadline ]; then
            echo "$1 not ready after 120 s" >&2
            podman logs --tail 20 "$1" >&2 || true
            exit 1
        fi
        sleep 1
    done
}
wait_for "${project}-node" http://127.0.0.1:8470/healthz '"redis":"up"'
st=$(podman exec "${project}-node" sflimit status)
echo "$st"
echo "$st" | grep -q "Provider B" || { echo "sflimit status: no account from the config" >&2; exit 1; }
podman healthcheck run "${project}-node" >/dev/null || { echo "its HEALTHCHECK fails" >&2; exit 1; }
single
trap - EXIT

compose() { podman-compose -p "$project" -f docker-compose.yml "$@"; }
teardown() { # podman-compose 1.0.3's down leaves the network
    compose down -v >/dev/null 2>&1 || true
    podman network rm -f "${project}_default" >/dev/null 2>&1 || true
}
trap teardown EXIT
teardown # what an interrupted run left

step "cluster up: redis, node-a, node-b, node-c, provider"
for port in 8000 8471 8472 8473; do
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
        echo "127.0.0.1:$port is taken: the compose file publishes it" >&2
        exit 1
    fi
done
# The services named: podman-compose 1.0.3 ignores `profiles` and would
# start every service of the file (another profile's too); it does not wait
# for depends_on conditions either: the script waits below.
compose up -d redis node-a node-b node-c provider >"$cache/compose-up.log" 2>&1 || {
    cat "$cache/compose-up.log" >&2
    exit 1
}
# Wait for each: every node healthy with Redis up, the provider answering.
wait_for "${project}_node-a_1" http://127.0.0.1:8471/healthz '"redis":"up"'
wait_for "${project}_node-b_1" http://127.0.0.1:8472/healthz '"redis":"up"'
wait_for "${project}_node-c_1" http://127.0.0.1:8473/healthz '"redis":"up"'
wait_for "${project}_provider_1" http://127.0.0.1:8000/stats '"violations"'
for svc in node-a node-b node-c provider; do
    podman healthcheck run "${project}_${svc}_1" >/dev/null || {
        echo "$svc: its HEALTHCHECK fails" >&2
        exit 1
    }
done
echo "all up and healthy"

step "the API on the published port: the token is needed"
code=$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:8471/v1/accounts)
[ "$code" = 401 ] || { echo "GET /v1/accounts without the token: $code, want 401" >&2; exit 1; }
accounts=$(curl -fsS -H "Authorization: Bearer $SFL_HTTP_TOKEN" http://127.0.0.1:8471/v1/accounts)
python3 - "$accounts" <<'PY'
import json, sys
got = {a["id"]: a["max_streams"] for a in json.loads(sys.argv[1])["accounts"]}
if got.get(1) != 1 or got.get(2) != 2:
    sys.exit(f"accounts from deploy/sflimit.json not in Redis: {got}")
print("401 without the token; with it, accounts 1 (max 1) and 2 (max 2) from deploy/sflimit.json")
PY

step "the seed's scenario: exec node-a sflimit submit --wait /etc/sfl/streams.json"
s0=$SECONDS
results=$(timeout 300 podman-compose -p "$project" -f docker-compose.yml exec -T node-a \
    sflimit submit --wait /etc/sfl/streams.json 2>"$cache/submit.log" | grep '^{' || true)
echo "$results"
echo "(in $((SECONDS - s0)) s)"
stats=$(curl -fsS http://127.0.0.1:8000/stats)
echo "provider: $stats"
python3 - "$results" "$stats" <<'PY'
import json, sys
results = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
stats = json.loads(sys.argv[2])
bad = []
if len(results) != 5:
    bad.append(f"{len(results)} results, want 5")
ok = [r for r in results if r.get("status") == "OK"]
if len(ok) != 5:
    bad.append("not all OK: " + ", ".join(f'{r.get("name")}={r.get("status")} ({r.get("error")})'
                                          for r in results if r.get("status") != "OK"))
nodes = sorted({r.get("node") for r in results})
a, b = stats["users"]["a"], stats["users"]["b"]
if a["max_seen"] > 1 or b["max_seen"] > 2:
    bad.append(f"over a limit: A {a['max_seen']} at once, B {b['max_seen']}")
if stats["violations"] != 0:
    bad.append(f"{stats['violations']} violations")
if a["total"] < 2 or b["total"] < 3:
    bad.append(f"the provider served A {a['total']}, B {b['total']}: want at least 2 and 3")
if bad:
    sys.exit("containers: " + "; ".join(bad))
print(f"5/5 OK (nodes {', '.join(nodes)}); provider: A at most {a['max_seen']} at once, "
      f"B at most {b['max_seen']}, {stats['max_concurrent']} at once overall, 0 violations")
PY

step "check --redis embedded inside the image"
# A private redis-server in the provider's container, one stream checked
# against the provider on that container's loopback.
provider="${project}_provider_1"
echo '{"stream_analysis": {"ffmpeg_duration": 1, "retries": 0}}' |
    podman exec -i "$provider" sh -c 'cat >/tmp/embedded.json'
emb=$(echo '[{"id": 1, "name": "E1", "url": "http://127.0.0.1:8000/live/a/secretA/1.ts", "m3u_account": null}]' |
    podman exec -i "$provider" sflimit check --quiet -c /tmp/embedded.json --redis embedded - 2>&1) ||
    true
echo "$emb" | grep -q '"status":"OK"' || { echo "check --redis embedded: $emb" >&2; exit 1; }
echo "$emb"

step "down"
teardown
trap - EXIT
echo "containers: passed in $((SECONDS - t0)) s"
