# sfl node image: Debian 12 slim, multi-stage, runs as a non-root user.
#   docker build -t sfl .
#   docker run --rm sfl sflimit --help
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
        ffmpeg curl ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin sfl
COPY --from=build /src/build/sflimit /usr/local/bin/sflimit
COPY --from=build /src/build/sfl-fake-provider /usr/local/bin/sfl-fake-provider
USER sfl
EXPOSE 8470
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD curl -fsS http://127.0.0.1:8470/healthz || exit 1
ENTRYPOINT ["sflimit"]
CMD ["node"]
