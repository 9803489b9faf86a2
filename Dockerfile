# sfl node image: Debian 12 slim, multi-stage, runs as a non-root user (uid 10001).
#   docker build -t sfl .
#   docker run --rm sfl --help                  # the entrypoint is sflimit
# One node, with a Redis named redis as deploy/sflimit.json says (on another
# host: -e SFL_REDIS_URL=redis://HOST:6379/0), and SFL_HTTP_TOKEN exported:
#   docker network create sfl && docker run -d --name redis --network sfl redis:7
#   docker run -d --name sfl-node --network sfl -p 127.0.0.1:8470:8470 \
#       -v "$PWD/deploy:/etc/sfl:ro" -e SFL_CONFIG=/etc/sfl/sflimit.json \
#       -e SFL_NODE_ID=node-1 -e SFL_HTTP_TOKEN sfl
# The API listens on 0.0.0.0:8470 (EXPOSE), so a node needs a token: without
# SFL_HTTP_TOKEN (or http.token) it refuses to start and says so. Set
# SFL_HTTP_LISTEN=127.0.0.1:8470 to keep the API inside the container instead.
# redis-server is in the image, so `--redis embedded` works for one-off checks:
#   docker run --rm -i -v "$PWD/deploy:/etc/sfl:ro" sfl check -c /etc/sfl/sflimit.json \
#       --redis embedded - < streams.json
# /usr/share/sfl/demo.ts is a 4 s test stream (H.264 + AAC in MPEG-TS at a
# constant 500 kbit/s) that the compose file's demo provider serves.
FROM debian:12-slim AS build
RUN apt-get update && apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config libhiredis-dev libevent-dev libcjson-dev libssl-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY CMakeLists.txt ./
COPY cmake cmake
COPY lua lua
COPY src src
COPY tests/tools tests/tools
RUN cmake -S . -B build -DCMAKE_BUILD_TYPE=Release -DSFL_TESTS=OFF \
    && cmake --build build -j"$(nproc)" --target sflimit sfl-fake-provider

FROM debian:12-slim
RUN apt-get update && apt-get install -y --no-install-recommends \
        libhiredis0.14 libevent-2.1-7 libevent-core-2.1-7 libevent-extra-2.1-7 \
        libevent-openssl-2.1-7 libssl3 libcjson1 \
        ffmpeg redis-server curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sfl
RUN mkdir -p /usr/share/sfl \
    && ffmpeg -nostdin -loglevel error -f lavfi -i testsrc=size=640x360:rate=25 \
        -f lavfi -i sine=frequency=440 -t 4 -c:v libx264 -preset veryfast \
        -b:v 300k -maxrate 300k -bufsize 600k -c:a aac -b:a 64k \
        -f mpegts -muxrate 500000 /usr/share/sfl/demo.ts
COPY --from=build /src/build/sflimit /usr/local/bin/sflimit
COPY --from=build /src/build/sfl-fake-provider /usr/local/bin/sfl-fake-provider
USER sfl
ENV SFL_HTTP_LISTEN=0.0.0.0:8470
EXPOSE 8470
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8470/healthz || exit 1
ENTRYPOINT ["sflimit"]
CMD ["node"]
